"""Common random numbers: every random path of a (scenario, seed) drawn once, before any policy acts.

Demand per node × SKU × day is negative binomial (a gamma–Poisson mixture) whose mean is the
series' recent level times its node's weekday shape, and whose dispersion is fitted from the
recent variance. Lead times are the lane's nominal lead plus a random delay. Scenario effects
scale these. Each stream is keyed by (seed, name), so adding a policy changes nothing.
"""

from __future__ import annotations

import dataclasses
import zlib
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
from numpy.typing import NDArray

from ballast.models.twin.config import TwinSettings
from ballast.models.twin.network import TwinNetwork
from ballast.models.twin.scenarios import Effect, Scenario

_REGIONS = {"DACH": ("DE", "AT", "CH"), "WEST": ("FR", "BE", "NL")}


def _rng(seed: int, *keys: str) -> np.random.Generator:
    return np.random.default_rng([seed, *(zlib.crc32(k.encode()) for k in keys)])


@dataclass(frozen=True)
class DemandModel:
    """Fitted per node × SKU: mean units/day, weekday shape per node [node, 7], NB shape k."""

    level: NDArray[np.float64]
    weekday: NDArray[np.float64]
    shape_k: NDArray[np.float64]

    def mean(self, network: TwinNetwork, days: int) -> NDArray[np.float64]:
        """Expected demand [day, node, sku] over `days` from the network's start."""
        wd = np.array([(network.start + timedelta(days=t)).weekday() for t in range(days)])
        return self.level[None, :, :] * self.weekday[:, wd].T[:, :, None]


def fit_demand(network: TwinNetwork, window_days: int, min_dispersion: float) -> DemandModel:
    """Level, weekday shape and negative-binomial dispersion from the last `window_days` of history."""
    hist = network.history[-window_days:]
    n_days = hist.shape[0]
    if n_days == 0:
        zeros = np.zeros((network.n_nodes, network.n_skus))
        return DemandModel(zeros, np.ones((network.n_nodes, 7)), np.ones_like(zeros))
    level = hist.mean(axis=0)
    first = network.start - timedelta(days=n_days)
    wd = np.array([(first + timedelta(days=t)).weekday() for t in range(n_days)])
    node_total = hist.sum(axis=2)  # [day, node]
    weekday = np.ones((network.n_nodes, 7))
    for d in range(7):
        rows = wd == d
        if rows.any():
            weekday[:, d] = node_total[rows].mean(axis=0)
    overall = weekday.mean(axis=1, keepdims=True)
    weekday = np.where(overall > 0, weekday / np.where(overall > 0, overall, 1.0), 1.0)
    # residual variance after the weekday shape, for the gamma-Poisson mixing
    expected = level[None, :, :] * weekday[:, wd].T[:, :, None]
    var = ((hist - expected) ** 2).mean(axis=0)
    extra = var - level
    with np.errstate(divide="ignore", invalid="ignore"):
        k = np.where(extra > 1e-9, level**2 / extra, 1e6)
    k = np.clip(np.nan_to_num(k, nan=1e6), min_dispersion, 1e6)
    return DemandModel(level, weekday, k)


@dataclass(frozen=True)
class Paths:
    """The realised world of one (scenario, seed): identical for every policy."""

    demand: NDArray[np.float64]  # [day, node, sku] units
    lead: NDArray[np.int64]  # [day, lane] days from shipping to arrival
    out_capacity: NDArray[np.float64]  # [day, node] units/day (inf = unlimited)
    stale_wms: NDArray[np.bool_]  # [day] the WMS snapshot of that day is not delivered
    expected_demand: NDArray[np.float64]  # [day, node, sku] before scenario effects

    @property
    def days(self) -> int:
        return self.demand.shape[0]


def _busiest_lane(network: TwinNetwork, level: NDArray[np.float64]) -> int:
    """The plant→DC or DC→hub lane feeding the most downstream demand (nominal lead ≥ 1)."""
    parents = network.parent_lanes()
    flow = np.zeros(network.n_lanes)
    for n in range(network.n_nodes):
        m = n
        units = level[n].sum()
        while parents[m] >= 0 and not network.is_supplier[network.lane_origin[parents[m]]]:
            flow[parents[m]] += units
            m = int(network.lane_origin[parents[m]])
    if not flow.any():
        raise ValueError("the network has no internal replenishment lane to congest")
    return int(np.argmax(flow))


def _busiest_hub_lane(network: TwinNetwork, level: NDArray[np.float64]) -> int:
    """The lane that replenishes the hub with the most demand (its parent lane)."""
    parents = network.parent_lanes()
    hubs = [n for n in range(network.n_nodes) if network.kind[n] == "hub" and parents[n] >= 0]
    if not hubs:
        raise ValueError("the network has no hub with a replenishment lane to congest")
    return int(parents[max(hubs, key=lambda n: float(level[n].sum()))])


def _node_mask(network: TwinNetwork, target: str) -> NDArray[np.bool_]:
    if target == "all":
        return np.ones(network.n_nodes, dtype=bool)
    if target.startswith("kind:"):
        return np.array([k == target.split(":", 1)[1] for k in network.kind])
    if target.startswith("region:"):
        countries = _REGIONS[target.split(":", 1)[1]]
        return np.array([k == "hub" and c in countries for k, c in zip(network.kind, network.country, strict=True)])
    if target == "first_plant":
        mask = np.zeros(network.n_nodes, dtype=bool)
        mask[network.kind.index("plant")] = True
        return mask
    if target.startswith("supplier:"):
        return np.array([s == target.split(":", 1)[1] for s in network.nodes])
    raise ValueError(f"unknown node target {target!r}")


def _apply(
    effect: Effect,
    network: TwinNetwork,
    level: NDArray[np.float64],
    days: int,
    mu: NDArray[np.float64],
    lead_factor: NDArray[np.float64],
    add: NDArray[np.int64],
    cap: NDArray[np.float64],
    stale: NDArray[np.bool_],
) -> None:
    window = slice(max(effect.start, 0), min(effect.end, days))
    if effect.kind == "demand":
        if effect.target.startswith("top_skus:"):
            top = np.argsort(-level.sum(axis=0))[: int(effect.target.split(":", 1)[1])]
            mu[window][:, :, top] *= effect.factor
        else:
            mu[window][:, _node_mask(network, effect.target), :] *= effect.factor
    elif effect.kind == "lead_time":
        if effect.target == "busiest_lane":
            lane = _busiest_lane(network, level)
        elif effect.target == "busiest_hub_lane":
            lane = _busiest_hub_lane(network, level)
        else:
            lane = int(effect.target)
        lead_factor[window, lane] *= effect.factor
    elif effect.kind == "lead_delay":
        lanes = _node_mask(network, effect.target)[network.lane_origin]
        add[window][:, lanes] += effect.add_days
    elif effect.kind == "capacity":
        cap[window][:, _node_mask(network, effect.target)] *= effect.factor
    elif effect.kind == "stale_wms":
        stale[window] = True
    elif effect.kind in ("start_stock", "receipt_delay"):
        pass  # the starting position: `start_position`
    else:  # pragma: no cover - Literal keeps this out
        raise ValueError(f"unknown effect kind {effect.kind!r}")


def start_position(network: TwinNetwork, scenario: Scenario) -> TwinNetwork:
    """The network as the scenario starts it: stock and receipts of `start_stock` targets scaled
    (rounded to whole units; a receipt rounded to nothing is dropped), open POs of a
    `receipt_delay` due in its window moved later. Unchanged when the scenario has neither."""
    if not any(e.kind in ("start_stock", "receipt_delay") for e in scenario.effects):
        return network
    stock = network.stock0.copy()
    receipts = list(network.receipts)
    for effect in scenario.effects:
        if effect.kind == "start_stock":
            mask = _node_mask(network, effect.target)
            stock[mask] = np.round(stock[mask] * effect.factor)
            receipts = [
                dataclasses.replace(r, qty=float(np.round(r.qty * effect.factor))) if mask[r.dest] else r
                for r in receipts
            ]
        elif effect.kind == "receipt_delay":
            if effect.target != "purchase_orders":
                raise ValueError(f"receipt_delay applies to 'purchase_orders', not {effect.target!r}")
            receipts = [
                dataclasses.replace(r, day=r.day + effect.add_days)
                if r.kind == "purchase_order" and effect.start <= r.day < effect.end
                else r
                for r in receipts
            ]
    return dataclasses.replace(network, stock0=stock, receipts=tuple(r for r in receipts if r.qty >= 1))


def draw_paths(
    network: TwinNetwork, model: DemandModel, scenario: Scenario, settings: TwinSettings, seed: int, days: int
) -> Paths:
    """Draw demand, lead times and capacities for `days` days of `scenario` under `seed`."""
    base = model.mean(network, days)
    mu = base.copy()
    lead_factor = np.ones((days, network.n_lanes))
    add = np.zeros((days, network.n_lanes), dtype=np.int64)
    cap = np.repeat(network.out_capacity[None, :], days, axis=0)
    stale = np.zeros(days, dtype=bool)
    for effect in scenario.effects:
        _apply(effect, network, model.level, days, mu, lead_factor, add, cap, stale)
    # demand: the same gamma and Poisson streams for every policy of this (scenario, seed)
    rng = _rng(seed, "demand")
    k = np.broadcast_to(model.shape_k, mu.shape)
    lam = rng.gamma(k, np.where(mu > 0, mu / k, 0.0))
    demand = rng.poisson(lam).astype(float)
    # lead times: nominal × scenario factor, plus a random delay
    lt = settings.lead_time
    rng = _rng(seed, "lead")
    late = rng.random((days, network.n_lanes)) < lt.delay_probability
    delay = rng.integers(1, lt.max_delay_days + 1, (days, network.n_lanes)) if lt.max_delay_days else 0
    lead = np.rint(network.lane_lead[None, :] * lead_factor).astype(np.int64) + np.where(late, delay, 0) + add
    return Paths(demand=demand, lead=np.maximum(lead, 1), out_capacity=cap, stale_wms=stale, expected_demand=base)
