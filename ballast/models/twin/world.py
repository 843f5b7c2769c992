"""One simulated world = network + fitted demand model + the common random paths of a
(scenario, seed), plus the cost rules every policy is charged with. And the policies that need
no planner: the two baselines and the bound."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl
from numpy.typing import NDArray

from ballast.models.policy import Policy
from ballast.models.twin import baselines as bl
from ballast.models.twin.bound import BoundResult, build_bound, solve_bound
from ballast.models.twin.config import TwinSettings
from ballast.models.twin.network import TwinNetwork, build_network
from ballast.models.twin.paths import DemandModel, Paths, draw_paths, fit_demand, start_position
from ballast.models.twin.scenarios import Scenario
from ballast.models.twin.sim import Ledger, Order, Simulator

logger = logging.getLogger(__name__)

BaselineKind = Literal["no_transfers", "reactive"]
BASELINES: tuple[BaselineKind, ...] = ("no_transfers", "reactive")


@dataclass(frozen=True)
class World:
    scenario: Scenario
    seed: int
    network: TwinNetwork
    model: DemandModel
    paths: Paths
    penalty: NDArray[np.float64]
    credit: NDArray[np.float64]
    unmet: Literal["lost_sales", "backorders"]
    backorder_daily_share: float
    frames: dict[str, pl.DataFrame]
    overflow_rate: float = 0.0

    def simulator(self) -> Simulator:
        return Simulator(
            self.network,
            self.paths,
            self.penalty,
            unmet=self.unmet,
            backorder_daily_share=self.backorder_daily_share,
            credit=self.credit,
            overflow_rate=self.overflow_rate,
        )


def make_network(frames: dict[str, pl.DataFrame], settings: TwinSettings, policy: Policy) -> TwinNetwork:
    forbidden = {(ln.origin, ln.destination) for ln in policy.forbidden_lanes}
    return build_network(frames, settings.start.date(), forbidden)


def shortage_yardstick(settings: TwinSettings, policy: Policy) -> tuple[float, float]:
    """(flat, price multiple) of the lost-sale cost the world charges: the twin's, else the policy's."""
    flat, multiple = settings.costs.shortage_penalty_per_unit, settings.costs.shortage_penalty_price_multiple
    return (
        policy.shortage_penalty_per_unit if flat is None else flat,
        policy.shortage_penalty_price_multiple if multiple is None else multiple,
    )


def make_world(
    frames: dict[str, pl.DataFrame],
    network: TwinNetwork,
    scenario: Scenario,
    seed: int,
    days: int,
    settings: TwinSettings,
    policy: Policy,
) -> World:
    network = start_position(network, scenario)
    model = fit_demand(network, settings.demand.fit_window_days, settings.demand.min_dispersion)
    paths = draw_paths(network, model, scenario, settings, seed, days)
    return World(
        scenario=scenario,
        seed=seed,
        network=network,
        model=model,
        paths=paths,
        penalty=network.shortage_penalty(*shortage_yardstick(settings, policy)),
        credit=network.credit_price(),
        unmet=policy.unmet_demand,
        backorder_daily_share=policy.backorder_daily_penalty_share,
        frames=frames,
        overflow_rate=settings.costs.overflow_per_volume_day,
    )


def run_baseline(world: World, kind: BaselineKind, multiplier: float, review_days: int, z: float) -> Ledger:
    rule = bl.base_stock_levels(world.network, world.model, multiplier, z, review_days)
    decide = bl.no_transfer_policy(rule) if kind == "no_transfers" else bl.reactive_policy(rule, world.network)
    return world.simulator().run(decide)


def replay(world: World, orders_by_day: dict[int, list[Order]], refused_days: list[int] | None = None) -> Ledger:
    """Re-run a recorded policy: submit each day's released orders again on the same world.

    The simulator is deterministic, so a replay reproduces the run; with other cost settings it
    re-prices the same decisions."""
    sim = world.simulator()
    refused = set(refused_days or ())

    def decide(s: Simulator) -> None:
        if s.day in refused:
            s.refuse()
        s.submit(orders_by_day.get(s.day, []))

    return sim.run(decide)


def tune_baseline(training: list[World], kind: BaselineKind, settings: TwinSettings) -> tuple[tuple[float, int], dict]:
    """Pick the base-stock multiplier and review period with the lowest mean cost on `training` worlds."""
    b = settings.baselines

    def evaluate(m: float, r: int) -> float:
        return float(np.mean([run_baseline(w, kind, m, r, b.service_z).total_cost() for w in training]))

    return bl.tune(evaluate, b.multipliers, b.review_days)


def run_bound(
    world: World, integer_lanes: bool = True, time_limit_seconds: float = 120.0, mip_gap: float = 0.005
) -> BoundResult | None:
    """The perfect-information bound (None with backorders: not defined there)."""
    if world.unmet != "lost_sales":
        return None
    model = build_bound(world.network, world.paths, world.penalty, world.credit, integer_lanes, world.overflow_rate)
    return solve_bound(model, world.network, world.paths, time_limit_seconds, mip_gap)
