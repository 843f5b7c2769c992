"""Scale-out: the same planning-cycle flow on a real `distributed.LocalCluster` (2 worker processes,
1 thread each). The scheduler's task stream shows the hub agents, SKU-group solves and forecast
partitions ran on the workers; the plan matches the serial cycle's order for order."""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path

import polars as pl
import pytest

from ballast.flows.planning_cycle import CycleParams, planning_cycle
from ballast.io.warehouse import open_warehouse, query_frame
from ballast.models.sample import SampleSpec, generate_network
from ballast.settings import Settings
from ballast.tasks.runners import address_from_env, dask_task_runner
from tests.history import T0, land, register_cheap_forecaster

# The smallest sample network (5 hubs, 2 DCs, a plant, 3 suppliers) with few SKUs: the forecast
# refit dominates the cycle and the point here is where tasks run, not how long they take.
SPEC = SampleSpec(hubs=5, dcs=2, plants=1, skus=25, history_days=100, as_of=T0)

# Columns that name the run rather than the plan's content (a new forecast run id makes a new plan id).
_RUN_COLUMNS = ("plan_id", "created_at")


def _plan(home: Path, plan_id: str) -> tuple[pl.DataFrame, dict, pl.DataFrame]:
    """(orders without run-specific columns, the solve record, the forecasts the plan used)."""
    with open_warehouse(Settings(home=home).db_path, read_only=True) as con:
        orders = query_frame(con, "SELECT * FROM transfer_orders WHERE plan_id = ? ORDER BY order_id", [plan_id])
        solve, run_id = con.execute(
            "SELECT solve, forecast_run_id FROM plans WHERE plan_id = ?", [plan_id]
        ).fetchall()[0]
        forecasts = query_frame(
            con, "SELECT * EXCLUDE (run_id) FROM fc_forecasts WHERE run_id = ? ORDER BY site_id, sku, day", [run_id]
        )
    return orders.drop([c for c in _RUN_COLUMNS if c in orders.columns]), json.loads(solve), forecasts


def _deliver(home: Path, frames: dict[str, pl.DataFrame]) -> None:
    """Land the network at T0 under a cheap champion forecaster: the test is about where tasks run."""
    land(frames, Settings(home=home).inbox_dir, T0)
    register_cheap_forecaster(Settings(home=home))


def test_dask_runner_address_is_checked_and_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="needs a protocol"):
        dask_task_runner("scheduler:8786")
    with pytest.raises(ValueError, match="at least one worker"):
        dask_task_runner(None, 0)
    assert dask_task_runner("tcp://scheduler:8786").address == "tcp://scheduler:8786"
    local = dask_task_runner(None, 3)
    assert local.address is None and local.cluster_kwargs["n_workers"] == 3
    monkeypatch.setenv("BALLAST_DASK_ADDRESS", "  ")
    assert address_from_env() is None
    monkeypatch.setenv("BALLAST_DASK_ADDRESS", "tcp://10.0.0.5:8786")
    assert address_from_env() == "tcp://10.0.0.5:8786"


def test_cli_takes_the_scheduler_from_the_environment_and_names_a_bad_address(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from ballast.cli import app

    # a scheduled `ballast run` / `ballast forecast` with BALLAST_DASK_ADDRESS set goes to that scheduler:
    # a malformed one is refused before anything runs
    def said(output: str) -> str:  # the error box wraps lines: keep the words only
        return " ".join(output.replace("│", " ").split())

    monkeypatch.setenv("BALLAST_DASK_ADDRESS", "scheduler-host:8786")
    for command in (["run", "--no-ingest"], ["forecast"]):
        result = CliRunner().invoke(app, command)
        assert result.exit_code == 2, (command, result.output)
        assert "'scheduler-host:8786' needs a protocol" in said(result.output), result.output
    monkeypatch.delenv("BALLAST_DASK_ADDRESS")
    result = CliRunner().invoke(app, ["run", "--dask", "--workers", "0"])
    assert result.exit_code == 2 and "at least one worker" in said(result.output), result.output


@pytest.mark.slow
def test_cycle_on_a_local_dask_cluster_runs_agents_and_forecasts_on_the_workers_and_plans_as_serial(
    prefect_harness, ballast_home, tmp_path
) -> None:
    from distributed import Client, LocalCluster, get_task_stream
    from distributed.utils import key_split

    # given: the same tiny network delivered to two homes
    frames = generate_network(SPEC)
    serial_home, dask_home = ballast_home, tmp_path / "dask-home"
    dask_home.mkdir()
    _deliver(serial_home, frames)
    _deliver(dask_home, frames)

    # when: one cycle in this process, the same flow with a Dask task runner on a local cluster
    serial = planning_cycle(CycleParams(as_of=T0, home=serial_home))
    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                     silence_logs=logging.WARNING) as cluster,
        Client(cluster) as client,
        get_task_stream(client) as stream,
    ):
        on_dask = planning_cycle.with_options(task_runner=dask_task_runner(cluster.scheduler_address))(
            CycleParams(as_of=T0, home=dask_home)
        )
        workers = set(client.scheduler_info()["workers"])

    # then: the scheduler ran the hub agents, the SKU-group solves and the forecast partitions on its workers
    ran = Counter(key_split(r["key"]) for r in stream.data)
    where = {key_split(r["key"]): set() for r in stream.data}
    for r in stream.data:
        where[key_split(r["key"])].add(r["worker"])
    stocking_sites = frames["sites"].filter(pl.col("kind") != "supplier").height  # one agent each
    assert ran["hub_agent_task"] == stocking_sites, ran
    assert ran["fit_partition_task"] == 2, ran  # at least one partition per worker thread
    assert ran["solve_group_task"] >= 1, ran
    assert where["hub_agent_task"] <= workers and len(where["hub_agent_task"] | where["fit_partition_task"]) == 2
    assert all(r["startstops"] and r["worker"] in workers for r in stream.data)

    # and the plan: verified, and the same orders and forecasts as the serial cycle's
    assert serial.created and on_dask.created and serial.orders > 0
    orders_a, solve_a, forecasts_a = _plan(serial_home, serial.plan_id)
    orders_b, solve_b, forecasts_b = _plan(dask_home, on_dask.plan_id)
    assert solve_a["verified"] and solve_b["verified"]
    assert solve_a["rung"] == solve_b["rung"] == "mip"
    assert forecasts_a.equals(forecasts_b)  # partitioned differently (1 vs 2), fitted the same
    assert orders_a.equals(orders_b), (orders_a, orders_b)
    assert solve_a["objective"] == pytest.approx(solve_b["objective"], rel=1e-9)
