"""The `backfill` flow: replay the planning cycle at every as-of from `start` to `end`.

One writer, many planners: this flow's process is the only one that opens the DuckDB file. It
prepares each as-of (inputs, policy and forecasts as known then), hands the self-contained job
to a planner — in this process (serial) or on a Dask cluster (`dask=True`: a local cluster of
`workers` processes, or the scheduler at `dask_address`) — and commits the finished plans in
as-of order. At most `2 × workers` jobs are in flight, so memory stays bounded on long ranges.
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, runtime
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ballast.io import backfill as store
from ballast.io.backfill_report import render_backfill_report
from ballast.io.cycle_lock import CycleBusy, cycle_lock
from ballast.io.plans import order_status
from ballast.io.warehouse import open_warehouse
from ballast.models.backfill import BackfillSummary, StepOutcome, parse_every, schedule, summarise
from ballast.models.plan_diff import diff_orders
from ballast.settings import Settings
from ballast.tasks.backfill import PlanDraft, PlanJob, commit_task, plan_task, prepare_task, record_outcome_task
from ballast.tasks.runners import dask_task_runner

WRITER_WAIT_SECONDS = 900.0  # a live cycle holding the write lock finishes well within this

# Progress listeners (the CLI's progress bar): called with ("start", total) and ("step", StepOutcome).
_listeners: list[Callable[[str, Any], None]] = []


@contextmanager
def progress_listener(fn: Callable[[str, Any], None]) -> Iterator[None]:
    """Call `fn` on every backfill event while the block runs (same process as the flow)."""
    _listeners.append(fn)
    try:
        yield
    finally:
        _listeners.remove(fn)


def _notify(event: str, payload: Any) -> None:
    for fn in list(_listeners):
        fn(event, payload)


class BackfillParams(BaseModel):
    """Parameters of one backfill (validated when a deployment passes them)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: datetime
    end: datetime
    every: str = "1h"  # 15m | 1h | 1d (any whole minutes, hours or days)
    policy: Path | None = None  # a what-if policy for every as-of instead of the one in force then
    force: bool = False  # replan as-ofs already backfilled with the same inputs
    dask: bool = False  # plan on a Dask cluster instead of in this process
    workers: int = Field(2, ge=1, le=256)  # local Dask workers (processes), and the in-flight window
    dask_address: str | None = None  # a running Dask scheduler (tcp://host:8786) instead of a local cluster
    home: Path | None = None  # another BALLAST_HOME
    report: bool = True  # write the HTML report at the end

    @field_validator("every")
    @classmethod
    def _every(cls, value: str) -> str:
        parse_every(value)
        return value

    @field_validator("start", "end")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("start and end must be timezone-aware (e.g. 2026-11-23T06:00Z)")
        return value.astimezone(UTC)


def _run_name() -> str:
    params = runtime.flow_run.parameters.get("params") or {}
    get = params.get if isinstance(params, dict) else lambda k: getattr(params, k, None)
    return f"backfill {get('start')} → {get('end')} every {get('every')}"


@contextmanager
def _writer(settings: Settings, purpose: str) -> Iterator[None]:
    """The cycle write lock, waiting for a live cycle to finish instead of failing at once."""
    deadline = time.monotonic() + WRITER_WAIT_SECONDS
    while True:
        try:
            lock = cycle_lock(settings.db_path, purpose)
            lock.__enter__()
            break
        except CycleBusy:
            if time.monotonic() > deadline:
                raise
            time.sleep(2.0)
    try:
        yield
    finally:
        lock.__exit__(None, None, None)


def _dask_runner(params: BackfillParams):  # noqa: ANN202 - prefect_dask.DaskTaskRunner
    return dask_task_runner(params.dask_address, params.workers)


def runner_label(params: BackfillParams) -> str:
    if not params.dask:
        return "serial"
    return f"dask:{params.dask_address}" if params.dask_address else f"dask:local:{params.workers}"


@flow(name="backfill", flow_run_name=_run_name)
def backfill(params: BackfillParams) -> BackfillSummary:
    """Replay the cycle at every as-of in the range; skip what is done, commit from one writer."""
    logger = get_run_logger()
    settings = Settings(home=params.home) if params.home is not None else Settings()
    times = schedule(params.start, params.end, parse_every(params.every))
    started = time.monotonic()
    backfill_id = f"BF{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
    flow_run_id = str(runtime.flow_run.id) if runtime.flow_run.id else None
    with _writer(settings, f"backfill {backfill_id}"), open_warehouse(settings.db_path) as con:
        store.start_run(con, backfill_id, datetime.now(UTC), params.start, params.end, params.every,
                        str(params.policy) if params.policy else None, params.force, runner_label(params))
    logger.info("backfill %s: %d as-of(s) from %s to %s every %s on %s", backfill_id, len(times),
                params.start.isoformat(), params.end.isoformat(), params.every, runner_label(params))
    _notify("start", len(times))
    outcomes: list[StepOutcome] = []

    def done(outcome: StepOutcome) -> None:
        outcomes.append(outcome)
        _notify("step", outcome)
        if outcome.status == "failed":
            logger.warning("as-of %s failed: %s", outcome.as_of.isoformat(), outcome.reason)

    runner = _dask_runner(params) if params.dask else None
    window = max(1, 2 * params.workers) if runner is not None else 1
    pending: deque[tuple[PlanJob, Any]] = deque()

    def commit_oldest() -> None:
        job, handle = pending.popleft()
        try:
            draft: PlanDraft = handle.result() if runner is not None else handle
        except Exception as exc:  # noqa: BLE001 - a lost worker fails this as-of, not the backfill
            draft = PlanDraft(job.as_of, job.plan_id, error=f"planner failed: {type(exc).__name__}: {exc}")
        try:
            with _writer(settings, f"backfill {backfill_id} commit {job.as_of:%Y-%m-%dT%H:%MZ}"):
                done(commit_task(settings, job, draft, backfill_id, flow_run_id))
        except CycleBusy:
            raise
        except Exception as exc:  # noqa: BLE001
            failed = StepOutcome(job.as_of, "failed", job.plan_id, f"commit failed: {type(exc).__name__}: {exc}")
            with _writer(settings, f"backfill {backfill_id} record"):  # the reason is kept with the run
                record_outcome_task(settings, backfill_id, failed)
            done(failed)

    with runner if runner is not None else nullcontext():
        for as_of in times:
            try:
                with _writer(settings, f"backfill {backfill_id} prepare {as_of:%Y-%m-%dT%H:%MZ}"):
                    prepared = prepare_task(settings, as_of, params.policy, params.force)
            except CycleBusy:
                raise
            except Exception as exc:  # noqa: BLE001 - bad data at one as-of: say so and go on
                prepared = StepOutcome(as_of, "failed", None, f"prepare failed: {type(exc).__name__}: {exc}")
            if isinstance(prepared, StepOutcome):
                with _writer(settings, f"backfill {backfill_id} record"):
                    record_outcome_task(settings, backfill_id, prepared)
                done(prepared)
                continue
            handle = runner.submit(plan_task, {"job": prepared}) if runner is not None else plan_task(prepared)
            pending.append((prepared, handle))
            while len(pending) >= window:
                commit_oldest()
        while pending:
            commit_oldest()

    seconds = time.monotonic() - started
    report = _report(settings, params, backfill_id) if params.report else None
    summary = summarise(backfill_id, outcomes, seconds, str(report) if report else None)
    with _writer(settings, f"backfill {backfill_id} finish"), open_warehouse(settings.db_path) as con:
        store.finish_run(con, backfill_id, datetime.now(UTC), {
            "planned": summary.planned, "skipped": summary.skipped, "blocked": summary.blocked,
            "failed": summary.failed, "seconds": round(seconds, 1), "report": summary.report,
        })
    for line in summary.lines():
        logger.info(line)
    return summary


def _report(settings: Settings, params: BackfillParams, backfill_id: str) -> Path:
    """KPIs over time of the range's backfilled plans and their diff against live plans of the same as-of."""
    with _writer(settings, f"backfill {backfill_id} report"), open_warehouse(settings.db_path) as con:
        kpis = store.kpi_history(con, backfill_id)
        steps = store.steps(con, backfill_id)
        diffs = []
        for as_of, plan_id in kpis.select("as_of", "plan_id").iter_rows() if kpis.height else []:
            live = store.live_plan_at(con, as_of)
            if live is None:
                continue
            before, after = order_status(con, live), order_status(con, plan_id)
            diffs.append({"as_of": as_of, "live_plan_id": live, "plan_id": plan_id, "live_orders": before.height,
                          "orders": after.height, "changes": diff_orders(before, after)})
    run = {"backfill_id": backfill_id, "start": params.start.isoformat(), "end": params.end.isoformat(),
           "every": params.every, "runner": runner_label(params), "force": params.force,
           "policy": str(params.policy) if params.policy else None}
    return render_backfill_report(run, kpis, steps, diffs, settings.reports_dir / "backfills" / f"{backfill_id}.html")
