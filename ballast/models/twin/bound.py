"""The perfect-information bound: one LP over the whole simulated period that knows the realised
demand, lead times and capacities in advance, with the simulator's cost accounting.

build_bound(...) -> ConcreteModel, solve_bound(model) -> BoundResult. Lost sales only (with
backorders the bound is not defined here). Quantities are continuous; the fixed cost of a lane
on a day is switched by a binary (`integer_lanes`, the default in the twin settings) or its LP
relaxation. Either way the reported total is a lower bound on the cost of any policy that ships
on allowed lanes: the LP optimum, or the MIP's proven dual bound.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass

import highspy
import numpy as np
import pyomo.environ as pyo
from numpy.typing import NDArray

from ballast.models.twin.kpis import transport_for_after_run
from ballast.models.twin.network import TwinNetwork
from ballast.models.twin.paths import Paths


@dataclass(frozen=True)
class BoundResult:
    status: str
    seconds: float
    kpis: dict[str, float]
    stock: NDArray[np.float64]  # [day, node, sku] end-of-day stock of the optimum


def _relevant(network: TwinNetwork, paths: Paths) -> NDArray[np.bool_]:
    """[node, sku] pairs that need variables: hubs selling or holding the SKU, every plant and DC."""
    own = ~network.is_supplier
    hub = np.array([k == "hub" for k in network.kind])
    used = (paths.demand.sum(axis=0) > 0) | (network.stock0 > 0)
    for r in network.receipts:
        used[r.dest, r.sku] = True
    return own[:, None] & (used | ~hub[:, None])


def build_bound(
    network: TwinNetwork,
    paths: Paths,
    penalty: NDArray[np.float64],
    credit: NDArray[np.float64],
    integer_lanes: bool = False,
    overflow_rate: float = 0.0,
) -> pyo.ConcreteModel:
    """The LP; purchases cost their premium over `credit` (the cheapest purchase price), as in the simulator."""
    T = paths.days
    rel = _relevant(network, paths)
    m = pyo.ConcreteModel("twin_bound")
    pairs = [(int(n), int(i)) for n, i in zip(*np.nonzero(rel), strict=True)]
    lanes = [ln for ln in range(network.n_lanes) if not network.lane_forbidden[ln]]
    arcs = [
        (ln, i)
        for ln in lanes
        for i in range(network.n_skus)
        if rel[network.lane_dest[ln], i]
        and (network.is_supplier[network.lane_origin[ln]] or rel[network.lane_origin[ln], i])
    ]
    m.PAIRS = pyo.Set(initialize=pairs, dimen=2)
    m.DAYS = pyo.RangeSet(0, T - 1)
    m.SHIPS = pyo.Set(initialize=[(ln, i, t) for ln, i in arcs for t in range(T)], dimen=3)
    m.ship_units = pyo.Var(m.SHIPS, domain=pyo.NonNegativeReals)
    m.stock_units = pyo.Var(m.PAIRS, m.DAYS, domain=pyo.NonNegativeReals)
    m.sold_units = pyo.Var(m.PAIRS, m.DAYS, bounds=lambda _m, n, i, t: (0.0, float(paths.demand[t, n, i])))
    fixed_lanes = [ln for ln in lanes if network.lane_fixed[ln] > 0]
    m.FIXED = pyo.Set(initialize=[(ln, t) for ln in fixed_lanes for t in range(T)], dimen=2)
    m.lane_used = pyo.Var(m.FIXED, domain=pyo.Binary if integer_lanes else pyo.UnitInterval)

    receipts0 = defaultdict(float)
    for r in network.receipts:
        if r.day < T:
            receipts0[(r.dest, r.sku, r.day)] += r.qty
    into: dict[tuple[int, int, int], list[tuple[int, int, int]]] = defaultdict(list)
    out_of: dict[tuple[int, int, int], list[tuple[int, int, int]]] = defaultdict(list)
    for ln, i in arcs:
        o, d = int(network.lane_origin[ln]), int(network.lane_dest[ln])
        for t in range(T):
            a = t + int(paths.lead[t, ln])
            if a < T:
                into[(d, i, a)].append((ln, i, t))
            if not network.is_supplier[o]:
                out_of[(o, i, t)].append((ln, i, t))

    def balance(_m: pyo.ConcreteModel, n: int, i: int, t: int) -> object:
        prev = network.stock0[n, i] if t == 0 else _m.stock_units[n, i, t - 1]
        return _m.stock_units[n, i, t] == (
            prev
            + receipts0.get((n, i, t), 0.0)
            + sum(_m.ship_units[k] for k in into.get((n, i, t), ()))
            - sum(_m.ship_units[k] for k in out_of.get((n, i, t), ()))
            - _m.sold_units[n, i, t]
        )

    m.flow_balance = pyo.Constraint(m.PAIRS, m.DAYS, rule=balance)

    by_lane_day: dict[tuple[int, int], list[tuple[int, int, int]]] = defaultdict(list)
    by_origin_day: dict[tuple[int, int], list[tuple[int, int, int]]] = defaultdict(list)
    for ln, i in arcs:
        for t in range(T):
            by_lane_day[(ln, t)].append((ln, i, t))
            by_origin_day[(int(network.lane_origin[ln]), t)].append((ln, i, t))
    cap_rows = [(ln, t) for (ln, t) in by_lane_day if np.isfinite(network.lane_capacity[ln])]
    m.lane_capacity = pyo.Constraint(
        cap_rows,
        rule=lambda _m, ln, t: (
            sum(network.volume[k[1]] * _m.ship_units[k] for k in by_lane_day[(ln, t)])
            <= float(network.lane_capacity[ln])
        ),
    )
    out_rows = [(o, t) for (o, t) in by_origin_day if np.isfinite(paths.out_capacity[t, o])]
    m.outbound_capacity = pyo.Constraint(
        out_rows,
        rule=lambda _m, o, t: sum(_m.ship_units[k] for k in by_origin_day[(o, t)]) <= float(paths.out_capacity[t, o]),
    )
    big = float(paths.demand.sum() + network.stock0.sum() + sum(r.qty for r in network.receipts)) + 1.0

    def switch_size(ln: int, t: int) -> float:
        # the tightest valid big-M: lane capacity (volume → units of the smallest SKU), origin capacity
        units = [big, float(paths.out_capacity[t, network.lane_origin[ln]])]
        if np.isfinite(network.lane_capacity[ln]):
            units.append(float(network.lane_capacity[ln] / network.volume.min()))
        return min(units)

    m.fixed_switch = pyo.Constraint(
        [k for k in m.FIXED if k in by_lane_day],
        rule=lambda _m, ln, t: (
            sum(_m.ship_units[k] for k in by_lane_day[(ln, t)]) <= switch_size(ln, t) * _m.lane_used[ln, t]
        ),
    )
    m.holding_cost = pyo.Expression(
        expr=sum(network.holding[i] * m.stock_units[n, i, t] for n, i in pairs for t in m.DAYS)
    )
    own_arcs = [k for k in m.SHIPS if not network.is_supplier[network.lane_origin[k[0]]]]
    buy_arcs = [k for k in m.SHIPS if network.is_supplier[network.lane_origin[k[0]]]]
    fixed = lambda ks: sum(network.lane_fixed[ln] * m.lane_used[ln, t] for ln, t in ks)  # noqa: E731
    m.transport_cost = pyo.Expression(
        expr=sum(network.lane_cost[k[0]] * m.ship_units[k] for k in own_arcs)
        + fixed([k for k in m.FIXED if not network.is_supplier[network.lane_origin[k[0]]]])
    )
    m.purchase_cost = pyo.Expression(
        expr=sum((network.lane_cost[k[0]] - credit[k[1]]) * m.ship_units[k] for k in buy_arcs)
        + fixed([k for k in m.FIXED if network.is_supplier[network.lane_origin[k[0]]]])
    )
    m.shortage_cost = pyo.Expression(
        expr=sum(penalty[i] * (paths.demand[t, n, i] - m.sold_units[n, i, t]) for n, i in pairs for t in m.DAYS)
    )
    storage = network.storage()
    capped = [int(n) for n in range(network.n_nodes) if np.isfinite(storage[n]) and not network.is_supplier[n]]
    m.CAPPED = pyo.Set(initialize=capped)
    m.overflow_volume = pyo.Var(m.CAPPED, m.DAYS, domain=pyo.NonNegativeReals)
    pairs_at: dict[int, list[int]] = defaultdict(list)
    for n, i in pairs:
        pairs_at[n].append(i)
    m.storage_overflow = pyo.Constraint(
        m.CAPPED,
        m.DAYS,
        rule=lambda _m, n, t: (
            sum(network.volume[i] * _m.stock_units[n, i, t] for i in pairs_at[n])
            <= float(storage[n]) + _m.overflow_volume[n, t]
        ),
    )
    m.overflow_cost = pyo.Expression(expr=overflow_rate * sum(m.overflow_volume[n, t] for n in capped for t in m.DAYS))
    m.total_cost = pyo.Objective(
        expr=m.holding_cost + m.transport_cost + m.purchase_cost + m.shortage_cost + m.overflow_cost
    )
    m._pairs, m._arcs, m._days = pairs, arcs, T
    return m


def _interrupt_after(highs: highspy.Highs, seconds: float, started: float) -> None:
    """Stop the MIP search once `seconds` have passed since `started`.

    HiGHS 1.16 does not always honour its own `time_limit` on this model: the lean plant-outage
    bound (seed 2, limit 60 s) was still branching after 900 s, with and without parallel search.
    Its MIP interrupt callback is checked during the search; the proven lower bound and the
    incumbent stay available."""

    def check(event: highspy.HighsCallbackEvent) -> None:
        if time.perf_counter() - started > seconds:
            event.interrupt()

    highs.cbMipInterrupt.subscribe(check)


def solve_bound(
    model: pyo.ConcreteModel,
    network: TwinNetwork,
    paths: Paths,
    time_limit_seconds: float = 600.0,
    mip_gap: float = 0.005,
) -> BoundResult:
    """Solve with HiGHS; raise unless optimal (LP) or stopped with a proven lower bound (MIP)."""
    started = time.perf_counter()
    solver = pyo.SolverFactory("appsi_highs")
    solver.config.time_limit = time_limit_seconds
    solver.config.load_solution = False
    solver.config.mip_gap = mip_gap
    solver.set_instance(model)
    highs = solver._solver_model  # the highspy.Highs pyomo fills; no public accessor
    _interrupt_after(highs, time_limit_seconds, started)
    res = solver.solve(model, load_solutions=False)
    tc = res.solver.termination_condition
    integer = any(v.is_binary() for v in model.lane_used.values())
    interrupted = highs.getModelStatus() == highspy.HighsModelStatus.kInterrupt
    status = "maxTimeLimit (interrupted)" if interrupted else str(tc)
    stopped = tc == pyo.TerminationCondition.maxTimeLimit or interrupted
    if tc != pyo.TerminationCondition.optimal and not (integer and stopped and highs.getSolution().value_valid):
        raise RuntimeError(f"the bound model did not solve to optimality: {status}")
    solver.load_vars()
    # with switched lanes (MIP) the bound is the solver's proven lower bound, not the incumbent
    lower = float(highs.getInfo().mip_dual_bound) if integer else float(pyo.value(model.total_cost))
    stock = np.zeros((paths.days, network.n_nodes, network.n_skus))
    for (n, i, t), v in model.stock_units.items():
        stock[t, n, i] = v.value or 0.0
    demand = float((paths.demand * (~network.is_supplier)[None, :, None]).sum())
    sold = sum(v.value or 0.0 for v in model.sold_units.values())
    own_fixed = [(ln, t) for ln, t in model.FIXED if not network.is_supplier[network.lane_origin[ln]]]
    opened = [(ln, t) for ln, t in own_fixed if (model.lane_used[ln, t].value or 0.0) > 0.5]
    arrivals = [
        (int(network.lane_dest[ln]), i, t + int(paths.lead[t, ln]), v.value, float(network.lane_cost[ln]))
        for (ln, i, t), v in model.ship_units.items()
        if (v.value or 0.0) > 1e-9
        and not network.is_supplier[network.lane_origin[ln]]
        and t + int(paths.lead[t, ln]) < paths.days
    ]
    after_units, after_cost = transport_for_after_run(arrivals, stock[-1])
    kpis = {
        "total_cost": lower,
        "incumbent_cost": float(pyo.value(model.total_cost)),
        "holding_cost": float(pyo.value(model.holding_cost)),
        "transport_cost": float(pyo.value(model.transport_cost)),
        "lane_days": float(len(opened)),
        "lane_fixed_cost": float(sum(network.lane_fixed[ln] for ln, _ in opened)),
        "units_for_after_run": after_units,
        "transport_for_after_run": after_cost,
        "cost_within_run": lower - after_cost,
        "purchase_cost": float(pyo.value(model.purchase_cost)),
        "shortage_cost": float(pyo.value(model.shortage_cost)),
        "overflow_cost": float(pyo.value(model.overflow_cost)),
        "overflow_volume_days": float(sum(v.value or 0.0 for v in model.overflow_volume.values())),
        "lost_units": demand - sold,
        "demand_units": demand,
        "fill_rate": sold / demand if demand else 1.0,
    }
    return BoundResult(status, time.perf_counter() - started, kpis, stock)
