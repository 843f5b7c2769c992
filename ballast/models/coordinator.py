"""The coordinator (DESIGN.md §4): a sparse Pyomo model over candidate arcs, solved by HiGHS.

Three steps kept apart, as STYLE.md asks:

* `build_model(inputs) -> ConcreteModel` — one function per constraint family, sets in caps,
  variables named with their unit. Index sets are the sparse lists of `NetworkInputs`; every
  expression is a `LinearExpression` built from coefficient and variable lists, and the garbage
  collector is paused while building.
* `solve(model, options) -> SolveResult` — two handoffs to HiGHS: ``"direct"`` (default) reads
  the model's `LinearExpression`s straight into row-wise arrays (Pyomo's
  `LinearStandardFormCompiler` for a model that is not all `LinearExpression`s) and passes them to
  highspy in one `passModel`, once per model: later solves of the same model (relaxation, slope
  scaling, repairs, MIP) only push bounds or costs and re-run HiGHS from its last basis;
  ``"persistent"`` uses Pyomo's persistent `contrib.solver` HiGHS interface (one highspy call per
  row, kept for comparison: see `benchmarks/engine_bench.py`).
* `extract_plan(model) -> polars.DataFrame` — the non-zero shipments, one row per arc, SKU, day.

A non-optimal answer raises unless the caller accepts it (`allow_nonoptimal`); the fallback
ladder (`ballast.models.ladder`) is that caller.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np
import polars as pl
import pyomo.environ as pyo
from pyomo.common.gc_manager import PauseGC
from pyomo.core.expr.numeric_expr import LinearExpression

from ballast.models.network import NetworkInputs

logger = logging.getLogger(__name__)

FLOW_SCHEMA = {
    "arc_id": pl.String,
    "origin": pl.String,
    "destination": pl.String,
    "mode": pl.String,
    "arc_kind": pl.String,
    "sku": pl.String,
    "ship_day": pl.Int64,
    "arrive_day": pl.Int64,
    "qty": pl.Float64,
    "short_dated_qty": pl.Float64,
}

EPS = 1e-6

# Pyomo's model building and its standard-form compiler are not thread-safe (the compiler sets its
# scipy hooks lazily on the class, so a second thread can find them half-set; PauseGC flips the
# process-wide collector). SKU groups solved in threads therefore build and hand over one at a
# time; only HiGHS's own solve, which releases the GIL, runs in parallel.
PYOMO_LOCK = threading.RLock()


class SolverError(RuntimeError):
    """The solver did not return an optimal solution and the caller did not accept that."""


@dataclass(frozen=True, slots=True)
class SolveOptions:
    time_limit_seconds: float = 60.0
    mip_gap: float = 0.01
    threads: int = 1
    relax_integers: bool = False
    interface: Literal["direct", "persistent"] = "direct"
    allow_nonoptimal: bool = False
    highs_options: tuple[tuple[str, Any], ...] = ()
    # "empty": hand HiGHS the do-nothing plan (every shipment and binary 0) as a first incumbent
    # "current": the values loaded in the model's variables (e.g. an LP-rounded plan) as a first incumbent
    start: Literal["none", "empty", "current"] = "none"


@dataclass(frozen=True, slots=True)
class SolveResult:
    status: Literal["optimal", "feasible", "infeasible", "no_solution", "error"]
    termination: str
    objective: float | None
    mip_gap: float | None
    handoff_seconds: float
    solve_seconds: float
    load_seconds: float
    columns: int
    rows: int
    nonzeros: int
    integers: int

    @property
    def has_solution(self) -> bool:
        return self.status in ("optimal", "feasible")


@dataclass
class _ModelData:
    """Plain-Python side tables the builder keeps on the model (not Pyomo components)."""

    inputs: NetworkInputs
    inflow: dict[tuple[str, str, int], list] = field(default_factory=dict)
    slices: dict[tuple[str, str], tuple[tuple[float, float], ...]] = field(default_factory=dict)  # safety shortfall
    arc_day: dict[tuple[str, int], list[tuple[str, Any]]] | None = None  # shipments per arc and day
    build_seconds: float = 0.0


# ---------------------------------------------------------------------------------------------
# build
# ---------------------------------------------------------------------------------------------


def build_model(inputs: NetworkInputs) -> pyo.ConcreteModel:
    """The network LP/MIP of DESIGN.md §4 over `inputs`' sparse index lists."""
    with PYOMO_LOCK:
        return _build_model(inputs)


def _build_model(inputs: NetworkInputs) -> pyo.ConcreteModel:
    start = time.perf_counter()
    with PauseGC():
        m = pyo.ConcreteModel(name="ballast_network")
        m._data = _ModelData(inputs)
        add_sets(m, inputs)
        add_variables(m, inputs)
        add_flow_balance(m, inputs)
        add_safety_stock(m, inputs)
        add_lane_capacity(m, inputs)
        add_minimum_transfer(m, inputs)
        add_lane_slot_links(m, inputs)
        add_storage_capacity(m, inputs)
        add_outbound_capacity(m, inputs)
        add_possession_limits(m, inputs)
        add_shelf_life(m, inputs)
        add_negotiated_caps(m, inputs)
        add_release_changes(m, inputs)
        add_end_cover(m, inputs)
        add_objective(m, inputs)
    m._data.build_seconds = time.perf_counter() - start
    return m


def _set(items: list, dimen: int) -> pyo.Set:
    return pyo.Set(initialize=items, dimen=dimen, ordered=pyo.Set.InsertionOrder)


def add_sets(m: pyo.ConcreteModel, inputs: NetworkInputs) -> None:
    H = inputs.horizon
    lost = inputs.unmet_demand == "lost_sales"
    m.DAYS = pyo.Set(initialize=list(range(H)), ordered=pyo.Set.InsertionOrder)
    m.PAIR_DAYS = _set([(s, k, t) for s, k in inputs.pairs for t in range(H)], 3)
    short = []
    for s, k in inputs.pairs:
        d = inputs.demand_units[(s, k)]
        if lost:
            short.extend((s, k, t) for t in range(H) if d[t] > 0)
        else:
            first = next((t for t in range(H) if d[t] > 0), None)
            if first is not None:
                short.extend((s, k, t) for t in range(first, H))
    m.SHORTAGE_DAYS = _set(short, 3)
    slices = {(s, k): inputs.shortfall_slices((s, k)) for s, k in inputs.pairs if inputs.safety_units[(s, k)] > 0}
    m._data.slices = slices
    m.SAFETY_DAYS = _set([(s, k, t) for s, k in slices for t in range(H)], 3)
    m.SAFETY_SLICES = _set([(s, k, t, j) for (s, k), sl in slices.items() for j in range(len(sl)) for t in range(H)], 4)
    m.SHIP_SLOTS = _set(list(inputs.ship_slots), 3)
    m.SHORT_DATED_SLOTS = _set(list(inputs.short_dated_slots), 3)
    lane_days = sorted(
        {(a, t) for a, _, t in inputs.ship_slots + inputs.short_dated_slots if inputs.arcs[a].needs_binary}
    )
    m.LANE_DAYS = _set(lane_days, 2)
    order_slots = [
        (a, k, t)
        for a, k, t in sorted(set(inputs.ship_slots) | set(inputs.short_dated_slots))
        if inputs.exact_minimum_transfer
        and inputs.arcs[a].minimum_transfer_applies
        and inputs.items[k].min_transfer_units > 0
    ]
    m.ORDER_SLOTS = _set(order_slots, 3)


def add_variables(m: pyo.ConcreteModel, inputs: NetworkInputs) -> None:
    up = inputs.ship_upper
    m.ship_units = pyo.Var(m.SHIP_SLOTS, domain=pyo.NonNegativeReals, bounds=lambda _m, a, k, t: (0, up[(a, k)]))
    m.short_dated_ship_units = pyo.Var(
        m.SHORT_DATED_SLOTS,
        domain=pyo.NonNegativeReals,
        bounds=lambda _m, a, k, t: (0, inputs.short_dated[(inputs.arcs[a].origin, k)].units),
    )
    m.stock_units = pyo.Var(m.PAIR_DAYS, domain=pyo.NonNegativeReals)
    if inputs.unmet_demand == "lost_sales":
        dem = inputs.demand_units
        m.shortage_units = pyo.Var(
            m.SHORTAGE_DAYS, domain=pyo.NonNegativeReals, bounds=lambda _m, s, k, t: (0, dem[(s, k)][t])
        )
    else:
        m.shortage_units = pyo.Var(m.SHORTAGE_DAYS, domain=pyo.NonNegativeReals)  # backlog at end of day
    m.safety_shortfall_units = pyo.Var(  # per slice of the shortfall below safety stock
        m.SAFETY_SLICES,
        domain=pyo.NonNegativeReals,
        bounds=lambda _m, s, k, t, j: (0, m._data.slices[(s, k)][j][0]),
    )
    m.lane_open = pyo.Var(m.LANE_DAYS, domain=pyo.Binary)
    m.order_open = pyo.Var(m.ORDER_SLOTS, domain=pyo.Binary)


def _shipped(m: pyo.ConcreteModel, a: str, k: str, t: int) -> list:
    """The shipment variables (regular and short-dated) of one slot."""
    out = []
    if (a, k, t) in m.ship_units:
        out.append(m.ship_units[a, k, t])
    if (a, k, t) in m.short_dated_ship_units:
        out.append(m.short_dated_ship_units[a, k, t])
    return out


def add_flow_balance(m: pyo.ConcreteModel, inputs: NetworkInputs) -> None:
    """End-of-day stock = yesterday + receipts + arrivals − departures − released issues − served demand."""
    arcs = inputs.arcs
    arrivals: dict[tuple[str, str, int], list] = defaultdict(list)
    departures: dict[tuple[str, str, int], list] = defaultdict(list)
    for (a, k, t), v in m.ship_units.items():
        arc = arcs[a]
        arrivals[(arc.destination, k, t + arc.lead_days)].append(v)
        if inputs.sites[arc.origin].kind != "supplier":
            departures[(arc.origin, k, t)].append(v)
    for (a, k, t), v in m.short_dated_ship_units.items():
        arc = arcs[a]
        arrivals[(arc.destination, k, t + arc.lead_days)].append(v)  # leaves the short-dated pool, not stock
    m._data.inflow = arrivals
    stock, short = m.stock_units, m.shortage_units
    lost = inputs.unmet_demand == "lost_sales"
    rec, iss, dem, init = inputs.receipt_units, inputs.issue_units, inputs.demand_units, inputs.initial_units

    def rule(_m, s, k, t):
        coefs = [1.0]
        vars_ = [stock[s, k, t]]
        if t > 0:
            coefs.append(-1.0)
            vars_.append(stock[s, k, t - 1])
        for v in arrivals.get((s, k, t), ()):
            coefs.append(-1.0)
            vars_.append(v)
        for v in departures.get((s, k, t), ()):
            coefs.append(1.0)
            vars_.append(v)
        if (s, k, t) in short:
            coefs.append(-1.0)
            vars_.append(short[s, k, t])
        if not lost and t > 0 and (s, k, t - 1) in short:
            coefs.append(1.0)
            vars_.append(short[s, k, t - 1])
        rhs = rec.get((s, k, t), 0.0) - iss.get((s, k, t), 0.0) - dem[(s, k)][t] + (init[(s, k)] if t == 0 else 0.0)
        return (rhs, LinearExpression(constant=0.0, linear_coefs=coefs, linear_vars=vars_), rhs)

    m.flow_balance = pyo.Constraint(m.PAIR_DAYS, rule=rule)


def add_safety_stock(m: pyo.ConcreteModel, inputs: NetworkInputs) -> None:
    """Stock + the shortfall's slices ≥ safety stock (each slice penalised at its own, rising, cost)."""
    ss = inputs.safety_units

    def rule(_m, s, k, t):
        n = len(m._data.slices[(s, k)])
        expr = LinearExpression(
            constant=0.0,
            linear_coefs=[1.0] * (n + 1),
            linear_vars=[m.stock_units[s, k, t]] + [m.safety_shortfall_units[s, k, t, j] for j in range(n)],
        )
        return (ss[(s, k)], expr, None)

    m.safety_stock = pyo.Constraint(m.SAFETY_DAYS, rule=rule)


def _arc_day_terms(m: pyo.ConcreteModel) -> dict[tuple[str, int], list[tuple[str, Any]]]:
    """(SKU, shipment variable) per arc and day; built once per model (the lane, link and outbound
    rows all group the shipments this way)."""
    if m._data.arc_day is None:
        terms: dict[tuple[str, int], list[tuple[str, Any]]] = defaultdict(list)
        for (a, k, t), v in m.ship_units.items():
            terms[(a, t)].append((k, v))
        for (a, k, t), v in m.short_dated_ship_units.items():
            terms[(a, t)].append((k, v))
        m._data.arc_day = dict(terms)  # a plain dict: a lookup never adds an empty arc-day
    return m._data.arc_day


def add_lane_capacity(m: pyo.ConcreteModel, inputs: NetworkInputs) -> None:
    """Lane volume per day (only where it can bind), lane-day binaries for fixed cost and minimum."""
    terms = _arc_day_terms(m)
    items, arcs, room = inputs.items, inputs.arcs, inputs.lane_room
    binding = inputs.binding.get("lanes", frozenset())
    cap_keys = [
        (a, t)
        for (a, t) in terms
        if arcs[a].capacity_volume_per_day is not None and (a in binding or (a, t) in m.LANE_DAYS)
    ]
    m.LANE_CAP_DAYS = _set(sorted(cap_keys), 2)

    def cap_rule(_m, a, t):
        ks = terms[(a, t)]
        coefs = [items[k].unit_volume for k, _ in ks]
        vars_ = [v for _, v in ks]
        if (a, t) in m.lane_open:
            coefs.append(-room[(a, t)])
            vars_.append(m.lane_open[a, t])
            return (None, LinearExpression(constant=0.0, linear_coefs=coefs, linear_vars=vars_), 0.0)
        return (None, LinearExpression(constant=0.0, linear_coefs=coefs, linear_vars=vars_), room[(a, t)])

    m.lane_capacity = pyo.Constraint(m.LANE_CAP_DAYS, rule=cap_rule)
    up = inputs.ship_upper
    uncapped = [(a, t) for (a, t) in m.LANE_DAYS if arcs[a].capacity_volume_per_day is None]
    m.LANE_OPEN_DAYS = _set(uncapped, 2)

    def open_rule(_m, a, t):
        ks = terms[(a, t)]
        big = sum(up[(a, k)] for k, _ in ks)
        return (
            None,
            LinearExpression(
                constant=0.0,
                linear_coefs=[1.0] * len(ks) + [-big],
                linear_vars=[v for _, v in ks] + [m.lane_open[a, t]],
            ),
            0.0,
        )

    m.lane_open_link = pyo.Constraint(m.LANE_OPEN_DAYS, rule=open_rule)
    m.LANE_MIN_DAYS = _set([(a, t) for (a, t) in m.LANE_DAYS if (arcs[a].min_units or 0) > 0], 2)

    def min_rule(_m, a, t):
        ks = terms[(a, t)]
        return (
            0.0,
            LinearExpression(
                constant=0.0,
                linear_coefs=[1.0] * len(ks) + [-float(arcs[a].min_units)],
                linear_vars=[v for _, v in ks] + [m.lane_open[a, t]],
            ),
            None,
        )

    m.lane_minimum = pyo.Constraint(m.LANE_MIN_DAYS, rule=min_rule)


def add_minimum_transfer(m: pyo.ConcreteModel, inputs: NetworkInputs) -> None:
    """A transfer order is zero or at least the policy minimum (quantity or value)."""
    up, items, sd = inputs.ship_upper, inputs.items, inputs.short_dated

    def bound(a: str, k: str) -> float:
        pool = sd.get((inputs.arcs[a].origin, k))
        return up.get((a, k), 0.0) + (pool.units if pool else 0.0)

    def low_rule(_m, a, k, t):
        vs = _shipped(m, a, k, t)
        return (
            0.0,
            LinearExpression(
                constant=0.0,
                linear_coefs=[1.0] * len(vs) + [-items[k].min_transfer_units],
                linear_vars=vs + [m.order_open[a, k, t]],
            ),
            None,
        )

    def high_rule(_m, a, k, t):
        vs = _shipped(m, a, k, t)
        return (
            None,
            LinearExpression(
                constant=0.0,
                linear_coefs=[1.0] * len(vs) + [-bound(a, k)],
                linear_vars=vs + [m.order_open[a, k, t]],
            ),
            0.0,
        )

    m.minimum_transfer = pyo.Constraint(m.ORDER_SLOTS, rule=low_rule)
    m.order_open_link = pyo.Constraint(m.ORDER_SLOTS, rule=high_rule)


def add_lane_slot_links(m: pyo.ConcreteModel, inputs: NetworkInputs) -> None:
    """Each SKU's shipment on a lane-day with a binary needs the lane open: order binary ≤ lane binary,
    or, without an order binary, shipment ≤ its bound × lane binary.

    The lane-day rows already say this for the lane's flow as a whole (flow ≤ the sum of every SKU's
    bound × open), which allows no plan the per-SKU rows forbid; the relaxation, though, then opens a
    lane-day by the share of that sum its flow uses and charges that share of the fixed cost, so the
    MIP starts from a weak bound and branches long. Per SKU, the share is at least the largest SKU's
    share of its own bound: the classic disaggregated (facility-location) strengthening. No plan is
    added or removed; the relaxation is tighter. On 9 of the later (harder) cycles of a 21-day steady
    twin run (seed 101; two of them stop at the 60 s limit either way) the ladder took 228 s against
    264 s in all, on 2 cores shared with two other runs; 4 plans came out cheaper, 4 the same, one
    0.2 dearer out of 3,749 (inside the 1% MIP gap) (2026-12-01).

    Only on models small enough for exact order binaries (`inputs.exact_minimum_transfer`), the ones
    the MIP solves; a larger model's relaxation feeds slope scaling and rounding, left as measured."""
    rows = _lane_slot_rows(m, inputs) if inputs.exact_minimum_transfer else []
    m.LANE_SLOT_LINKS = pyo.RangeSet(0, len(rows) - 1) if rows else pyo.Set(initialize=[])
    m.lane_slot_link = pyo.Constraint(
        m.LANE_SLOT_LINKS,
        rule=lambda _m, i: (
            None,
            LinearExpression(constant=0.0, linear_coefs=rows[i][0], linear_vars=rows[i][1]),
            0.0,
        ),
    )


def _lane_slot_rows(m: pyo.ConcreteModel, inputs: NetworkInputs) -> list[tuple[list[float], list]]:
    """(coefficients, variables) of each row `add_lane_slot_links` adds, all of them ≤ 0."""
    rows: list[tuple[list[float], list]] = []
    by_lane_day = _arc_day_terms(m)
    for (a, t), y in m.lane_open.items():
        ks = by_lane_day.get((a, t), [])
        if len(ks) == 1 and inputs.arcs[a].capacity_volume_per_day is None and (a, ks[0][0], t) not in m.order_open:
            continue  # the lane-day row is this row already
        linked: set[str] = set()
        for k, v in ks:
            if (a, k, t) in m.order_open:
                if k not in linked:  # one row per order binary (regular and short-dated share it)
                    rows.append(([1.0, -1.0], [m.order_open[a, k, t], y]))
                    linked.add(k)
            elif v.ub is not None and v.ub > 0:
                rows.append(([1.0, -float(v.ub)], [v, y]))
    return rows


def add_storage_capacity(m: pyo.ConcreteModel, inputs: NetworkInputs) -> None:
    """Volume of in-model stock ≤ the room left by the rest of the site's stock (where it can bind)."""
    by_site: dict[str, list[str]] = defaultdict(list)
    for s, k in inputs.pairs:
        by_site[s].append(k)
    sites = sorted(inputs.binding.get("storage", frozenset()))
    m.STORAGE_DAYS = _set([(s, t) for s in sites for t in range(inputs.horizon)], 2)
    items = inputs.items

    def rule(_m, s, t):
        ks = by_site[s]
        return (
            None,
            LinearExpression(
                constant=0.0,
                linear_coefs=[items[k].unit_volume for k in ks],
                linear_vars=[m.stock_units[s, k, t] for k in ks],
            ),
            inputs.storage_room[(s, t)],
        )

    m.storage_capacity = pyo.Constraint(m.STORAGE_DAYS, rule=rule)


def add_outbound_capacity(m: pyo.ConcreteModel, inputs: NetworkInputs) -> None:
    """Units leaving a site per day ≤ its dock or production throughput (where it can bind)."""
    terms = _arc_day_terms(m)
    by_site_day: dict[tuple[str, int], list] = defaultdict(list)
    for (a, t), ks in terms.items():
        by_site_day[(inputs.arcs[a].origin, t)].extend(v for _, v in ks)
    binding = inputs.binding.get("outbound", frozenset())
    keys = sorted(k for k in by_site_day if k[0] in binding)
    m.OUTBOUND_DAYS = _set(keys, 2)

    def rule(_m, s, t):
        vs = by_site_day[(s, t)]
        return (
            None,
            LinearExpression(constant=0.0, linear_coefs=[1.0] * len(vs), linear_vars=vs),
            inputs.outbound_room[(s, t)],
        )

    m.outbound_capacity = pyo.Constraint(m.OUTBOUND_DAYS, rule=rule)


def add_possession_limits(m: pyo.ConcreteModel, inputs: NetworkInputs) -> None:
    """Units held in a country (of one SKU or all) at the end of each day ≤ its limit."""
    binding = inputs.binding.get("possession", frozenset())
    rules = {r.rule_id: r for r in inputs.possession if r.rule_id in binding}
    members = {
        rid: [(s, k) for s, k in inputs.pairs if s in r.sites and (r.sku is None or k == r.sku)]
        for rid, r in rules.items()
    }
    m.POSSESSION_DAYS = _set([(rid, t) for rid in sorted(rules) if members[rid] for t in range(inputs.horizon)], 2)

    def rule(_m, rid, t):
        ps = members[rid]
        return (
            None,
            LinearExpression(
                constant=0.0,
                linear_coefs=[1.0] * len(ps),
                linear_vars=[m.stock_units[s, k, t] for s, k in ps],
            ),
            rules[rid].room_units[t],
        )

    m.possession_limit = pyo.Constraint(m.POSSESSION_DAYS, rule=rule)


def add_shelf_life(m: pyo.ConcreteModel, inputs: NetworkInputs) -> None:
    """Short-dated units leave only their pool, and a destination takes only what it sells in time."""
    out_of: dict[tuple[str, str], list] = defaultdict(list)
    into: dict[tuple[str, str], list] = defaultdict(list)
    for (a, k, _t), v in m.short_dated_ship_units.items():
        out_of[(inputs.arcs[a].origin, k)].append(v)
        into[(inputs.arcs[a].destination, k)].append(v)
    m.SHORT_DATED_POOLS = _set(sorted(out_of), 2)
    m.SHORT_DATED_SALES = _set(sorted(into), 2)

    def pool_rule(_m, s, k):
        vs = out_of[(s, k)]
        return (
            None,
            LinearExpression(constant=0.0, linear_coefs=[1.0] * len(vs), linear_vars=vs),
            inputs.short_dated[(s, k)].units,
        )

    def sell_rule(_m, s, k):
        vs = into[(s, k)]
        return (
            None,
            LinearExpression(constant=0.0, linear_coefs=[1.0] * len(vs), linear_vars=vs),
            inputs.short_dated_sell_cap.get((s, k), 0.0),
        )

    m.short_dated_pool = pyo.Constraint(m.SHORT_DATED_POOLS, rule=pool_rule)
    m.short_dated_sell_in_time = pyo.Constraint(m.SHORT_DATED_SALES, rule=sell_rule)


def add_negotiated_caps(m: pyo.ConcreteModel, inputs: NetworkInputs) -> None:
    """Caps the agents set in negotiation: what may leave a site-SKU over the horizon (a local reserve)."""
    caps = dict(inputs.restrictions.outbound_caps)
    leaving: dict[tuple[str, str], list] = defaultdict(list)
    for (a, k, _t), v in list(m.ship_units.items()) + list(m.short_dated_ship_units.items()):
        pair = (inputs.arcs[a].origin, k)
        if pair in caps:
            leaving[pair].append(v)
    m.NEGOTIATED_CAPS = _set(sorted(leaving), 2)

    def rule(_m, s, k):
        vs = leaving[(s, k)]
        return (
            None,
            LinearExpression(constant=0.0, linear_coefs=[1.0] * len(vs), linear_vars=vs),
            caps[(s, k)],
        )

    m.negotiated_cap = pyo.Constraint(m.NEGOTIATED_CAPS, rule=rule)


def _shipped_now(m: pyo.ConcreteModel, inputs: NetworkInputs, a: str, k: str) -> list:
    """The shipment variables of (arc, sku) inside the freeze window."""
    return [v for t in range(inputs.freeze_days) for v in _shipped(m, a, k, t)]


def add_release_changes(m: pyo.ConcreteModel, inputs: NetworkInputs) -> None:
    """release_change[a, k] ≥ |Σ shipped inside the freeze window − what the previous plan meant to
    ship there| for the (arc, SKU) pairs of `planned_now` that can ship inside the window; the
    objective pays the release-now cost on it instead of on every unit (`release_now_cost_on: changes`)."""
    keys = [key for key in inputs.planned_now if _shipped_now(m, inputs, *key)] if inputs.release_now_cost else []
    m.RELEASE_CHANGES = _set(keys, 2)
    m.release_change = pyo.Var(m.RELEASE_CHANGES, domain=pyo.NonNegativeReals)

    def row(sign: float):
        def rule(_m, a, k):
            vs = _shipped_now(m, inputs, a, k)
            return (
                None,
                LinearExpression(
                    constant=0.0,
                    linear_coefs=[sign] * len(vs) + [-1.0],
                    linear_vars=vs + [m.release_change[a, k]],
                ),
                sign * inputs.planned_now[(a, k)],
            )

        return rule

    m.release_more = pyo.Constraint(m.RELEASE_CHANGES, rule=row(1.0))  # shipped − planned ≤ change
    m.release_less = pyo.Constraint(m.RELEASE_CHANGES, rule=row(-1.0))  # planned − shipped ≤ change


def add_end_cover(m: pyo.ConcreteModel, inputs: NetworkInputs) -> None:
    """Credited end-of-horizon stock ≤ the pair's stock on the horizon's last day (`end_cover`)."""
    last = inputs.horizon - 1
    m.END_COVER = _set([pair for pair in inputs.pairs if pair in inputs.end_cover], 2)
    m.end_cover_units = pyo.Var(
        m.END_COVER, domain=pyo.NonNegativeReals, bounds=lambda _m, s, k: (0, inputs.end_cover[(s, k)][0])
    )
    m.end_cover_link = pyo.Constraint(
        m.END_COVER, rule=lambda _m, s, k: m.end_cover_units[s, k] <= m.stock_units[s, k, last]
    )


def add_objective(m: pyo.ConcreteModel, inputs: NetworkInputs) -> None:
    """Transport and purchase + fixed lane-day + holding + shortage + safety shortfall − short-dated credit
    − end-of-horizon cover credit + the policy's cost of releasing now (per unit shipped inside the freeze
    window, or per unit of change from the previous plan there: `add_release_changes`)."""
    coefs: list[float] = []
    vars_: list = []
    arcs, items = inputs.arcs, inputs.items
    for (a, k, t), v in m.ship_units.items():
        coefs.append(arcs[a].cost_per_unit + inputs.release_cost_of(a, k, t))
        vars_.append(v)
    for (a, k, t), v in m.short_dated_ship_units.items():
        credit = inputs.short_dated_credit_share * items[k].unit_cost
        coefs.append(arcs[a].cost_per_unit - credit + inputs.release_cost_of(a, k, t))
        vars_.append(v)
    for v in m.release_change.values():
        coefs.append(inputs.release_now_cost)
        vars_.append(v)
    # a pair the previous plan meant to ship now that can no longer ship inside the window: all of it changes
    constant = inputs.release_now_cost * sum(
        q for key, q in inputs.planned_now.items() if key not in m.RELEASE_CHANGES
    )
    for (a, _t), v in m.lane_open.items():
        coefs.append(arcs[a].fixed_cost)
        vars_.append(v)
    for (_s, k, _t), v in m.stock_units.items():
        h = items[k].holding_cost_per_day
        if h:
            coefs.append(h)
            vars_.append(v)
    last = inputs.horizon - 1
    for (_s, k, t), v in m.shortage_units.items():
        p = items[k].shortage_penalty
        if inputs.unmet_demand == "lost_sales":
            coefs.append(p)
        else:
            coefs.append(inputs.backorder_daily_share * p + (p if t == last else 0.0))
        vars_.append(v)
    for (s, k, _t, j), v in m.safety_shortfall_units.items():
        coefs.append(m._data.slices[(s, k)][j][1])
        vars_.append(v)
    for (s, k), v in m.end_cover_units.items():
        coefs.append(-inputs.end_cover[(s, k)][1])
        vars_.append(v)
    m.total_cost = pyo.Objective(
        expr=LinearExpression(constant=constant, linear_coefs=coefs, linear_vars=vars_), sense=pyo.minimize
    )


def model_inputs(m: pyo.ConcreteModel) -> NetworkInputs:
    return m._data.inputs


def build_seconds(m: pyo.ConcreteModel) -> float:
    return m._data.build_seconds


# ---------------------------------------------------------------------------------------------
# solve
# ---------------------------------------------------------------------------------------------

_FEASIBLE_STOPS = {
    "kTimeLimit",
    "kSolutionLimit",
    "kIterationLimit",
    "kInterrupt",
    "kObjectiveBound",
    "kUnknown",
}


def solve(model: pyo.ConcreteModel, options: SolveOptions = SolveOptions()) -> SolveResult:
    """Hand the model to HiGHS and load the answer into the model's variables."""
    if options.interface == "persistent":
        with PYOMO_LOCK:
            result = _solve_persistent(model, options)
    else:
        result = _solve_direct(model, options)
    if result.status != "optimal" and not options.allow_nonoptimal:
        raise SolverError(
            f"The solver did not return an optimal solution (status {result.status}, "
            f"termination {result.termination}); pass allow_nonoptimal=True to accept it."
        )
    return result


_THREADS: int | None = None


def _classify(
    status_name: str, has_primal: bool
) -> Literal["optimal", "feasible", "infeasible", "no_solution", "error"]:
    if status_name == "kOptimal":
        return "optimal"
    if status_name in ("kModelEmpty",):
        return "optimal"
    if status_name in ("kInfeasible", "kUnboundedOrInfeasible"):
        return "infeasible"
    if status_name in _FEASIBLE_STOPS:
        return "feasible" if has_primal else "no_solution"
    return "error"


def _solve_direct(model: pyo.ConcreteModel, options: SolveOptions) -> SolveResult:

    t0 = time.perf_counter()
    with PYOMO_LOCK:
        return _solve_direct_locked(model, options, t0)


@dataclass
class _Session:
    """One compiled model kept in HiGHS across the solves of a ladder run.

    The model is compiled once (fixed variables treated as free, so later fixings are only column
    bounds); each solve pushes the variables' current bounds and re-runs HiGHS, which starts from
    its last basis. Re-solving after fixing binaries or moving bounds therefore costs neither a
    second compile nor a cold simplex.
    """

    highs: Any
    columns: list
    integer: np.ndarray
    cost: np.ndarray
    rows: int
    nonzeros: int
    signature: tuple[int, int]
    c_offset: float


def _signature(model: pyo.ConcreteModel) -> tuple[int, int]:
    constraints = sum(len(c) for c in model.component_objects(pyo.Constraint, active=True))
    variables = sum(len(v) for v in model.component_objects(pyo.Var))
    return constraints, variables


def _linear_rows(model: pyo.ConcreteModel):
    """The model as row-wise arrays, read straight from its `LinearExpression`s (every constraint and
    the objective of `build_model` is one). None when some expression is not: then Pyomo compiles."""
    col_of: dict[int, int] = {}
    columns: list = []
    starts, index, value, lower, upper = [0], [], [], [], []
    inf = float("inf")

    def col(v) -> int:
        j = col_of.get(id(v))
        if j is None:
            j = col_of[id(v)] = len(columns)
            columns.append(v)
        return j

    for c in model.component_data_objects(pyo.Constraint, active=True, descend_into=True):
        body = c.body
        if type(body) is not LinearExpression:
            return None
        for coef, v in zip(body.linear_coefs, body.linear_vars, strict=True):
            if type(coef) is not float and type(coef) is not int:
                return None
            index.append(col(v))
            value.append(coef)
        starts.append(len(index))
        const = body.constant
        if type(const) is not float and type(const) is not int:
            return None
        lb, ub = c.lb, c.ub
        lower.append(-inf if lb is None else lb - const)
        upper.append(inf if ub is None else ub - const)
    objectives = list(model.component_data_objects(pyo.Objective, active=True, descend_into=True))
    cost: dict[int, float] = {}
    offset = 0.0
    if objectives:
        expr = objectives[0].expr
        if len(objectives) > 1 or type(expr) is not LinearExpression or objectives[0].sense != pyo.minimize:
            return None
        for coef, v in zip(expr.linear_coefs, expr.linear_vars, strict=True):
            if type(coef) is not float and type(coef) is not int:
                return None
            j = col(v)
            cost[j] = cost.get(j, 0.0) + coef
        offset = float(expr.constant)
    c_vec = np.zeros(len(columns))
    for j, coef in cost.items():
        c_vec[j] = coef
    return (
        columns,
        c_vec,
        offset,
        np.asarray(starts, dtype=np.int32),
        np.asarray(index, dtype=np.int32),
        np.asarray(value, dtype=float),
        np.asarray(lower, dtype=float),
        np.asarray(upper, dtype=float),
    )


def _session(model: pyo.ConcreteModel) -> _Session:
    import highspy

    signature = _signature(model)
    cached = getattr(model._data, "session", None) if hasattr(model, "_data") else None
    if cached is not None and cached.signature == signature:
        return cached
    inf = highspy.kHighsInf
    lp = highspy.HighsLp()
    rows = _linear_rows(model)
    if rows is not None:
        columns, cost, offset, starts, index, value, row_lower, row_upper = rows
        n, m = len(columns), len(row_lower)
        lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    else:
        columns, cost, offset, starts, index, value, row_lower, row_upper = _pyomo_standard_form(model)
        n, m = len(columns), len(row_lower)
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    integer = np.fromiter((v.is_integer() for v in columns), dtype=bool, count=n)
    lp.num_col_ = n
    lp.num_row_ = m
    lp.col_cost_ = cost
    lp.col_lower_ = np.zeros(n)
    lp.col_upper_ = np.full(n, inf)
    lp.row_lower_ = np.where(np.isinf(row_lower), -inf, row_lower)
    lp.row_upper_ = np.where(np.isinf(row_upper), inf, row_upper)
    lp.offset_ = offset
    lp.a_matrix_.start_ = starts
    lp.a_matrix_.index_ = index
    lp.a_matrix_.value_ = value
    lp.a_matrix_.num_col_ = n
    lp.a_matrix_.num_row_ = m
    if integer.any():
        lp.integrality_ = [highspy.HighsVarType.kInteger if i else highspy.HighsVarType.kContinuous for i in integer]
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    if n:
        h.passModel(lp)
    session = _Session(h, columns, integer, cost, m, len(value), signature, offset)
    if hasattr(model, "_data"):
        model._data.session = session
    return session


def _pyomo_standard_form(model: pyo.ConcreteModel):
    """Pyomo's `LinearStandardFormCompiler` (column-wise), for models not built by `build_model`."""
    from pyomo.repn.plugins.standard_form import LinearStandardFormCompiler

    fixed = [v for v in model.component_data_objects(pyo.Var, descend_into=True) if v.fixed]
    for v in fixed:  # compiled as free columns: a fixing is then only a bound, pushed at each solve
        v.unfix()
    try:
        repn = LinearStandardFormCompiler().write(model, mixed_form=True, set_sense=pyo.minimize)
    finally:
        for v in fixed:
            v.fix()
    columns, A = repn.columns, repn.A
    n = len(columns)
    rhs = np.asarray(repn.rhs, dtype=float)
    kinds = np.fromiter((r.bound_type for r in repn.rows), dtype=np.int8, count=len(repn.rows))
    cost = np.asarray(repn.c.toarray()).ravel() if repn.c.shape[0] else np.zeros(n)
    if cost.size != n:
        cost = np.zeros(n)
    offset = float(repn.c_offset[0]) if len(repn.c_offset) else 0.0
    row_lower = np.where(kinds == 1, -np.inf, rhs)
    row_upper = np.where(kinds == -1, np.inf, rhs)
    return columns, cost, offset, A.indptr, A.indices, A.data, row_lower, row_upper


def _deadline(h, seconds: float) -> float:
    """HiGHS's `time_limit` for a run that may take `seconds`: its run clock adds up over every run of
    one instance, and a session runs it many times (0: stop at once)."""
    return float(h.getRunTime() + seconds) if seconds > 0 else 0.0


def _configure(h, options: SolveOptions) -> None:
    h.resetOptions()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("time_limit", _deadline(h, options.time_limit_seconds))
    h.setOptionValue("mip_rel_gap", float(options.mip_gap))
    # HiGHS keeps one global thread scheduler per process: a run asking for a different thread
    # count than the scheduler was started with fails (kNotset). Restart the scheduler when the count
    # changes, so a plan depends on its own options only, not on which run came first in this
    # process: the same job gives the same plan in a fresh Dask worker and in a long-lived process.
    global _THREADS
    wanted = int(options.threads)
    if _THREADS is not None and wanted != _THREADS:
        import highspy

        highspy.Highs.resetGlobalScheduler(True)
    _THREADS = wanted
    h.setOptionValue("threads", _THREADS)
    h.setOptionValue("random_seed", 0)
    h.setOptionValue("solve_relaxation", bool(options.relax_integers))
    for key, val in options.highs_options:
        h.setOptionValue(key, val)


def _push_bounds(session: _Session) -> None:
    import highspy

    inf = highspy.kHighsInf
    n = len(session.columns)
    lower = np.empty(n)
    upper = np.empty(n)
    for j, v in enumerate(session.columns):
        if v.fixed:
            lower[j] = upper[j] = v.value
        else:
            lb, ub = v.bounds
            lower[j] = -inf if lb is None else lb
            upper[j] = inf if ub is None else ub
    session.highs.changeColsBounds(n, np.arange(n, dtype=np.int32), lower, upper)


def slope_scaling(
    model: pyo.ConcreteModel,
    fixed_costs: dict[int, float],
    rounds: int,
    options: SolveOptions,
    *,
    min_gain: float = 0.001,
    patience: int = 3,
) -> tuple[int, float, float]:
    """Dynamic slope scaling (Kim & Pardalos, 1999) of fixed-cost binaries on the relaxation just solved.

    `fixed_costs` maps id(binary variable) to its fixed cost F. The relaxation charges F only in
    proportion to how much of its big-M a flow uses, so it spreads flow thinly over many lane-days.
    Each round re-prices every relaxed binary that carried flow at F / y of the round before — F per
    unit of the flow it then carried: lane-days that carried little get dear and empty out, busy ones
    stay cheap. A round is valued at its flow costs plus F for every binary it uses; the cheapest
    round's solution is loaded into the model. The rounds are warm-started LPs in the model's HiGHS
    session, with no clock in them (each may take `options.time_limit_seconds`, a guard against a
    hang; a round stopped by it ends the rounds), so the result is the same on every run. Stops early
    when the set of used binaries is the same three rounds in a row, or when `patience` rounds in a
    row improve the best value by less than `min_gain` (relative).
    Returns (rounds run, seconds in HiGHS, best value).
    """
    with PYOMO_LOCK:
        session = _session(model)
        h, columns = session.highs, session.columns
        idx = np.array([j for j, v in enumerate(columns) if id(v) in fixed_costs], dtype=np.int32)
        if not len(idx) or h.getInfo().primal_solution_status != 2:
            return 0, 0.0, float("nan")
        base = np.array([fixed_costs[id(columns[j])] for j in idx], dtype=float)
        price = session.cost[idx].copy()
        _configure(h, replace(options, relax_integers=True))

        def value(x: np.ndarray, objective: float) -> tuple[float, np.ndarray]:
            y = x[idx]
            used = y > EPS
            return objective - float(price @ y) + float(base[used].sum()), used

        x = np.asarray(h.getSolution().col_value)
        best_value, used = value(x, h.getInfo().objective_function_value)
        best, last, stable, idle, done, highs_seconds = x, used, 0, 0, 0, 0.0
        while done < rounds:
            done += 1
            y = x[idx]
            carried = y > EPS  # a binary that carried nothing keeps its price (it may come back)
            price[carried] = base[carried] / np.minimum(y[carried], 1.0)
            h.changeColsCost(len(idx), idx, price)
            # each round gets the whole limit (a guard against a hang, not a budget the rounds share)
            h.setOptionValue("time_limit", _deadline(h, options.time_limit_seconds))
            t0 = time.perf_counter()
            PYOMO_LOCK.release()
            try:
                h.run()
            finally:
                PYOMO_LOCK.acquire()
            highs_seconds += time.perf_counter() - t0
            info = h.getInfo()
            if info.primal_solution_status != 2:
                break
            x = np.asarray(h.getSolution().col_value)
            current, used = value(x, info.objective_function_value)
            logger.debug("slope scaling round %d: value %.1f, %d binaries used", done, current, used.sum())
            if current < best_value * (1 - min_gain):
                idle = 0
            else:
                idle += 1
            if current < best_value - 1e-9:
                best_value, best = current, x
            stable = stable + 1 if np.array_equal(used, last) else 0
            last = used
            if stable >= 2 or idle >= patience:
                break
        h.changeColsCost(len(columns), np.arange(len(columns), dtype=np.int32), session.cost)
        for v, val in zip(columns, best, strict=True):
            if not v.fixed:
                v.set_value(float(val), skip_validation=True)
        return done, highs_seconds, best_value


def _solve_direct_locked(model: pyo.ConcreteModel, options: SolveOptions, t0: float) -> SolveResult:
    session = _session(model)
    h, columns, n = session.highs, session.columns, len(session.columns)
    has_integers = bool(session.integer.any()) and not options.relax_integers
    if n:
        _configure(h, options)
        _push_bounds(session)
        if options.start == "empty" and has_integers:
            decisions = {"ship_units", "short_dated_ship_units", "lane_open", "order_open"}
            idx = np.fromiter(
                (j for j, v in enumerate(columns) if v.parent_component().local_name in decisions),
                dtype=np.int32,
            )
            h.setSolution(len(idx), idx, np.zeros(len(idx)))
        elif options.start == "current" and has_integers:
            values = np.fromiter((v.value if v.value is not None else 0.0 for v in columns), dtype=float, count=n)
            h.setSolution(n, np.arange(n, dtype=np.int32), values)
    t1 = time.perf_counter()
    if n:
        PYOMO_LOCK.release()  # HiGHS releases the GIL: let other groups build and hand over meanwhile
        try:
            h.run()
        finally:
            PYOMO_LOCK.acquire()
        status_name = h.getModelStatus().name
        info = h.getInfo()
        has_primal = info.primal_solution_status == 2  # kSolutionStatusFeasible
        x = np.asarray(h.getSolution().col_value) if has_primal else None
        objective = info.objective_function_value if has_primal else None
        gap = info.mip_gap if has_integers and has_primal else (0.0 if has_primal else None)
    else:
        status_name, has_primal, x, gap = "kModelEmpty", True, np.zeros(0), 0.0
        objective = session.c_offset
    t2 = time.perf_counter()
    status = _classify(status_name, has_primal)
    if status in ("optimal", "feasible"):
        for v in model.component_data_objects(pyo.Var, descend_into=True):
            if not v.fixed:  # fixed variables were constants of this solve: keep their values
                v.set_value(0.0, skip_validation=True)
        for v, val in zip(columns, x, strict=True):
            if not v.fixed:
                v.set_value(float(val), skip_validation=True)
        if objective is None or status_name == "kModelEmpty":
            objective = float(pyo.value(model.total_cost))
    if gap is not None and (math.isinf(gap) or gap > 1e20):
        gap = None
    t3 = time.perf_counter()
    return SolveResult(
        status=status,
        termination=status_name,
        objective=objective,
        mip_gap=gap,
        handoff_seconds=t1 - t0,
        solve_seconds=t2 - t1,
        load_seconds=t3 - t2,
        columns=n,
        rows=session.rows,
        nonzeros=session.nonzeros,
        integers=int(session.integer.sum()) if not options.relax_integers else 0,
    )


def _solve_persistent(model: pyo.ConcreteModel, options: SolveOptions) -> SolveResult:
    from pyomo.contrib.solver.common.results import SolutionStatus
    from pyomo.contrib.solver.solvers.highs import Highs

    opt = Highs()
    t0 = time.perf_counter()
    opt.set_instance(model)
    t1 = time.perf_counter()
    solver_options = {"output_flag": False, "random_seed": 0, **dict(options.highs_options)}
    res = opt.solve(
        model,
        time_limit=max(options.time_limit_seconds, 0.0),
        rel_gap=options.mip_gap,
        threads=_THREADS or options.threads,
        load_solutions=False,
        raise_exception_on_nonoptimal_result=False,
        solver_options=solver_options,
    )
    t2 = time.perf_counter()
    h = opt._solver_model
    status_name = h.getModelStatus().name
    has_primal = res.solution_status in (SolutionStatus.feasible, SolutionStatus.optimal)
    status = _classify(status_name, has_primal)
    if options.relax_integers:
        raise ValueError("relax_integers is supported by the direct interface only")
    if has_primal:
        for v in model.component_data_objects(pyo.Var, descend_into=True):
            v.set_value(0.0, skip_validation=True)
        res.solution_loader.load_vars()
    t3 = time.perf_counter()
    lp = h.getLp()
    return SolveResult(
        status=status,
        termination=status_name,
        objective=res.incumbent_objective,
        mip_gap=h.getInfo().mip_gap if has_primal else None,
        handoff_seconds=t1 - t0,
        solve_seconds=t2 - t1,
        load_seconds=t3 - t2,
        columns=lp.num_col_,
        rows=lp.num_row_,
        nonzeros=len(lp.a_matrix_.value_),
        integers=sum(1 for v in model.component_data_objects(pyo.Var) if v.is_integer()),
    )


# ---------------------------------------------------------------------------------------------
# extract
# ---------------------------------------------------------------------------------------------


def extract_plan(model: pyo.ConcreteModel) -> pl.DataFrame:
    """Non-zero shipments of the loaded solution: one row per arc, SKU and ship day."""
    inputs = model_inputs(model)
    merged: dict[tuple[str, str, int], list[float]] = {}
    for (a, k, t), v in model.ship_units.items():
        q = v.value or 0.0
        if q > EPS:
            merged.setdefault((a, k, t), [0.0, 0.0])[0] += q
    for (a, k, t), v in model.short_dated_ship_units.items():
        q = v.value or 0.0
        if q > EPS:
            merged.setdefault((a, k, t), [0.0, 0.0])[1] += q
    return flows_frame(inputs, merged)


def flows_frame(inputs: NetworkInputs, merged: dict[tuple[str, str, int], list[float]]) -> pl.DataFrame:
    """Build the flow table from {(arc, sku, day): [regular units, short-dated units]}."""
    rows = []
    for (a, k, t), (q, sd) in sorted(merged.items()):
        arc = inputs.arcs[a]
        q, sd = round(q, 6), round(sd, 6)
        if q + sd <= EPS:
            continue
        rows.append((a, arc.origin, arc.destination, arc.mode, arc.kind, k, t, t + arc.lead_days, q + sd, sd))
    return pl.DataFrame(rows, schema=FLOW_SCHEMA, orient="row")


def empty_flows() -> pl.DataFrame:
    return pl.DataFrame(schema=FLOW_SCHEMA)
