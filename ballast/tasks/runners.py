"""Task runners: where a flow's mapped tasks run. One place builds the Dask runner every flow uses.

The flows do not change on Dask: `flow.with_options(task_runner=dask_task_runner(...))` sends their
`.map`/`.submit` calls (hub agents, SKU-group solves, forecast partitions, backfill planners) to the
cluster's workers, while the flow itself — and every DuckDB and MLflow write — stays in this process.
"""

from __future__ import annotations

import logging
import os
from typing import Any

DASK_ADDRESS_ENV = "BALLAST_DASK_ADDRESS"


def dask_task_runner(address: str | None = None, workers: int = 2) -> Any:  # prefect_dask.DaskTaskRunner
    """A `DaskTaskRunner` on the scheduler at `address` (tcp://host:8786), else on a local cluster
    of `workers` processes that lives as long as the flow run."""
    from prefect_dask import DaskTaskRunner

    if address:
        if "://" not in address:
            raise ValueError(f"Dask scheduler address {address!r} needs a protocol, e.g. tcp://scheduler:8786")
        return DaskTaskRunner(address=address)
    if workers < 1:
        raise ValueError(f"a local Dask cluster needs at least one worker, not {workers}")
    # One thread per worker process: agents, solves and fits are CPU-bound Python + HiGHS/numba,
    # threads would share one GIL.
    return DaskTaskRunner(cluster_kwargs={"n_workers": workers, "threads_per_worker": 1, "processes": True,
                                          "dashboard_address": None, "silence_logs": logging.WARNING})


def address_from_env() -> str | None:
    """The scheduler named by `BALLAST_DASK_ADDRESS` (scheduled runs), if set and not blank."""
    value = os.environ.get(DASK_ADDRESS_ENV, "").strip()
    return value or None


def cluster_client() -> Any | None:
    """The `distributed.Client` of the Dask task runner the current flow run maps onto; None off Dask."""
    from prefect.context import FlowRunContext

    try:
        from prefect_dask import DaskTaskRunner
    except ImportError:  # prefect-dask is optional where nothing runs on Dask
        return None
    ctx = FlowRunContext.get()
    runner = getattr(ctx, "task_runner", None) if ctx else None
    return runner.client if isinstance(runner, DaskTaskRunner) else None


def cluster_slots() -> int | None:
    """Worker threads of the Dask cluster the current flow run maps onto; None off Dask (or outside a flow)."""
    client = cluster_client()
    if client is None:
        return None
    return max(1, sum(client.nthreads().values()))
