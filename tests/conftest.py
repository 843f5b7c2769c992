"""Shared fixtures: every test runs in its own folder, with MLflow and Prefect pointed at temp dirs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# Before anything imports Prefect: keep its home, database and settings away from the user's.
_SESSION_PREFECT_HOME = Path(os.environ.get("PYTEST_PREFECT_HOME", "/tmp")) / f"ballast-tests-prefect-{os.getpid()}"
os.environ["PREFECT_HOME"] = str(_SESSION_PREFECT_HOME)
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")


@pytest.fixture(autouse=True)
def ballast_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh BALLAST_HOME (warehouse, inbox, archive, MLflow store) for each test."""
    home = tmp_path / "home"
    home.mkdir()
    for name in ("BALLAST_DB", "BALLAST_INBOX", "BALLAST_ARCHIVE", "BALLAST_OUTBOX", "BALLAST_REPORTS",
                 "BALLAST_POLICY", "BALLAST_MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BALLAST_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One Prefect test harness (temporary database + ephemeral API) for the whole session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


# DuckDB 2.0's bindings print "nanobind: leaked …" lines when the interpreter tears down; they
# would bury pytest's closing summary, which CI reads. The session is over by then (fixtures,
# the Prefect harness and every subprocess are closed), so leave without the teardown.
_exit_status = 0


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    global _exit_status
    _exit_status = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(_exit_status)
