"""`ballast simulate`: the digital twin as a Prefect flow. For every scenario and seed it draws one
world (common random numbers), runs the two baselines (tuned on training seeds), the
perfect-information bound, and ballast itself — the real planning cycle as a subflow, once per
simulated day, on extracts the simulator delivers into the run's own inbox. This module only wires."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

from prefect import flow, get_run_logger
from pydantic import BaseModel, ConfigDict, Field

from ballast.flows.planning_cycle import CycleParams, planning_cycle
from ballast.io.twin_store import SimulationHome
from ballast.models.policy import load_policy
from ballast.models.twin.config import load_twin_settings
from ballast.models.twin.scenarios import get_scenario
from ballast.models.twin.world import BASELINES
from ballast.settings import Settings
from ballast.tasks.cycle import CycleBlocked
from ballast.tasks.twin import (
    as_of_of,
    assert_isolated,
    baseline_task,
    bound_task,
    land_day_task,
    network_task,
    record_task,
    solver_stops_task,
    step_task,
    take_orders_task,
    tune_task,
    world_task,
)
from ballast.tasks.twin_report import report_task

POLICIES = ("ballast", *BASELINES, "bound")


class SimulateParams(BaseModel):
    """What to simulate (validated when a deployment passes it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    scenarios: tuple[str, ...] = ("steady",)
    seeds: tuple[int, ...] = (1,)
    days: int | None = Field(None, ge=1, le=366)  # default: the twin settings' days
    policy: Path | None = None  # the ballast policy under test (default: the home's policy)
    twin: Path | None = None  # twin settings file (default: the packaged defaults)
    size: str | None = None  # a named sample size (S, M, L) instead of the twin's small network
    policies: tuple[str, ...] = POLICIES
    home: Path | None = None  # BALLAST_HOME under which simulations/<name>/ is made
    progress: bool = False


def _progress(enabled: bool, total: int):  # noqa: ANN202 - a rich Progress or a null context
    if not enabled:
        return nullcontext(None)
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    bar.add_task("simulated days", total=total)
    return bar


@flow(name="simulate", flow_run_name="simulate {params.name}")
def simulate(params: SimulateParams) -> dict:
    """Run every (scenario, seed) for every policy; record KPIs; render the report. Returns its path and counts."""
    logger = get_run_logger()
    unknown = sorted(set(params.policies) - set(POLICIES))
    if unknown:
        raise ValueError(f"unknown polic(ies) {', '.join(unknown)}; known: {', '.join(POLICIES)}")
    home = params.home or Settings().home
    twin = load_twin_settings(params.twin, days=params.days)
    policy_path = (params.policy or Settings(home=home).policy_path).resolve()
    policy, policy_sha = load_policy(policy_path)
    sim_home = SimulationHome.under(home, params.name)
    if sim_home.results_db.exists():
        raise FileExistsError(f"simulation {params.name!r} already exists at {sim_home.root}; choose another --name")
    scenarios = [get_scenario(s) for s in params.scenarios]
    frames, network = network_task(twin, policy, params.size)
    days = twin.days
    run_ballast = "ballast" in params.policies
    total = len(scenarios) * len(params.seeds) * (days if run_ballast else 1)
    runs = 0
    with _progress(params.progress, total) as bar:
        for scenario in scenarios:
            training = [
                world_task(frames, network, scenario, s, days, twin, policy) for s in twin.baselines.training_seeds
            ]
            tuned = {k: tune_task(training, k, twin) for k in BASELINES if k in params.policies}
            for seed in params.seeds:
                world = world_task(frames, network, scenario, seed, days, twin, policy)
                bound = bound_task(world, twin) if "bound" in params.policies else None
                if bound is not None:
                    record_task(
                        sim_home,
                        world,
                        "bound",
                        {"solver": "highs", "status": bound.status, "integer_lanes": twin.bound.integer_lanes},
                        None,
                        bound,
                        twin,
                    )
                    runs += 1
                for kind, (m, r) in tuned.items():
                    ledger = baseline_task(world, kind, m, r, twin)
                    record_task(
                        sim_home,
                        world,
                        kind,
                        {"multiplier": m, "review_days": r, "service_z": twin.baselines.service_z},
                        ledger,
                        bound,
                        twin,
                    )
                    runs += 1
                if not run_ballast:
                    if bar is not None:
                        bar.advance(bar.task_ids[0])
                    continue
                run_home = sim_home.run_home(scenario.name, seed)
                if run_home.exists():
                    raise FileExistsError(f"{run_home} exists (an earlier run?): the planner must start empty")
                assert_isolated(run_home)
                sim, seen = world.simulator(), set()
                for day in range(days):
                    as_of = as_of_of(twin, day)
                    land_day_task(sim, world, run_home, as_of)
                    try:
                        # no refit put off for its wall time: the plans must not depend on machine load
                        planning_cycle(
                            CycleParams(as_of=as_of, home=run_home, policy=policy_path, defer_slow_refits=False)
                        )
                    except CycleBlocked as exc:
                        logger.warning(
                            "day %d (%s): the cycle refused to plan: %s", day, as_of, str(exc).splitlines()[0]
                        )
                        sim.refuse()
                    take_orders_task(
                        sim, run_home, policy, twin.planner.approver, twin.planner.approve_pending, as_of, seen
                    )
                    step_task(sim)
                    if bar is not None:
                        bar.advance(bar.task_ids[0])
                record_task(
                    sim_home,
                    world,
                    "ballast",
                    {"policy_version": policy.version, "policy_sha256": policy_sha, "policy_file": str(policy_path)},
                    sim.ledger,
                    bound,
                    twin,
                    solver_stops_task(run_home),
                )
                runs += 1
    report = report_task(sim_home)
    logger.info("simulation %s: %d runs recorded; report %s", params.name, runs, report)
    return {"root": str(sim_home.root), "report": str(report), "runs": runs}
