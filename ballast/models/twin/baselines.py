"""Baselines on the same paths: base-stock replenishment without lateral transfers, and a
reactive heuristic (base-stock plus moving stock from the largest surplus to stocked-out sites).

Base-stock level of node n, SKU i (installation stock, daily review):
    S = m × (μ_e (L + 1) + z σ_e √(L + 1))
where μ_e, σ_e are the mean and standard deviation of the daily demand the node serves (its own
plus everything downstream of it on the replenishment tree), L the nominal lead time of its
parent lane and m a multiplier tuned on training seeds (`tune_multiplier`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ballast.models.twin.network import TwinNetwork
from ballast.models.twin.paths import DemandModel
from ballast.models.twin.sim import Order, Simulator

_ECHELON = {"supplier": 0, "plant": 1, "dc": 2, "hub": 3, "store": 4}


@dataclass(frozen=True)
class BaseStock:
    """Levels and parent lanes of the base-stock rule."""

    parent: NDArray[np.int64]  # lane per node, -1 = none
    level: NDArray[np.float64]  # [node, sku] order-up-to level
    mean: NDArray[np.float64]  # [node, sku] own mean daily demand
    review_days: int = 1  # orders go out every this many days


def base_stock_levels(
    network: TwinNetwork, model: DemandModel, multiplier: float, z: float, review_days: int = 1
) -> BaseStock:
    """Order-up-to levels covering lead time plus review period at safety factor `z`, times `multiplier`."""
    parent = network.parent_lanes()
    mu = model.level.copy()
    var = model.level + model.level**2 / model.shape_k
    mu_e, var_e = mu.copy(), var.copy()
    # push demand up the tree, deepest echelon first
    for n in sorted(range(network.n_nodes), key=lambda n: -_ECHELON[network.kind[n]]):
        if parent[n] >= 0:
            up = int(network.lane_origin[parent[n]])
            if not network.is_supplier[up]:
                mu_e[up] += mu_e[n]
                var_e[up] += var_e[n]
    lead = np.where(parent >= 0, network.lane_lead[np.maximum(parent, 0)], 0).astype(float)[:, None]
    cover = lead + review_days
    level = multiplier * (mu_e * cover + z * np.sqrt(var_e * cover))
    level[parent < 0] = 0.0
    return BaseStock(parent, np.ceil(level), mu, review_days)


def base_stock_orders(sim: Simulator, rule: BaseStock) -> list[Order]:
    """Order up to the level from the parent (downstream nodes first, so they draw first)."""
    net = sim.net
    if sim.day % rule.review_days:
        return []
    position = sim.stock + sim.inbound() - sim.outbound_queued() - sim.backlog
    orders: list[Order] = []
    for n in sorted(range(net.n_nodes), key=lambda n: -_ECHELON[net.kind[n]]):
        lane = int(rule.parent[n])
        if lane < 0:
            continue
        need = np.floor(rule.level[n] - position[n])
        for i in np.flatnonzero(need > 0):
            orders.append(Order(lane, int(i), float(need[i]), sim.day, f"BS-{sim.day}-{n}-{i}"))
    return orders


def lateral_lanes(network: TwinNetwork) -> dict[int, list[int]]:
    """Lanes between sites of the same echelon (hub↔hub, DC↔DC) into each node, allowed ones only."""
    out: dict[int, list[int]] = {}
    for ln in range(network.n_lanes):
        o, d = int(network.lane_origin[ln]), int(network.lane_dest[ln])
        if network.lane_forbidden[ln] or network.is_supplier[o] or network.kind[o] != network.kind[d]:
            continue
        out.setdefault(d, []).append(ln)
    return out


def reactive_orders(sim: Simulator, rule: BaseStock, laterals: dict[int, list[int]]) -> list[Order]:
    """Stocked-out sites (no stock after today's arrivals, demand expected) get a transfer from the
    neighbour with the largest surplus over its own level, enough to last until the parent's
    replenishment arrives."""
    net = sim.net
    arriving = np.zeros_like(sim.stock)
    for s in sim.pipeline:
        if s.arrive_day <= sim.day:
            arriving[s.dest, s.sku] += s.qty
    on_hand = sim.stock + arriving - sim.outbound_queued()
    surplus = on_hand - rule.level
    orders: list[Order] = []
    for d, lanes in laterals.items():
        lead_parent = net.lane_lead[rule.parent[d]] if rule.parent[d] >= 0 else 1
        for i in np.flatnonzero((on_hand[d] <= 0) & (rule.mean[d] > 0)):
            origins = [int(net.lane_origin[ln]) for ln in lanes]
            best = int(np.argmax([surplus[o, i] for o in origins]))
            avail = np.floor(surplus[origins[best], i])
            if avail <= 0:
                continue
            qty = float(min(avail, np.ceil(rule.mean[d, i] * (lead_parent + 1))))
            surplus[origins[best], i] -= qty
            orders.append(Order(lanes[best], int(i), qty, sim.day, f"RX-{sim.day}-{d}-{i}"))
    return orders


def no_transfer_policy(rule: BaseStock) -> Callable[[Simulator], None]:
    def decide(sim: Simulator) -> None:
        sim.submit(base_stock_orders(sim, rule))

    return decide


def reactive_policy(rule: BaseStock, network: TwinNetwork) -> Callable[[Simulator], None]:
    laterals = lateral_lanes(network)

    def decide(sim: Simulator) -> None:
        sim.submit(reactive_orders(sim, rule, laterals) + base_stock_orders(sim, rule))

    return decide


def tune(
    evaluate: Callable[[float, int], float], multipliers: Sequence[float], review_days: Sequence[int]
) -> tuple[tuple[float, int], dict[tuple[float, int], float]]:
    """The (multiplier, review days) with the lowest mean cost; `evaluate(m, r)` runs the training seeds."""
    costs = {(m, r): evaluate(m, r) for m in multipliers for r in review_days}
    best = min(costs, key=lambda k: (costs[k], k))
    return best, costs
