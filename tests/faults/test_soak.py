"""A CI-sized soak: ten 15-minute cycles in one process (benchmarks/soak.py runs the 96-cycle day)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SOAK = Path(__file__).resolve().parents[2] / "benchmarks" / "soak.py"
CYCLES = 10
WARMUP = 3
# Generous: the first cycles load libraries, fit forecasts and fill caches; after them a cycle
# should leave nothing behind. A leak of ~1 MB per cycle would still pass a day's soak here, so
# the 96-cycle benchmark prints the curve for a closer look.
MAX_GROWTH_MB = 120.0


def _load_soak():
    spec = importlib.util.spec_from_file_location("ballast_soak", SOAK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses resolve their annotations through it
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_ten_cycles_publish_once_each_with_flat_memory(prefect_harness, ballast_home):
    soak = _load_soak()
    lines: list[str] = []
    result = soak.soak(ballast_home, CYCLES, echo=lines.append)
    print("\n".join(lines))  # noqa: T201 - the per-cycle RSS, for the CI log
    assert [c.created for c in result.cycles] == [True] * CYCLES, "every cycle had new inputs, so a new plan"
    assert len({c.plan_id for c in result.cycles}) == CYCLES
    assert result.duplicates == dict.fromkeys(result.duplicates, 0)
    assert result.audit_entries == result.cycle_runs == result.plans == CYCLES
    assert result.audit_problems == []
    growth = result.rss_growth_mb(WARMUP)
    assert growth < MAX_GROWTH_MB, f"RSS grew {growth:.0f} MB over {CYCLES - WARMUP} warm cycles:\n" + "\n".join(lines)
