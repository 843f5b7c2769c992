"""The forecast refresh flow: read inputs → refit what changed (partitions as mapped tasks) → record."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from datetime import UTC, datetime
from typing import Any, Literal

import duckdb
import polars as pl
from prefect import flow

from ballast.io.warehouse import demand_history, open_warehouse, snapshot_as_of
from ballast.models.forecast import DaskBackend
from ballast.models.policy import load_policy
from ballast.settings import Settings
from ballast.tasks.forecast import backend_jobs, prefect_map, read_inputs_task, run_forecast_refresh, summary
from ballast.tasks.runners import cluster_client, cluster_slots

InputReader = Callable[[duckdb.DuckDBPyConnection, datetime], dict[str, pl.DataFrame]]


def warehouse_inputs(con: duckdb.DuckDBPyConnection, as_of: datetime) -> dict[str, pl.DataFrame]:
    """Demand history and the sites/items/lanes snapshots known at `as_of`, from the warehouse."""
    return {
        "demand": demand_history(con, as_of),
        "sites": snapshot_as_of(con, "sites", as_of),
        "items": snapshot_as_of(con, "items", as_of),
        "lanes": snapshot_as_of(con, "lanes", as_of),
    }


@flow(name="forecast-refresh", log_prints=False)
def forecast_refresh(
    as_of: datetime | None = None,
    force: bool = False,
    n_partitions: int | None = None,
    workers: int = 1,
    reader: InputReader | None = None,
    backend: Literal["local", "dask"] = "local",
) -> dict[str, Any]:
    """Refit the forecasts whose history changed (every one with `force`) and record the run.

    `as_of`: the cycle time (default now, UTC); forecasts start on its date. `n_partitions`:
    how many `fit-forecast-partition` tasks to fan out to (default ~5,000 series each, at
    least one per worker thread on a Dask task runner); `workers`: StatsForecast processes
    inside each task. `reader` replaces the warehouse reader (tests, replays). `backend="dask"`
    hands each partition to StatsForecast's own Dask backend on the flow's Dask cluster instead
    (needs the flow on a Dask task runner: `forecast_refresh.with_options(task_runner=...)`).
    """
    settings = Settings()
    when = as_of or datetime.now(UTC)
    policy, _ = load_policy(settings.policy_path)
    client = cluster_client()
    slots = cluster_slots() or 1
    if backend == "dask" and client is None:
        raise ValueError("backend='dask' needs the flow on a Dask task runner (e.g. `ballast forecast --dask-backend`)")
    # Partitions as mapped tasks (one per worker thread at least), or one after another here with
    # each partition's series spread over the cluster by StatsForecast itself.
    map_fn = backend_jobs(DaskBackend(npartitions=slots)) if backend == "dask" else prefect_map
    with open_warehouse(settings.db_path) as con, client.as_current() if backend == "dask" else nullcontext():
        inputs = read_inputs_task(reader or warehouse_inputs, con, when)
        result = run_forecast_refresh(
            con,
            inputs["demand"],
            inputs["sites"],
            inputs["items"],
            inputs["lanes"],
            policy,
            settings,
            when.date(),
            force,
            n_partitions=n_partitions,
            min_partitions=slots if backend == "local" else 1,
            workers=workers,
            map_fn=map_fn,
        )
    return summary(result)
