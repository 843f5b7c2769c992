"""Backfill tasks: prepare (writer), plan (any worker), commit (writer).

DuckDB allows one writing process, so a backfill splits each as-of in three:

* `prepare_task` runs in the flow's process, the one writer. It reads everything the cycle at
  that as-of would have read — as known then (`known_at=as_of`) — resolves the policy and the
  forecasts in force then (fitting and storing a forecast as of then only when none exists),
  decides whether the as-of is already done, and hands over a self-contained `PlanJob`.
* `plan_task` is pure computation on the job (engine, approvals, KPIs, projection). It never
  opens the warehouse, so it runs on a thread, a local Dask worker or a remote Dask cluster.
* `commit_task` runs in the flow's process again: report, MLflow lineage, one publishing
  transaction (`mode = 'backfill'`: nothing released, nothing in the outbox), the step row.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import MissingContextError

from ballast import __version__
from ballast.io import backfill as store
from ballast.io import forecast_store
from ballast.io.cycle_inputs import latest_files, passing_as_of, read_cycle_inputs, used_lanes_known
from ballast.io.lineage import log_plan_lineage, plan_run
from ballast.io.plan_report import render_plan_report
from ballast.io.plans import PlanRecord, latest_plan_id, order_status, plan_exists, publish
from ballast.io.warehouse import open_warehouse, query_frame
from ballast.models.backfill import StepOutcome, decide, forced_plan_id
from ballast.models.engine import EngineOptions, plan_network
from ballast.models.forecast import needs_refresh
from ballast.models.identity import plan_id as make_plan_id
from ballast.models.plan_diff import diff_orders
from ballast.models.policy import Policy, load_policy
from ballast.models.projection import most_affected, project_stock, stock_flows
from ballast.models.readiness import readiness_problems
from ballast.models.targets import compute_targets
from ballast.settings import Settings
from ballast.tasks.cycle import ForecastBundle, governed_orders, plan_kpis

MODE = "backfill"


def _log():  # noqa: ANN202 - Prefect's run logger inside a run, else the module logger
    import logging

    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(__name__)


@dataclass(frozen=True)
class PlanJob:
    """Everything one as-of needs to be planned, read as known at that as-of (no warehouse handle)."""

    as_of: datetime
    plan_id: str
    policy: Policy
    policy_sha256: str
    policy_path: Path
    frames: dict[str, pl.DataFrame]
    released: pl.DataFrame
    used_lanes: pl.DataFrame
    forecasts: pl.DataFrame
    targets: pl.DataFrame
    forecast_run_id: str
    forecaster: str
    fingerprints: dict
    solve_limit_seconds: float
    notes: tuple[str, ...] = ()
    prepare_seconds: float = 0.0


@dataclass(frozen=True)
class PlanDraft:
    """A computed plan waiting for the writer (or why it could not be made)."""

    as_of: datetime
    plan_id: str
    orders: pl.DataFrame | None = None
    kpis: dict = field(default_factory=dict)
    solve: dict = field(default_factory=dict)
    projection: pl.DataFrame | None = None
    affected: pl.DataFrame | None = None
    degraded: tuple[str, ...] = ()
    error: str | None = None
    seconds: float = 0.0


def resolve_policy(con, settings: Settings, as_of: datetime, override: Path | None) -> tuple[Policy, str, Path]:  # noqa: ANN001
    """(policy, sha256, file) for `as_of`: the `--policy` file of a what-if, else the version in force
    then (rollout registry), else the settings' policy file."""
    if override is not None:
        policy, sha = load_policy(override)
        return policy, sha, override
    from ballast.io.rollout import policy_in_force

    version = policy_in_force(con, as_of)
    if version is None:
        policy, sha = load_policy(settings.policy_path)
        return policy, sha, settings.policy_path
    path = version.materialise(settings.reports_dir / "backfills" / "policies")
    return version.policy(), version.sha256, path


def forecasts_as_known(con, settings: Settings, policy: Policy, inputs, as_of: datetime) -> ForecastBundle:  # noqa: ANN001
    """The forecasts a cycle at `as_of` planned on.

    The live run in force then, if it was fresh enough for the cycle to use it; otherwise a run
    fitted as of `as_of` on exactly the demand files known then (reused if a backfill already
    fitted it, fitted and stored once if not).
    """
    from ballast.tasks.forecast import resolve_config, run_forecast_refresh

    frames = inputs.frames
    started = time.perf_counter()
    notes: list[str] = []
    live = forecast_store.run_in_force(con, as_of, "live")
    refit = False
    if live is not None and not needs_refresh(live["data_as_of"], as_of, policy.forecasting.max_age_hours, False):
        run_id = live["run_id"]
    else:
        config = resolve_config(settings, None)
        config_json = json.dumps(asdict(config), sort_keys=True)
        demand_sha = inputs.fingerprints["demand"]["sha256"]
        found = forecast_store.run_for_data(con, as_of.date(), demand_sha, config_json)
        if found is not None:
            run_id = found["run_id"]
        else:
            result = run_forecast_refresh(
                con, inputs.demand, frames["sites"], frames["items"], frames["lanes"], policy, settings,
                as_of.date(), config=config, data_as_of=as_of, origin=MODE, demand_files_sha256=demand_sha,
            )
            run_id, refit = result.run_id, True
            notes.append(f"no live forecasts in force: fitted run {run_id} on the demand known at "
                         f"{as_of:%Y-%m-%dT%H:%MZ}")
    forecasts = forecast_store.run_forecasts(con, run_id, as_of.date())
    model = query_frame(con, "SELECT model_name, model_version FROM fc_runs WHERE run_id = ?", [run_id]).row(0)
    series = forecast_store.run_series(con, run_id)
    targets = compute_targets(forecasts, series, frames["sites"], frames["lanes"], policy)
    return ForecastBundle(run_id, f"{model[0]}/{model[1]}", forecasts, targets, refit,
                          time.perf_counter() - started, tuple(notes))


def _normalised(fingerprints: dict) -> dict:
    """Fingerprints as they read back from the plans table (JSON round trip)."""
    return json.loads(json.dumps(fingerprints, default=str))


def prepare(settings: Settings, as_of: datetime, policy_override: Path | None, force: bool) -> PlanJob | StepOutcome:
    """Read the cycle's world as known at `as_of`; a `StepOutcome` when there is nothing to plan."""
    started = time.perf_counter()

    def outcome(status: str, plan_id: str | None, reason: str) -> StepOutcome:
        return StepOutcome(as_of, status, plan_id, reason, time.perf_counter() - started)  # type: ignore[arg-type]

    with open_warehouse(settings.db_path) as con:
        policy, policy_sha, policy_path = resolve_policy(con, settings, as_of, policy_override)
        problems = readiness_problems(latest_files(con, as_of, as_of), passing_as_of(con, as_of, as_of), as_of, policy)
        if problems:
            return outcome("blocked", None, "; ".join(problems))
        inputs = read_cycle_inputs(con, as_of, MODE, known_at=as_of)
        decision = decide(store.backfilled_plans(con, as_of, policy_sha, __version__),
                          _normalised(inputs.fingerprints), force)
        if not decision.plan:
            return outcome("skipped", decision.existing_plan_id, decision.reason)
        bundle = forecasts_as_known(con, settings, policy, inputs, as_of)
        forecast_ref = f"{bundle.run_id}:{bundle.forecaster}"
        plan_id = make_plan_id(inputs.fingerprints, policy_sha, forecast_ref, __version__, MODE)
        if plan_exists(con, plan_id):
            if not force:
                return outcome("skipped", plan_id, "already planned with the same inputs")
            plan_id = forced_plan_id(plan_id, store.plan_ids_like(con, plan_id))
        lanes = used_lanes_known(con, as_of)
    budgets = policy.latency_budgets_seconds
    return PlanJob(
        as_of=as_of, plan_id=plan_id, policy=policy, policy_sha256=policy_sha, policy_path=policy_path,
        frames=inputs.frames, released=inputs.released, used_lanes=lanes, forecasts=bundle.forecasts,
        targets=bundle.targets, forecast_run_id=bundle.run_id, forecaster=bundle.forecaster,
        fingerprints=inputs.fingerprints, solve_limit_seconds=min(policy.solver.time_limit_seconds, budgets.solve),
        notes=bundle.notes, prepare_seconds=time.perf_counter() - started,
    )


def compute_plan(job: PlanJob) -> PlanDraft:
    """Engine → approvals → KPIs → projection for one as-of (pure: no warehouse, no MLflow)."""
    started = time.perf_counter()
    as_of = job.as_of
    try:
        result = plan_network(
            job.frames, job.forecasts, job.targets, job.policy, as_of.date(), released_orders=job.released,
            options=EngineOptions(time_limit_seconds=job.solve_limit_seconds),
        )
    except Exception as exc:  # noqa: BLE001 - one bad as-of must not stop the replay; the summary names it
        return PlanDraft(as_of, job.plan_id, error=f"engine failed: {type(exc).__name__}: {exc}",
                         seconds=time.perf_counter() - started)
    if not result.publishable:
        return PlanDraft(as_of, job.plan_id, error=f"the plan failed verification: {result.verification}",
                         seconds=time.perf_counter() - started)
    orders = governed_orders(result, job.frames["sites"], job.used_lanes, job.policy, as_of)
    bundle = ForecastBundle(job.forecast_run_id, job.forecaster, job.forecasts, job.targets, False, 0.0)
    kpis = plan_kpis(result, orders, bundle, as_of, job.policy.horizon_days)
    flows = stock_flows(
        result.positions.positions, result.positions.receipts, result.positions.issues,
        job.forecasts, orders, as_of.date(), job.policy.horizon_days,
    )
    projection = project_stock(flows)
    degraded = list(job.notes)
    if result.record.rung != "mip":
        degraded.append(f"solved on fallback rung '{result.record.rung}' ({result.record.termination})")
    degraded.extend(result.record.alerts)
    seconds = time.perf_counter() - started
    solve = result.record.as_dict() | {"cycle_seconds": {"prepare": round(job.prepare_seconds, 3),
                                                          "plan": round(seconds, 3)}}
    return PlanDraft(as_of, job.plan_id, orders, kpis, solve, projection, most_affected(projection),
                     tuple(degraded), None, seconds)


def commit(
    settings: Settings, job: PlanJob, draft: PlanDraft, backfill_id: str, flow_run_id: str | None
) -> StepOutcome:
    """The writer's part: report, lineage and one publishing transaction (never released, no outbox)."""
    now = datetime.now(UTC)
    started = time.perf_counter()
    with open_warehouse(settings.db_path) as con:
        if draft.error is not None or draft.orders is None:
            reason = draft.error or "no plan"
            store.record_step(con, backfill_id, job.as_of, "failed", job.plan_id, reason, draft.seconds, now)
            return StepOutcome(job.as_of, "failed", job.plan_id, reason, draft.seconds)
        if plan_exists(con, job.plan_id):  # another backfill committed it since this one prepared
            store.record_step(con, backfill_id, job.as_of, "skipped", job.plan_id, "committed meanwhile", 0.0, now)
            return StepOutcome(job.as_of, "skipped", job.plan_id, "committed meanwhile", 0.0)
        previous = latest_plan_id(con, MODE, job.as_of)
        record = PlanRecord(
            plan_id=job.plan_id, as_of=job.as_of, mode=MODE, policy_version=job.policy.version,
            policy_sha256=job.policy_sha256, code_version=__version__, forecast_run_id=job.forecast_run_id,
            forecaster=job.forecaster, inputs=job.fingerprints, solve=draft.solve, kpis=draft.kpis,
            degraded=list(draft.degraded), previous_plan_id=previous,
        )
        changes = diff_orders(order_status(con, previous), draft.orders) if previous else pl.DataFrame()
        report_path = settings.reports_dir / "plans" / f"{job.plan_id}.html"
        with plan_run(settings, job.plan_id, MODE, job.as_of.isoformat(), flow_run_id) as run_id:
            record = replace(record, mlflow_run_id=run_id, report_path=str(report_path))
            plan_dict = asdict(record) | {"as_of": job.as_of.isoformat()}
            render_plan_report(plan_dict, draft.orders, draft.projection, draft.affected, changes, report_path)
            log_plan_lineage(settings, plan_dict, draft.orders, job.policy_path, report_path)
            publish(con, record, draft.orders, now)
        seconds = job.prepare_seconds + draft.seconds + (time.perf_counter() - started)
        store.record_step(con, backfill_id, job.as_of, "planned", job.plan_id, None, seconds, now)
    return StepOutcome(job.as_of, "planned", job.plan_id, None, seconds, draft.kpis)


# --------------------------------------------------------------------------------------------
# Prefect tasks (thin)


@task(name="backfill: prepare as-of", cache_policy=NO_CACHE, persist_result=False)
def prepare_task(
    settings: Settings, as_of: datetime, policy_override: Path | None, force: bool
) -> PlanJob | StepOutcome:
    """Inputs, policy and forecasts as known at `as_of` (runs in the writer)."""
    return prepare(settings, as_of, policy_override, force)


@task(name="backfill: plan as-of", cache_policy=NO_CACHE, persist_result=False)
def plan_task(job: PlanJob) -> PlanDraft:
    """Compute one as-of's plan from the job it is handed (any worker; no warehouse access)."""
    draft = compute_plan(job)
    if draft.error:
        _log().warning("as-of %s: %s", job.as_of.isoformat(), draft.error)
    return draft


@task(name="backfill: commit as-of", cache_policy=NO_CACHE, persist_result=False)
def commit_task(
    settings: Settings, job: PlanJob, draft: PlanDraft, backfill_id: str, flow_run_id: str | None
) -> StepOutcome:
    """Publish the computed plan as a backfilled plan (runs in the writer)."""
    return commit(settings, job, draft, backfill_id, flow_run_id)


@task(name="backfill: record step", cache_policy=NO_CACHE, persist_result=False)
def record_outcome_task(settings: Settings, backfill_id: str, outcome: StepOutcome) -> None:
    """Note a skipped or blocked as-of in `backfill_steps`."""
    with open_warehouse(settings.db_path) as con:
        store.record_step(con, backfill_id, outcome.as_of, outcome.status, outcome.plan_id, outcome.reason,
                          outcome.seconds, datetime.now(UTC))

