"""`ballast simulate` is registered and checks its arguments before simulating anything."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from typer.testing import CliRunner

from ballast.cli import app

runner = CliRunner()


def test_simulate_is_a_command() -> None:
    result = runner.invoke(app, ["simulate", "--help"])
    assert result.exit_code == 0
    assert "--scenario" in result.output and "--seeds" in result.output


def test_unknown_scenario_and_seed_conflict_are_refused(ballast_home: Path) -> None:
    result = runner.invoke(app, ["simulate", "--scenario", "meteor"])
    assert result.exit_code == 2 and "unknown scenario 'meteor'" in result.output
    result = runner.invoke(app, ["simulate", "--seed", "3", "--seeds", "2"])
    assert result.exit_code == 2 and "not both" in result.output
    assert not (ballast_home / "simulations").exists()


def _record(root: Path, name: str, seeds: range) -> None:
    from ballast.io.twin_store import SimulationHome, record_run

    sim = SimulationHome.under(root, name)
    daily = pl.DataFrame({"day": [0, 1], "site_id": ["HUB-A"] * 2, "units": [5.0, 3.0], "unmet": [0.0, 1.0]})
    for seed in seeds:
        for policy, cost, fill in (("ballast", 90.0, 0.99), ("no_transfers", 100.0, 0.98), ("reactive", 95.0, 0.97)):
            kpis = {"total_cost": cost + seed, "fill_rate": fill, "total_cost_vs_bound": cost / 85}
            record_run(sim, "steady", seed, policy, {}, kpis, daily)


def test_simulate_report_merges_simulations_run_apart_and_refuses_a_run_counted_twice(tmp_path: Path) -> None:
    _record(tmp_path / "home-a", "seeds-1-3", range(1, 4))
    _record(tmp_path / "home-b", "seeds-4-5", range(4, 6))
    out = tmp_path / "merged.html"
    # a whole home, and a simulation folder of another
    result = runner.invoke(
        app,
        [
            "simulate-report",
            str(tmp_path / "home-a"),
            str(tmp_path / "home-b/simulations/seeds-4-5"),
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "| steady | 5 | 93 | 98 | -5.1% | 5/5 | 99.00% | 98.00% | +1.00 pt | 1.059 | — | — | yes |" in result.output
    assert "| steady | ballast | 5 |" in result.output
    assert "Is ballast better?" in out.read_text()

    _record(tmp_path / "home-c", "seed-3-again", range(3, 4))
    result = runner.invoke(
        app, ["simulate-report", str(tmp_path / "home-a"), str(tmp_path / "home-c"), "--out", str(out)]
    )
    assert result.exit_code == 1
    assert "scenario steady seed 3 policy ballast is in both" in " ".join(result.output.split())
    result = runner.invoke(app, ["simulate-report", str(tmp_path / "nowhere")])
    assert result.exit_code == 1 and "no results.duckdb" in " ".join(result.output.split())
