"""Safe rollout in the live cycle: plan under the champion policy; run the challenger in shadow.

After the champion plan is published, the registered challenger (a policy, a forecaster
version, or both) plans on the same inputs. Its plan is published with mode `shadow` (never
released, never in the outbox), linked to the champion plan in `challenger_plans`, with its
own MLflow run tagged `challenger`; the champion's report gets a comparison section. A
challenger that fails is recorded and noted in the champion's report; it never fails the cycle.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import MissingContextError

from ballast import __version__
from ballast.io import forecast_store, rollout
from ballast.io.cycle_inputs import CycleInputs
from ballast.io.cycle_lock import cycle_lock
from ballast.io.lineage import log_plan_lineage, plan_run
from ballast.io.plan_report import render_plan_report
from ballast.io.plans import PlanRecord, order_status, plan_exists, publish
from ballast.io.rollout_report import add_comparison, comparison_html
from ballast.io.warehouse import one, open_warehouse
from ballast.models.engine import EngineOptions, plan_network
from ballast.models.identity import plan_id as make_plan_id
from ballast.models.plan_diff import diff_orders
from ballast.models.policy import Policy, load_policy
from ballast.models.projection import most_affected, project_stock, stock_flows
from ballast.models.rollout import compare_plans
from ballast.models.targets import compute_targets, forecast_horizon
from ballast.settings import Settings
from ballast.tasks.cycle import ForecastBundle, PublishOutcome, governed_orders, plan_kpis

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChallengerOutcome:
    champion_plan_id: str
    challenger: str
    status: str  # published | existing | failed
    plan_id: str | None = None
    note: str | None = None
    kpis: dict = field(default_factory=dict)
    mlflow_run_id: str | None = None
    report: Path | None = None


def _log() -> logging.Logger | logging.LoggerAdapter:
    try:
        return get_run_logger()
    except MissingContextError:
        return logger


def policy_folder(settings: Settings) -> Path:
    """Where registered policy versions are written out for the cycle (beside the warehouse)."""
    return settings.db_path.parent / "policies"


@task(name="champion policy", cache_policy=NO_CACHE)
def champion_policy_task(settings: Settings) -> Path | None:
    """The registered champion policy as a file (its stored text, byte for byte); None: use the settings' file."""
    if not settings.db_path.exists():
        return None
    # Under the cycle lock: a second cycle exits at once (CycleBusy) instead of waiting on DuckDB.
    with cycle_lock(settings.db_path, "reading the champion policy"), \
            open_warehouse(settings.db_path, read_only=True) as con:
        version = rollout.champion_policy(con)
    if version is None:
        return None
    _log().info("planning under champion policy %s (sha256 %s…)", version.version, version.sha256[:12])
    return version.materialise(policy_folder(settings))


def forecaster_config(settings: Settings, name: str, version: str) -> dict:
    """The forecasting config a registered forecaster version was logged with."""
    import mlflow

    from ballast.io import tracking

    tracking.init_tracking(settings)
    path = mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}")
    cfg = next(Path(path).rglob("config.json"), None)
    if cfg is None:
        raise FileNotFoundError(f"forecaster {name} v{version} has no config.json artifact")
    return json.loads(cfg.read_text())


def challenger_forecasts(
    con: duckdb.DuckDBPyConnection, settings: Settings, policy: Policy, inputs: CycleInputs, as_of: datetime,
    forecaster: rollout.ForecasterVersion,
) -> ForecastBundle:
    """Forecasts of the challenger forecaster for this cycle, fitted once per demand history and cached
    apart from the champion's forecast runs."""
    from ballast.models import forecast as fc
    from ballast.tasks.forecast import demand_digest, prepare_series

    started = time.perf_counter()
    config = fc.ForecastConfig.from_dict(forecaster_config(settings, forecaster.name, forecaster.version))
    frames = inputs.frames
    day = as_of.date()
    horizon = forecast_horizon(policy, frames["sites"], frames["lanes"], inputs.demand["site_id"].unique().to_list())
    dense, meta = prepare_series(inputs.demand, frames["items"], day, horizon, config)
    key = f"{forecaster.name}/{forecaster.version}:{day}:{demand_digest(meta)[:16]}:h{horizon}"
    cached = rollout.cached_challenger_forecasts(con, key)
    refit = cached is None
    if cached is None:
        fitted = fc.fit_partition(dense, meta, horizon, config)
        series = meta.select("site_id", "sku", "sku_class", "demand_class").join(
            fitted.series.select("site_id", "sku", "model"), on=["site_id", "sku"], how="left"
        )
        rollout.save_challenger_forecasts(con, key, fitted.forecasts, series)
        forecasts = fitted.forecasts
    else:
        forecasts, series = cached
    forecasts = forecasts.filter(pl.col("day") >= day)
    targets = compute_targets(forecasts, series, frames["sites"], frames["lanes"], policy)
    return ForecastBundle(key, f"{forecaster.name}/{forecaster.version}", forecasts, targets, refit,
                          time.perf_counter() - started)


def _comparison_section(
    con: duckdb.DuckDBPyConnection, champion_plan_id: str, challenger_plan_id: str, described: str,
    challenger_report: Path | None,
) -> str:
    kpis = {}
    for pid in (champion_plan_id, challenger_plan_id):
        row = one(con, "SELECT kpis FROM plans WHERE plan_id = ?", [pid])
        kpis[pid] = json.loads(row[0]) if row else {}
    comparison = compare_plans(
        kpis[champion_plan_id], kpis[challenger_plan_id],
        order_status(con, champion_plan_id), order_status(con, challenger_plan_id),
    )
    return comparison_html(described, challenger_plan_id, challenger_report, comparison, None)


def _update_champion_report(settings: Settings, champion: PublishOutcome, section: str, tags: dict[str, str]) -> None:
    """Put the comparison into the champion's report and its MLflow run (best effort for MLflow)."""
    if champion.report is None or not champion.report.exists():
        return
    add_comparison(champion.report, section)
    if champion.mlflow_run_id:
        try:
            from mlflow.tracking import MlflowClient

            from ballast.io import tracking

            tracking.init_tracking(settings)
            client = MlflowClient()
            client.log_artifact(champion.mlflow_run_id, str(champion.report), artifact_path="report")
            for k, v in tags.items():
                client.set_tag(champion.mlflow_run_id, k, v)
        except Exception as exc:  # noqa: BLE001 - the report file already has it; MLflow's copy is a convenience
            _log().warning("could not update the champion's MLflow run with the comparison: %s", exc)


def run_challenger(
    settings: Settings,
    champion: PublishOutcome,
    champion_policy_path: Path,
    challenger: rollout.Challenger,
    inputs: CycleInputs,
    bundle: ForecastBundle,
    as_of: datetime,
    flow_run_id: str | None,
    solve_budget_seconds: float,
) -> ChallengerOutcome:
    """Plan the challenger on the champion's inputs and publish it in shadow, linked to the champion plan."""
    import mlflow

    log = _log()
    described = challenger.describe()
    folder = policy_folder(settings)
    if challenger.policy is not None:
        policy_path = challenger.policy.materialise(folder)
    else:
        policy_path = champion_policy_path
    policy, policy_sha = load_policy(policy_path)
    frames = inputs.frames
    with open_warehouse(settings.db_path) as con:
        if challenger.forecaster is not None:
            cbundle = challenger_forecasts(con, settings, policy, inputs, as_of, challenger.forecaster)
        else:  # same forecasts; targets follow the challenger's service levels
            series = forecast_store.run_series(con, bundle.run_id)
            cbundle = replace(bundle, targets=compute_targets(bundle.forecasts, series, frames["sites"],
                                                               frames["lanes"], policy))
        plan_id = make_plan_id(inputs.fingerprints, policy_sha, f"{cbundle.run_id}:{cbundle.forecaster}",
                               __version__, "shadow")
        existing = plan_exists(con, plan_id)
        if existing:
            now = datetime.now(UTC)
            rollout.record_challenger_plan(con, champion.plan_id, plan_id, "existing", policy_sha, cbundle.forecaster,
                                           "a shadow plan for these inputs existed already", now)
            report = one(con, "SELECT report_path FROM plans WHERE plan_id = ?", [plan_id])
            path = Path(report[0]) if report and report[0] else None
            section = _comparison_section(con, champion.plan_id, plan_id, described, path)
    if existing:
        _update_champion_report(settings, champion, section, {"challenger_plan_id": plan_id})
        return ChallengerOutcome(champion.plan_id, described, "existing", plan_id)

    solve_limit = min(policy.solver.time_limit_seconds, solve_budget_seconds)
    result = plan_network(frames, cbundle.forecasts, cbundle.targets, policy, as_of.date(),
                          released_orders=inputs.released, options=EngineOptions(time_limit_seconds=solve_limit))
    if not result.publishable:
        raise RuntimeError(f"the challenger's plan failed verification: {result.verification}")
    degraded = list(cbundle.notes) + list(result.record.alerts)
    if challenger.forecaster is None:  # the champion's forecasts reach as far as the champion policy needs
        demand_sites = inputs.demand["site_id"].unique().to_list()
        needed = forecast_horizon(policy, frames["sites"], frames["lanes"], demand_sites)
        covered = forecast_horizon(load_policy(champion_policy_path)[0], frames["sites"], frames["lanes"], demand_sites)
        if needed > covered:
            degraded.append(f"the challenger policy needs forecasts {needed} days ahead; the champion's forecasts "
                            f"it planned on cover {covered}")
    if result.record.rung != "mip":
        degraded.append(f"solved on fallback rung '{result.record.rung}' ({result.record.termination})")
    now = datetime.now(UTC)
    with open_warehouse(settings.db_path) as con:
        # Approvals on the same footing as the champion's: lanes used before the champion released anything.
        lanes_used = rollout.lanes_used_before(con, champion.plan_id)
        orders = governed_orders(result, frames["sites"], lanes_used, policy, as_of)
        kpis = plan_kpis(result, orders, cbundle, as_of, policy.horizon_days)
        changes = diff_orders(order_status(con, champion.plan_id), orders)
        record = PlanRecord(
            plan_id=plan_id, as_of=as_of, mode="shadow", policy_version=policy.version, policy_sha256=policy_sha,
            code_version=__version__, forecast_run_id=cbundle.run_id, forecaster=cbundle.forecaster,
            inputs=inputs.fingerprints, solve=result.record.as_dict() | {"challenger_of": champion.plan_id},
            kpis=kpis, degraded=degraded, previous_plan_id=champion.plan_id,
        )
        flows = stock_flows(result.positions.positions, result.positions.receipts, result.positions.issues,
                            cbundle.forecasts, orders, as_of.date(), policy.horizon_days)
        projection = project_stock(flows)
        report_path = settings.reports_dir / "plans" / f"{plan_id}.html"
        tags = {"challenger": "true", "challenger_of": champion.plan_id, "challenger_versions": described}
        with plan_run(settings, plan_id, "shadow", as_of.isoformat(), flow_run_id) as run_id:
            mlflow.set_tags(tags)
            record = replace(record, mlflow_run_id=run_id, report_path=str(report_path))
            plan_dict = asdict(record) | {"as_of": as_of.isoformat()}
            render_plan_report(plan_dict, orders, projection, most_affected(projection), changes, report_path)
            log_plan_lineage(settings, plan_dict, orders, policy_path, report_path)
            publish(con, record, orders, now)  # mode shadow: nothing is released
            rollout.record_challenger_plan(con, champion.plan_id, plan_id, "published", policy_sha,
                                           cbundle.forecaster, None, now)
        section = _comparison_section(con, champion.plan_id, plan_id, described, report_path)
    _update_champion_report(settings, champion, section, {"challenger_plan_id": plan_id})
    log.info("challenger %s: shadow plan %s beside champion %s (%d orders, never released)",
             described, plan_id, champion.plan_id, orders.height)
    return ChallengerOutcome(champion.plan_id, described, "published", plan_id, None, kpis, run_id, report_path)


@task(name="challenger in shadow", cache_policy=NO_CACHE)
def challenger_task(
    settings: Settings,
    champion: PublishOutcome,
    champion_policy_path: Path,
    inputs: CycleInputs,
    bundle: ForecastBundle,
    as_of: datetime,
    flow_run_id: str | None,
    solve_budget_seconds: float,
) -> ChallengerOutcome | None:
    """The registered challenger's shadow plan beside `champion`; a failure is recorded, never raised."""
    log = _log()
    with open_warehouse(settings.db_path, read_only=True) as con:
        challenger = rollout.challenger(con)
    if challenger is None or not champion.created:
        return None
    try:
        return run_challenger(settings, champion, champion_policy_path, challenger, inputs, bundle, as_of,
                              flow_run_id, solve_budget_seconds)
    except Exception as exc:  # noqa: BLE001 - a challenger must never fail the champion's cycle
        note = f"{type(exc).__name__}: {exc}"
        log.warning("challenger %s failed; champion plan %s stands: %s", challenger.describe(), champion.plan_id, note)
        with open_warehouse(settings.db_path) as con:
            p, f = challenger.policy, challenger.forecaster
            rollout.record_challenger_plan(con, champion.plan_id, None, "failed", p.sha256 if p else None,
                                           f"{f.name}/{f.version}" if f else None, note, datetime.now(UTC))
        section = comparison_html(challenger.describe(), None, None, None, note)
        _update_champion_report(settings, champion, section, {"challenger_status": "failed"})
        return ChallengerOutcome(champion.plan_id, challenger.describe(), "failed", None, note)


def shadow_challenger(*args: object) -> ChallengerOutcome | None:
    """Call `challenger_task`; whatever goes wrong (even recording the failure), the champion stands."""
    try:
        return challenger_task(*args)  # type: ignore[arg-type]
    except Exception as exc:  # noqa: BLE001
        _log().warning("challenger step failed and was skipped; the champion plan stands: %s", exc)
        return None
