"""Prefect task: render the simulation's HTML report from its results store."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from ballast.io.twin_report import render_twin_report
from ballast.io.twin_store import SimulationHome, load_results


@task(name="twin: report", cache_policy=NO_CACHE)
def report_task(sim_home: SimulationHome) -> Path:
    runs, daily = load_results(sim_home)
    if runs.is_empty():
        raise RuntimeError(f"simulation {sim_home.name} recorded no runs: nothing to report")
    return render_twin_report(sim_home.name, runs, daily, sim_home.report_path)
