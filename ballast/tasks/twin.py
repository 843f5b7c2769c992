"""Prefect tasks of the digital twin: each wraps plain code from `ballast.models.twin` or an io module."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from ballast.io import twin_extracts as tx
from ballast.io.plans import decide_orders, deliver_outbox, order_status
from ballast.io.twin_store import SimulationHome, record_run
from ballast.io.warehouse import open_warehouse, query_frame
from ballast.models.governance import APPROVED, NEEDS_APPROVAL, check_approver
from ballast.models.policy import Policy
from ballast.models.sample import generate_network
from ballast.models.twin.bound import BoundResult
from ballast.models.twin.config import TwinSettings
from ballast.models.twin.kpis import run_kpis, solver_stops, with_bound_ratios
from ballast.models.twin.network import TwinNetwork
from ballast.models.twin.scenarios import Scenario
from ballast.models.twin.sim import Ledger, Simulator
from ballast.models.twin.world import (
    BaselineKind,
    World,
    make_network,
    make_world,
    run_baseline,
    run_bound,
    tune_baseline,
)
from ballast.settings import Settings


class IsolationError(RuntimeError):
    """A simulation would read or write outside its own folder."""


def assert_isolated(run_home: Path) -> Settings:
    """The planner settings of a simulated run, refusing any path that escapes the run's folder
    (a `BALLAST_DB`, `BALLAST_INBOX`, ... in the environment would point the cycle at live data)."""
    settings = Settings(home=run_home)
    root = run_home.resolve()
    for label, path in (
        ("warehouse", settings.db_path),
        ("inbox", settings.inbox_dir),
        ("archive", settings.archive_dir),
        ("outbox", settings.outbox_dir),
        ("reports", settings.reports_dir),
    ):
        if not path.resolve().is_relative_to(root):
            raise IsolationError(f"the simulated {label} would be {path}, outside {root}: unset BALLAST_* overrides")
    if not settings.tracking_uri.startswith("sqlite:///") or root.as_posix() not in settings.tracking_uri:
        raise IsolationError(
            f"the simulated MLflow store would be {settings.tracking_uri}: unset "
            "BALLAST_MLFLOW_TRACKING_URI to simulate"
        )
    return settings


@task(name="twin: network", cache_policy=NO_CACHE)
def network_task(twin: TwinSettings, policy: Policy, size: str | None) -> tuple[dict[str, pl.DataFrame], TwinNetwork]:
    """Generate the sample network and turn it into the simulator's arrays."""
    frames = generate_network(twin.sample_spec(size))
    return frames, make_network(frames, twin, policy)


@task(name="twin: world", cache_policy=NO_CACHE)
def world_task(
    frames: dict[str, pl.DataFrame],
    network: TwinNetwork,
    scenario: Scenario,
    seed: int,
    days: int,
    twin: TwinSettings,
    policy: Policy,
) -> World:
    """Fit demand and draw the common random paths of (scenario, seed)."""
    return make_world(frames, network, scenario, seed, days, twin, policy)


@task(name="twin: tune baseline", cache_policy=NO_CACHE)
def tune_task(training: list[World], kind: BaselineKind, twin: TwinSettings) -> tuple[float, int]:
    (m, r), costs = tune_baseline(training, kind, twin)
    get_run_logger().info(
        "%s baseline tuned on seeds %s: multiplier %.2f, review every %d day(s)", kind, [w.seed for w in training], m, r
    )
    return m, r


@task(name="twin: baseline run", cache_policy=NO_CACHE)
def baseline_task(world: World, kind: BaselineKind, multiplier: float, review_days: int, twin: TwinSettings) -> Ledger:
    return run_baseline(world, kind, multiplier, review_days, twin.baselines.service_z)


@task(name="twin: bound", cache_policy=NO_CACHE)
def bound_task(world: World, twin: TwinSettings) -> BoundResult | None:
    b = twin.bound
    return run_bound(world, b.integer_lanes, b.time_limit_seconds, b.mip_gap)


@task(name="twin: deliver extracts", cache_policy=NO_CACHE)
def land_day_task(sim: Simulator, world: World, run_home: Path, as_of: datetime) -> bool:
    """Deliver the day's extracts into the run's inbox; returns True when the WMS feed is stale today."""
    inbox = Settings(home=run_home).inbox_dir
    stale = bool(world.paths.stale_wms[sim.day])
    if sim.day == 0:
        tx.land_first_day(world.frames, sim, inbox, as_of)
    else:
        tx.land_snapshot(sim, inbox, as_of, stale_wms=stale)
    return stale


@task(name="twin: planner decisions + outbox", cache_policy=NO_CACHE)
def take_orders_task(
    sim: Simulator, run_home: Path, policy: Policy, approver: str | None, approve: bool, now: datetime, seen: set[str]
) -> int:
    """Approve what awaits approval (as the simulated planner), then read new outbox files into the simulator.

    Returns the number of orders of today's plans that needed a planner's approval.
    """
    settings = Settings(home=run_home)
    by = approver or policy.approval.planners[0]
    needing = 0
    with open_warehouse(settings.db_path) as con:
        plans = query_frame(con, "SELECT plan_id FROM plans WHERE mode = 'live' AND as_of = ?", [now])
        for plan_id in plans.get_column("plan_id").to_list():
            status = order_status(con, plan_id)
            pending = status.filter((pl.col("status") == NEEDS_APPROVAL) & pl.col("in_freeze_window"))
            needing += pending.height
            if approve and pending.height:
                check_approver(by, policy)
                decide_orders(
                    con,
                    plan_id,
                    pending.get_column("order_id").to_list(),
                    APPROVED,
                    by,
                    "simulated planner approves",
                    now,
                )
        deliver_outbox(con, settings.outbox_dir, now)
    orders = tx.read_outbox_orders(settings.outbox_dir, seen, sim.net)
    sim.submit(orders, approvals=needing)
    return needing


@task(name="twin: solver stops", cache_policy=NO_CACHE)
def solver_stops_task(run_home: Path) -> dict[str, float]:
    """How the run's live plans were solved: cycles planned, stopped by the clock, by the node limit."""
    with open_warehouse(Settings(home=run_home).db_path) as con:
        solves = query_frame(con, "SELECT solve FROM plans WHERE mode = 'live' ORDER BY as_of")
    return solver_stops(json.loads(s).get("attempts", []) for s in solves.get_column("solve").to_list())


@task(name="twin: day step", cache_policy=NO_CACHE)
def step_task(sim: Simulator) -> None:
    sim.step()


def daily_frame(ledger: Ledger, network: TwinNetwork) -> pl.DataFrame:
    """(day, site_id, units, unmet) for every own site and day."""
    own = [n for n in range(network.n_nodes) if not network.is_supplier[n]]
    days = ledger.stock.shape[0]
    units = ledger.stock[:, own, :].sum(axis=2)
    unmet = ledger.unmet[:, own, :].sum(axis=2)
    return pl.DataFrame(
        {
            "day": np.repeat(np.arange(days), len(own)),
            "site_id": [network.nodes[n] for n in own] * days,
            "units": units.reshape(-1),
            "unmet": unmet.reshape(-1),
            "overflow": (ledger.overflow[:, own] if ledger.overflow is not None else np.zeros_like(units)).reshape(-1),
        }
    )


@task(name="twin: record run", cache_policy=NO_CACHE)
def record_task(
    sim_home: SimulationHome,
    world: World,
    policy_name: str,
    params: dict,
    ledger: Ledger | None,
    bound: BoundResult | None,
    twin: TwinSettings,
    extra: dict[str, float] | None = None,
) -> dict[str, float]:
    """KPIs (with ratios to the bound, and `extra` ones) into the results store and one MLflow run."""
    net = world.network
    if ledger is None:  # the bound itself
        assert bound is not None
        kpis = dict(bound.kpis)
        stock = bound.stock
        own = [n for n in range(net.n_nodes) if not net.is_supplier[n]]
        daily = pl.DataFrame(
            {
                "day": np.repeat(np.arange(stock.shape[0]), len(own)),
                "site_id": [net.nodes[n] for n in own] * stock.shape[0],
                "units": stock[:, own, :].sum(axis=2).reshape(-1),
                "unmet": np.zeros(stock.shape[0] * len(own)),
            }
        )
    else:
        kpis = with_bound_ratios(run_kpis(ledger, net, twin.kpis.ping_pong_days), bound.kpis if bound else None)
        kpis |= extra or {}
        daily = daily_frame(ledger, net)
    params = params | {
        "scenario": world.scenario.name,
        "seed": world.seed,
        "days": world.paths.days,
        "twin_version": twin.version,
        "network": json.dumps(twin.network.model_dump()),
    }
    record_run(sim_home, world.scenario.name, world.seed, policy_name, params, kpis, daily)
    return kpis


def as_of_of(twin: TwinSettings, day: int) -> datetime:
    return twin.start + timedelta(days=day)
