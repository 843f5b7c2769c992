# ballast: `make demo` sets everything up and runs the main job; `make test` runs the test suite.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)
UV_VERSION := 0.13.9

.PHONY: setup demo test test-fast lock lint bench clean

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), f"ballast needs Python 3.11, found {sys.version}"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip sync --quiet --python $(BIN)/python requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	rm -f $(VENV)/.installed-* && touch $(STAMP)

setup: $(STAMP)  ## create .venv with the locked dependencies and ballast itself

demo: $(STAMP)  ## sample network -> ingest -> quality gates -> forecast -> plan -> published report, outbox, MLflow run
	$(BIN)/ballast demo

test: $(STAMP)  ## the whole suite, slow end-to-end cases included (what CI runs)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)  ## skip the slow end-to-end cases while developing
	$(BIN)/python -m pytest -q -m "not slow"

lock:  ## re-resolve requirements.lock from pyproject.toml
	$(BIN)/uv pip compile pyproject.toml --extra dev -o requirements.lock --python-version 3.11 -q

lint: $(STAMP)
	$(BIN)/ruff check ballast tests benchmarks

clean:
	rm -rf $(VENV) data/*.duckdb data/archive inbox outbox reports
