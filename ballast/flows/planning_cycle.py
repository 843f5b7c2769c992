"""The 15-minute planning cycle: ingest → validate → positions → forecast → targets → agents →
coordinator → governance → publish. This module only wires tasks."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from prefect import flow, runtime
from prefect.utilities.annotations import quote
from pydantic import BaseModel, ConfigDict

from ballast.io.cycle_lock import cycle_lock
from ballast.models.engine import EngineOptions
from ballast.models.policy import load_policy
from ballast.settings import Settings
from ballast.tasks.cycle import (
    PublishOutcome,
    deliver_outbox_task,
    forecast_task,
    plan_identity_task,
    publish_task,
    read_inputs_task,
    readiness_task,
)
from ballast.tasks.engine import coordinate_task
from ballast.tasks.ingest import ingest_task, validate_task
from ballast.tasks.rollout import champion_policy_task, shadow_challenger


class CycleParams(BaseModel):
    """Parameters of one cycle (validated when a deployment passes them)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    as_of: datetime | None = None  # default: now
    ingest: bool = True  # take new inbox files first
    refit_forecasts: bool = False  # refit even if the latest forecasts are fresh enough
    # a due refit is put off for a day when the last one overran the forecast budget (False: never; the twin)
    defer_slow_refits: bool = True
    mode: Literal["live", "shadow"] = "live"
    policy: Path | None = None  # another policy file (shadow runs a challenger)
    home: Path | None = None  # another BALLAST_HOME (a simulation's own warehouse, inbox, outbox, MLflow store)


def _run_name() -> str:
    params = runtime.flow_run.parameters.get("params") or {}
    as_of = params.get("as_of") if isinstance(params, dict) else getattr(params, "as_of", None)
    stamp = as_of if isinstance(as_of, str) else (as_of or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%MZ")
    return f"cycle {stamp}"


@flow(name="planning-cycle", flow_run_name=_run_name)
def planning_cycle(params: CycleParams | None = None) -> PublishOutcome:
    """Plan once as of `params.as_of`; fails (so a scheduler alerts) when the data may not be planned on."""
    params = params or CycleParams()
    settings = Settings(home=params.home) if params.home is not None else Settings()
    started = datetime.now(UTC)
    as_of = (params.as_of or started).astimezone(UTC)
    # A live cycle plans under the registered champion policy (its stored text), else the settings' file.
    champion = champion_policy_task(settings) if params.mode == "live" and params.policy is None else None
    policy_path = params.policy or champion or settings.policy_path
    policy, policy_sha = load_policy(policy_path)
    budgets = policy.latency_budgets_seconds
    flow_run_id = str(runtime.flow_run.id) if runtime.flow_run.id else None
    degraded: list[str] = []
    steps: dict[str, float] = {}
    clock = time.monotonic()

    def lap(step: str) -> None:
        nonlocal clock
        steps[step] = round(time.monotonic() - clock, 3)
        clock = time.monotonic()

    with cycle_lock(settings.db_path, f"planning cycle {as_of:%Y-%m-%dT%H:%MZ}"):
        deliver_outbox_task(settings, started)
        if params.ingest:
            ingest_task(settings, as_of)
            lap("ingest")
            validate_task(settings, policy, as_of)
            lap("validate")
        readiness_task(settings, policy, as_of, flow_run_id or as_of.isoformat(), started)
        # the previous plan is an input only where the policy prices changes from it
        inputs = read_inputs_task(settings, as_of, params.mode, policy.release_now_cost_on == "changes")
        lap("read_inputs")
        bundle = forecast_task(
            settings, policy, inputs, as_of, params.refit_forecasts, budgets.forecast, params.defer_slow_refits
        )
        lap("forecast")
        degraded.extend(bundle.notes)
        plan_id, exists = plan_identity_task(
            settings, policy_sha, inputs, bundle, params.mode, flow_run_id or as_of.isoformat(), started
        )
        if exists:
            return PublishOutcome(plan_id, False, 0, 0, 0, None)
        # The solver gets what is left of its budget; past it the ladder falls back (incumbent, LP, greedy).
        solve_limit = min(policy.solver.time_limit_seconds, budgets.solve)
        result = coordinate_task(
            inputs.frames, bundle.forecasts, bundle.targets, policy, as_of.date(),
            released_orders=inputs.released, previous_orders=inputs.previous_orders,
            options=EngineOptions(time_limit_seconds=solve_limit),
        )
        lap("coordinate")
        if result.record.rung != "mip":
            degraded.append(f"solved on fallback rung '{result.record.rung}' ({result.record.termination})")
        degraded.extend(result.record.alerts)
        # quote: Prefect would otherwise walk every element of the engine result (its model index
        # sets) looking for futures: 0.9 s per walk on S, growing with the model.
        outcome = publish_task(
            settings, plan_id, policy, policy_sha, inputs, bundle, quote(result), as_of, params.mode, degraded,
            flow_run_id, datetime.now(UTC), policy_path, steps,
        )
        if params.mode == "live":  # after the champion is published; never fails the cycle
            shadow_challenger(settings, outcome, policy_path, inputs, bundle, as_of, flow_run_id, solve_limit)
        return outcome
