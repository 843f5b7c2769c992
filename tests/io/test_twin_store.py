"""A simulation records into its own results store and MLflow store, never the live ones."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from ballast.io.twin_report import markdown_table, render_twin_report
from ballast.io.twin_store import EXPERIMENT, SimulationHome, load_results, record_run
from ballast.tasks.twin import IsolationError, assert_isolated


def _daily() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "day": [0, 1, 0, 1],
            "site_id": ["HUB-A", "HUB-A", "HUB-B", "HUB-B"],
            "units": [5.0, 3.0, 9.0, 9.0],
            "unmet": [0.0, 1.0, 0.0, 0.0],
        }
    )


def test_runs_land_in_the_simulation_store_and_mlflow_experiment(ballast_home: Path) -> None:
    import mlflow

    sim = SimulationHome.under(ballast_home, "t1")
    for policy, cost in (("ballast", 120.0), ("no_transfers", 150.0), ("bound", 100.0)):
        for seed in (1, 2):
            record_run(
                sim,
                "steady",
                seed,
                policy,
                {"multiplier": 1.0},
                {"total_cost": cost + seed, "fill_rate": 0.97, "lost_units": 3.0, "total_cost_vs_bound": cost / 100},
                _daily(),
            )
    runs, daily = load_results(sim)
    assert runs.height == 6 and daily.height == 24
    client = mlflow.MlflowClient(tracking_uri=sim.tracking().tracking_uri)
    exp = client.get_experiment_by_name(EXPERIMENT)
    found = client.search_runs([exp.experiment_id])
    assert len(found) == 6
    assert {r.data.tags["policy"] for r in found} == {"ballast", "no_transfers", "bound"}
    assert all("total_cost" in r.data.metrics for r in found)
    # the live home has no warehouse and no MLflow store: nothing outside simulations/ was written
    assert not (ballast_home / "data").exists()
    assert sorted(p.name for p in ballast_home.iterdir()) == ["simulations"]
    # re-recording a run replaces it
    record_run(sim, "steady", 1, "ballast", {}, {"total_cost": 1.0, "fill_rate": 1.0}, _daily())
    assert load_results(sim)[0].height == 6
    report = render_twin_report("t1", *load_results(sim), sim.report_path)
    html = report.read_text()
    assert "data:image/png;base64," in html and "cost / bound" in html
    assert "| steady | ballast | 2 |" in markdown_table(load_results(sim)[0])


def test_a_simulated_run_refuses_live_overrides(ballast_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_home = SimulationHome.under(ballast_home, "t2").run_home("steady", 1)
    assert assert_isolated(run_home).db_path.is_relative_to(run_home)
    monkeypatch.setenv("BALLAST_DB", str(ballast_home / "data" / "ballast.duckdb"))
    with pytest.raises(IsolationError, match="warehouse"):
        assert_isolated(run_home)


def test_simulation_names_must_be_plain(ballast_home: Path) -> None:
    with pytest.raises(ValueError, match="plain folder name"):
        SimulationHome.under(ballast_home, "../live")
