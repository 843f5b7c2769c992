"""Prefect tasks of the 15-minute planning cycle: each opens what it needs and calls plain code."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from ballast import __version__
from ballast.io import forecast_store
from ballast.io.cycle_inputs import CycleInputs, latest_files, passing_as_of, read_cycle_inputs
from ballast.io.lineage import log_plan_lineage, plan_run
from ballast.io.plan_report import render_plan_report
from ballast.io.plans import (
    PlanRecord,
    append_audit,
    deliver_outbox,
    order_status,
    plan_exists,
    publish,
    record_cycle,
    used_lanes,
)
from ballast.io.warehouse import open_warehouse, query_frame, transaction
from ballast.models.engine import EngineResult
from ballast.models.governance import assess_approvals, in_freeze_window
from ballast.models.identity import plan_id as make_plan_id
from ballast.models.plan_diff import diff_orders
from ballast.models.policy import Policy
from ballast.models.projection import expected_unmet, most_affected, project_stock, stock_flows
from ballast.models.readiness import readiness_problems
from ballast.models.targets import compute_targets
from ballast.settings import Settings


class CycleBlocked(RuntimeError):
    """The cycle may not plan (a gate blocked or data is stale); the previous plan stays in force."""


@dataclass(frozen=True)
class ForecastBundle:
    run_id: str
    forecaster: str
    forecasts: pl.DataFrame
    targets: pl.DataFrame
    refit: bool
    seconds: float
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class PublishOutcome:
    plan_id: str
    created: bool
    orders: int
    released: int
    needs_approval: int
    report: Path | None
    outbox_files: tuple[Path, ...] = ()
    mlflow_run_id: str | None = None
    kpis: dict = field(default_factory=dict)
    steps: dict = field(default_factory=dict)


@task(name="deliver pending outbox", cache_policy=NO_CACHE)
def deliver_outbox_task(settings: Settings, now: datetime) -> list[Path]:
    """Finish any outbox delivery a crashed cycle left behind (idempotent)."""
    with open_warehouse(settings.db_path) as con:
        written = deliver_outbox(con, settings.outbox_dir, now)
    if written:
        get_run_logger().warning("completed %d outbox file(s) left by an earlier cycle", len(written))
    return written


@task(name="readiness", cache_policy=NO_CACHE)
def readiness_task(settings: Settings, policy: Policy, as_of: datetime, run_id: str, started: datetime) -> None:
    """Refuse to plan on blocked or stale data: record why, keep the previous plan, fail loudly."""
    with open_warehouse(settings.db_path) as con:
        problems = readiness_problems(latest_files(con, as_of), passing_as_of(con, as_of), as_of, policy)
        if not problems:
            return
        with transaction(con):
            record_cycle(con, run_id, as_of, started, datetime.now(started.tzinfo), "blocked", None, "; ".join(problems))
            append_audit(con, "ballast", "cycle_blocked", as_of.isoformat(), {"reasons": problems})
    raise CycleBlocked("no plan this cycle; the previous plan stays in force:\n  " + "\n  ".join(problems))


@task(name="read inputs", cache_policy=NO_CACHE)
def read_inputs_task(settings: Settings, as_of: datetime, mode: str, previous_plan: bool = False) -> CycleInputs:
    with open_warehouse(settings.db_path, read_only=True) as con:
        return read_cycle_inputs(con, as_of, mode, previous_plan=previous_plan)


@task(name="forecast (cached)", cache_policy=NO_CACHE)
def forecast_task(
    settings: Settings, policy: Policy, inputs: CycleInputs, as_of: datetime, refit: bool, budget_seconds: float,
    defer_slow_refits: bool = True,
) -> ForecastBundle:
    """The latest forecasts, refitted only when told or older than the policy allows.

    Safe default: when a refit is due but the last one took longer than the step's latency
    budget, the cycle plans on the cached forecasts and says so (the nightly refresh refits) —
    for a day at most: once the cached run is twice the policy's maximum age, or no longer reaches
    the end of the plan's horizon, it refits anyway (`refit_despite_budget`). Without that limit
    one slow refit on a busy machine left every later cycle on the same run until its forecasts
    ran out and the plans stopped replenishing (the twin, steady, 42 days: 1,699 lost units).
    `defer_slow_refits` False refits whenever one is due, however long the last took: the twin's
    days have no wall clock, and there the skip let machine load pick a plan's forecasts (five steady
    runs side by side on 2 cores planned 2 of their cycles each on cached runs; three, none).
    On a Dask task runner the refit fans its partitions out as mapped tasks (at least one per
    worker thread), so they run on the cluster; otherwise it fits them here, one after another.
    """
    from ballast.models.forecast import needs_refresh, refit_despite_budget
    from ballast.tasks.forecast import latest_or_refresh, prefect_map, run_forecast_refresh, sequential_jobs
    from ballast.tasks.runners import cluster_slots

    started = time.perf_counter()
    frames = inputs.frames
    notes: list[str] = []
    with open_warehouse(settings.db_path) as con:
        before = forecast_store.run_in_force(con, as_of)
        refit_allowed = True
        if defer_slow_refits and before is not None and not refit and needs_refresh(
            before["data_as_of"], as_of, policy.forecasting.max_age_hours, False
        ):
            last = (before["finished_at"] - before["started_at"]).total_seconds()
            if last > budget_seconds:
                why_not = refit_despite_budget(
                    before["as_of"], before["horizon_days"], before["data_as_of"], as_of,
                    policy.forecasting.max_age_hours, policy.horizon_days,
                )
                refit_allowed = why_not is not None
                notes.append(
                    f"forecasts are due for a refit, but the last refit took {last:.0f} s, over the "
                    f"{budget_seconds:.0f} s forecast budget: planned on cached run {before['run_id']}"
                    if why_not is None
                    else f"the last refit took {last:.0f} s, over the {budget_seconds:.0f} s forecast budget, "
                    f"but cached run {before['run_id']} {why_not}: refitted anyway"
                )

        slots = cluster_slots()

        def refresh():  # noqa: ANN202 - the forecast module's RefreshResult
            return run_forecast_refresh(
                con, inputs.demand, frames["sites"], frames["items"], frames["lanes"], policy, settings, as_of.date(),
                data_as_of=as_of, demand_files_sha256=inputs.fingerprints["demand"]["sha256"],
                map_fn=sequential_jobs if slots is None else prefect_map, min_partitions=slots or 1,
            )

        if refit_allowed:
            run_id, forecasts = latest_or_refresh(con, policy, as_of, refit, refresh)
        else:
            run_id = before["run_id"]
            forecasts = forecast_store.run_forecasts(con, run_id, as_of.date())
        run = query_frame(con, "SELECT model_name, model_version FROM fc_runs WHERE run_id = ?", [run_id]).row(0)
        series = forecast_store.run_series(con, run_id)
    targets = compute_targets(forecasts, series, frames["sites"], frames["lanes"], policy)
    refitted = before is None or before["run_id"] != run_id
    seconds = time.perf_counter() - started
    if seconds > budget_seconds:
        notes.append(f"forecast step took {seconds:.0f} s, over its {budget_seconds:.0f} s budget")
    return ForecastBundle(run_id, f"{run[0]}/{run[1]}", forecasts, targets, refitted, seconds, tuple(notes))


@task(name="plan identity", cache_policy=NO_CACHE)
def plan_identity_task(
    settings: Settings, policy_sha256: str, inputs: CycleInputs, bundle: ForecastBundle, mode: str,
    run_id: str, started: datetime,
) -> tuple[str, bool]:
    """The plan id these inputs determine, and whether that plan exists (then the cycle is a no-op)."""
    plan_id = make_plan_id(inputs.fingerprints, policy_sha256, f"{bundle.run_id}:{bundle.forecaster}", __version__, mode)
    with open_warehouse(settings.db_path) as con:
        exists = plan_exists(con, plan_id)
        if exists:
            record_cycle(con, run_id, inputs.as_of, started, datetime.now(started.tzinfo), "unchanged", plan_id,
                         "same inputs, policy, forecasts and code as an existing plan")
    if exists:
        get_run_logger().info("plan %s already exists for these inputs: nothing to do", plan_id)
    return plan_id, exists


def plan_kpis(result: EngineResult, orders: pl.DataFrame, bundle: ForecastBundle, as_of: datetime, days: int) -> dict:
    """Expected service with and without the plan, cost, and the size of the plan."""
    flows = stock_flows(
        result.positions.positions, result.positions.receipts, result.positions.issues,
        bundle.forecasts.filter(pl.col("day") < as_of.date() + timedelta(days=days)), orders, as_of.date(), days,
    )
    demand, unmet_without, unmet_with = expected_unmet(flows)
    transfers = orders.filter(pl.col("kind") == "transfer")
    purchases = orders.filter(pl.col("kind") == "purchase")
    return {
        "expected_fill_rate": 1.0 - unmet_with / demand if demand else 1.0,
        "expected_fill_rate_without_plan": 1.0 - unmet_without / demand if demand else 1.0,
        "shortages_avoided_units": unmet_without - unmet_with,
        "forecast_demand_units": demand,
        "transfers": transfers.height,
        "transfer_value": float(transfers.get_column("value").sum() or 0.0),
        "purchases": purchases.height,
        "purchase_value": float(purchases.get_column("value").sum() or 0.0),
        "transport_cost": float(orders.get_column("transport_cost").sum() or 0.0),
        "plan_objective": float(result.record.objective or 0.0),
        "orders_needing_approval": int((orders.get_column("approval_status") == "needs_approval").sum()),
    }


def governed_orders(
    result: EngineResult, sites: pl.DataFrame, lanes_used: pl.DataFrame, policy: Policy, as_of: datetime
) -> pl.DataFrame:
    """The engine's orders with approval status and reasons (JSON) and the freeze-window flag."""
    available = result.positions.positions.select("site_id", "sku", "available")
    orders = assess_approvals(result.orders, sites, lanes_used, available, policy)
    return orders.with_columns(
        in_freeze_window(pl.col("ship_date"), as_of.date(), policy).alias("in_freeze_window"),
        pl.Series("approval_reasons", [json.dumps(r) for r in orders.get_column("approval_reasons").to_list()]),
    )


def _prefect_artifacts(plan_id: str, kpis: dict, orders: pl.DataFrame, report: Path, mlflow_run_id: str) -> None:
    """A summary and the largest orders in the Prefect UI (the HTML report has the rest)."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    lines = [f"# Plan {plan_id}", "", "| KPI | value |", "|---|---|"]
    for key, value in kpis.items():
        shown = f"{value:.1%}" if "fill_rate" in key else (f"{value:,.0f}" if isinstance(value, float) else value)
        lines.append(f"| {key.replace('_', ' ')} | {shown} |")
    lines += ["", f"Report: `{report}`", f"MLflow run: `{mlflow_run_id}`"]
    slug = plan_id.lower()
    create_markdown_artifact("\n".join(lines), key=f"plan-{slug}", description=f"plan {plan_id}")
    top = orders.sort("value", descending=True, nulls_last=True).head(50)
    create_table_artifact(
        [
            {"order": o["order_id"], "status": o["approval_status"], "sku": o["sku"],
             "move": f"{o['origin']}→{o['destination']}", "ship": str(o["ship_date"]), "qty": round(o["qty"], 1),
             "value": round(o["value"] or 0.0, 2), "why": o["explanation"]}
            for o in top.iter_rows(named=True)
        ],
        key=f"plan-{slug}-orders",
        description=f"the 50 largest orders of plan {plan_id}",
    )


@task(name="governance + publish", cache_policy=NO_CACHE)
def publish_task(
    settings: Settings,
    plan_id: str,
    policy: Policy,
    policy_sha256: str,
    inputs: CycleInputs,
    bundle: ForecastBundle,
    result: EngineResult,
    as_of: datetime,
    mode: str,
    degraded: list[str],
    flow_run_id: str | None,
    now: datetime,
    policy_path: Path,
    steps: dict[str, float],
) -> PublishOutcome:
    """Approvals, then plan + orders + audit + releases in one transaction, then outbox files."""
    logger = get_run_logger()
    publish_started = time.perf_counter()
    if not result.publishable:
        raise RuntimeError(f"the plan failed verification and is not published: {result.verification}")
    fingerprints = inputs.fingerprints
    with open_warehouse(settings.db_path) as con:
        orders = governed_orders(result, inputs.frames["sites"], used_lanes(con), policy, as_of)
        kpis = plan_kpis(result, orders, bundle, as_of, policy.horizon_days)
        previous = inputs.previous_plan_id
        changes = diff_orders(order_status(con, previous), orders) if previous else pl.DataFrame()
        record = PlanRecord(
            plan_id=plan_id, as_of=as_of, mode=mode, policy_version=policy.version, policy_sha256=policy_sha256,
            code_version=__version__, forecast_run_id=bundle.run_id, forecaster=bundle.forecaster,
            inputs=fingerprints, solve=result.record.as_dict() | {"cycle_seconds": steps}, kpis=kpis,
            degraded=degraded,
            previous_plan_id=previous,
        )
        flows = stock_flows(
            result.positions.positions, result.positions.receipts, result.positions.issues,
            bundle.forecasts, orders, as_of.date(), policy.horizon_days,
        )
        projection = project_stock(flows)
        report_path = settings.reports_dir / "plans" / f"{plan_id}.html"
        # Lineage first: if MLflow is unreachable the cycle fails here, before anything is written.
        with plan_run(settings, plan_id, mode, as_of.isoformat(), flow_run_id) as run_id:
            record = replace(record, mlflow_run_id=run_id, report_path=str(report_path))
            plan_dict = asdict(record) | {"as_of": as_of.isoformat()}
            render_plan_report(plan_dict, orders, projection, most_affected(projection), changes, report_path)
            log_plan_lineage(settings, plan_dict, orders, policy_path, report_path)
            released = publish(con, record, orders, now)
        written = deliver_outbox(con, settings.outbox_dir, now) if mode == "live" else []
        record_cycle(con, flow_run_id or plan_id, as_of, now, datetime.now(now.tzinfo), "published", plan_id, None)
    needs = int((orders.get_column("approval_status") == "needs_approval").sum())
    _prefect_artifacts(plan_id, kpis, orders, report_path, run_id)
    logger.info("published plan %s: %d orders, %d released, %d need approval", plan_id, orders.height, len(released), needs)
    return PublishOutcome(
        plan_id, True, orders.height, len(released), needs, report_path, tuple(written), run_id, kpis,
        steps | {"publish": round(time.perf_counter() - publish_started, 3)},
    )
