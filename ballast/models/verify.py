"""Trust (DESIGN.md §4): every plan is checked after solving, independently of the model.

`verify_plan` replays a flow table against the inputs — it does not read the model's stock
variables — and lists every rule broken:

* flows: each shipment is on a known candidate arc, not forbidden, its arrival is ship day +
  lead time inside the horizon, its quantity positive and within its bounds;
* stock never negative: at every own site, for every SKU and day, what has left (planned
  shipments and released issues) never exceeds what was there (start + known receipts +
  arrivals); demand is served from what is left, in full where the stock allows;
* short-dated units: never more than the pool, arriving before expiry, no more than the
  destination sells in time;
* capacities: lane volume per day, lane minimum per open lane-day, outbound units per site and
  day, storage volume, possession limits (all in the no-worse-than-doing-nothing form of
  `ballast.models.network`);
* policy: minimum transfer (quantity or value), cooldown (no lateral exit within N days of a
  transfer receipt, from history or from this plan), negotiated restrictions.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import polars as pl

from ballast.models.network import NetworkInputs

TOL = 1e-5


@dataclass(frozen=True, slots=True)
class VerificationReport:
    ok: bool
    problems: tuple[str, ...]
    checks: int

    def summary(self) -> str:
        if self.ok:
            return f"verified: {self.checks} checks passed"
        head = "; ".join(self.problems[:5])
        more = f" (+{len(self.problems) - 5} more)" if len(self.problems) > 5 else ""
        return f"{len(self.problems)} problem(s): {head}{more}"


def _tol(x: float) -> float:
    return TOL * max(1.0, abs(x))


def _replay(
    inputs: NetworkInputs,
    pair: tuple[str, str],
    arrivals: dict[tuple[str, str, int], float],
    departures: dict[tuple[str, str, int], float],
) -> tuple[list[float], list[float], list[tuple[int, float]]]:
    """One site-SKU's days under a plan: end-of-day stock, unmet demand (lost, or backlog at the end
    of the day) and the days where departures exceed what is there. Demand is served in full where
    the stock allows, except what later departures need."""
    s, k = pair
    H = inputs.horizon
    init = inputs.initial_units[pair]
    dem = inputs.demand_units[pair]
    inflow = [inputs.receipt_units.get((s, k, t), 0.0) + arrivals.get((s, k, t), 0.0) for t in range(H)]
    outflow = [inputs.issue_units.get((s, k, t), 0.0) + departures.get((s, k, t), 0.0) for t in range(H)]
    # reserve[t]: stock that must stay after day t's demand so later departures can leave
    reserve = [0.0] * (H + 1)
    for t in range(H - 1, -1, -1):
        reserve[t] = max(0.0, reserve[t + 1] + outflow[t] - inflow[t])
    level, backlog = init, 0.0
    levels, unmet, negative = [], [], []
    for t in range(H):
        level += inflow[t] - outflow[t]
        if level < -_tol(init + sum(inflow)):
            negative.append((t, level))
            level = 0.0
        want = dem[t] + backlog
        served = min(want, max(level - reserve[t + 1], 0.0))
        level -= served
        backlog = (want - served) if inputs.unmet_demand == "backorders" else 0.0
        levels.append(level)
        unmet.append(want - served)
    return levels, unmet, negative


def plan_cost(inputs: NetworkInputs, flows: pl.DataFrame) -> float:
    """The coordinator's objective for a flow table, replayed as `verify_plan` replays it: moves (unit
    costs, fixed lane-day costs, short-dated credit, release-now cost), holding, unmet demand,
    safety-stock shortfall and the end-of-horizon cover credit.
    It prices the plan that is published (after whole units), not the solve that led to it."""
    arcs, items = inputs.arcs, inputs.items
    arrivals: dict[tuple[str, str, int], float] = defaultdict(float)
    departures: dict[tuple[str, str, int], float] = defaultdict(float)
    total = 0.0
    opened: set[tuple[str, int]] = set()
    shipped_now: dict[tuple[str, str], float] = defaultdict(float)
    for a, k, t, arrive, q, sd in flows.select(
        "arc_id", "sku", "ship_day", "arrive_day", "qty", "short_dated_qty"
    ).iter_rows():
        arc = arcs[a]
        total += arc.cost_per_unit * q - inputs.short_dated_credit_share * items[k].unit_cost * sd
        total += inputs.release_cost_of(a, k, t) * q
        if t < inputs.freeze_days:
            shipped_now[(a, k)] += q
        if arc.needs_binary:
            opened.add((a, t))
        arrivals[(arc.destination, k, arrive)] += q
        if inputs.sites[arc.origin].kind != "supplier":
            departures[(arc.origin, k, t)] += q - sd
    total += sum(arcs[a].fixed_cost for a, _t in opened)
    total += inputs.release_change_cost(shipped_now)
    last = inputs.horizon - 1
    for pair in inputs.pairs:
        item = items[pair[1]]
        levels, unmet, _negative = _replay(inputs, pair, arrivals, departures)
        ss = inputs.safety_units[pair]
        for t, (level, short) in enumerate(zip(levels, unmet, strict=True)):
            total += item.holding_cost_per_day * level
            if inputs.unmet_demand == "lost_sales":
                total += item.shortage_penalty * short
            else:
                share = inputs.backorder_daily_share * item.shortage_penalty
                total += (share + (item.shortage_penalty if t == last else 0.0)) * short
            if ss > 0:
                total += inputs.shortfall_cost(pair, ss - level)
        total -= inputs.end_cover_credit(pair, levels[-1])  # a horizon has at least one day
    return total


def verify_plan(inputs: NetworkInputs, flows: pl.DataFrame) -> VerificationReport:
    """Check a flow table (see `ballast.models.coordinator.FLOW_SCHEMA`) against every rule."""
    problems: list[str] = []
    checks = 0
    H = inputs.horizon
    arcs, items, sites = inputs.arcs, inputs.items, inputs.sites
    slots = set(inputs.ship_slots)
    sd_slots = set(inputs.short_dated_slots)
    banned = inputs.restrictions.banned_slots
    arrivals: dict[tuple[str, str, int], float] = defaultdict(float)
    departures: dict[tuple[str, str, int], float] = defaultdict(float)
    lane_volume: dict[tuple[str, int], float] = defaultdict(float)
    lane_units: dict[tuple[str, int], float] = defaultdict(float)
    out_units: dict[tuple[str, int], float] = defaultdict(float)
    sd_out: dict[tuple[str, str], float] = defaultdict(float)
    sd_in: dict[tuple[str, str], float] = defaultdict(float)
    pair_out: dict[tuple[str, str], float] = defaultdict(float)
    lateral_exit: list[tuple[str, str, int, str]] = []
    rows = flows.select("arc_id", "sku", "ship_day", "arrive_day", "qty", "short_dated_qty").iter_rows()
    for a, k, t, arrive, q, sd in rows:
        checks += 1
        where = f"{a} {k} day {t}"
        if a in inputs.forbidden_arcs:
            problems.append(f"{where}: lane is forbidden by policy")
            continue
        arc = arcs.get(a)
        if arc is None:
            problems.append(f"{where}: not a candidate arc")
            continue
        regular = q - sd
        if regular > TOL and (a, k, t) not in slots:
            problems.append(f"{where}: no such ship slot (cooldown, negotiation or horizon)")
        if sd > TOL and (a, k, t) not in sd_slots:
            problems.append(f"{where}: short-dated units on a slot that cannot arrive before expiry")
        if (a, k, t) in banned:
            problems.append(f"{where}: refused in negotiation")
        if arrive != t + arc.lead_days or not 0 <= t or arrive >= H:
            problems.append(
                f"{where}: arrival day {arrive} does not match lead time {arc.lead_days} in horizon {H}"
            )
        if q <= 0 or regular < -TOL or sd < -TOL:
            problems.append(f"{where}: quantity {q} (short-dated {sd}) is not positive")
        up = inputs.ship_upper.get((a, k))
        if up is not None and regular > up + _tol(up):
            problems.append(f"{where}: {regular:.3f} above its bound {up:.3f}")
        if arc.minimum_transfer_applies:
            mt = items[k].min_transfer_units
            if mt > 0 and q < mt - _tol(mt):
                problems.append(f"{where}: {q:.3f} u below the minimum transfer {mt:.3f} u")
        arrivals[(arc.destination, k, arrive)] += q
        if sites[arc.origin].kind != "supplier":
            departures[(arc.origin, k, t)] += regular
        v = items[k].unit_volume
        lane_volume[(a, t)] += q * v
        lane_units[(a, t)] += q
        out_units[(arc.origin, t)] += q
        pair_out[(arc.origin, k)] += q
        if sd > 0:
            sd_out[(arc.origin, k)] += sd
            sd_in[(arc.destination, k)] += sd
        if arc.kind == "lateral":
            lateral_exit.append((arc.origin, k, t, a))

    # stock never negative, and the service-maximal stock trajectory for the capacity checks
    stock: dict[tuple[str, str, int], float] = {}
    touched = {(s, k) for (s, k, _t) in list(arrivals) + list(departures)}
    for pair in sorted(set(inputs.pairs) | touched):
        s, k = pair
        if pair not in inputs.initial_units:
            problems.append(f"{s} {k}: flows touch a site-SKU the model does not hold")
            continue
        checks += 1
        levels, _unmet, negative = _replay(inputs, pair, arrivals, departures)
        for t, level in negative:
            problems.append(f"{s} {k} day {t}: stock {level:.3f} < 0 (departures exceed what is there)")
        for t, level in enumerate(levels):
            stock[(s, k, t)] = level

    # short-dated pools and sell-in-time caps
    for pair, units in sd_out.items():
        checks += 1
        pool = inputs.short_dated.get(pair)
        if pool is None or units > pool.units + _tol(pool.units):
            problems.append(
                f"{pair[0]} {pair[1]}: {units:.3f} short-dated units shipped, pool {pool.units if pool else 0}"
            )
    for pair, units in sd_in.items():
        checks += 1
        cap = inputs.short_dated_sell_cap.get(pair, 0.0)
        if units > cap + _tol(cap):
            problems.append(
                f"{pair[0]} {pair[1]}: receives {units:.3f} short-dated units, sells {cap:.3f} in time"
            )

    # capacities
    for (a, t), vol in lane_volume.items():
        checks += 1
        arc = arcs[a]
        room = inputs.lane_room.get((a, t))
        if room is not None and vol > room + _tol(room):
            problems.append(f"{a} day {t}: volume {vol:.3f} above lane capacity {room:.3f}")
        if (arc.min_units or 0) > 0 and lane_units[(a, t)] < arc.min_units - _tol(arc.min_units):
            problems.append(f"{a} day {t}: {lane_units[(a, t)]:.3f} u below the lane minimum {arc.min_units}")
    for (s, t), units in out_units.items():
        checks += 1
        room = inputs.outbound_room.get((s, t))
        if room is not None and units > room + _tol(room):
            problems.append(f"{s} day {t}: {units:.3f} u outbound above capacity {room:.3f}")
    site_volume: dict[tuple[str, int], float] = defaultdict(float)
    for (s, k, t), level in stock.items():
        site_volume[(s, t)] += level * items[k].unit_volume if k in items else 0.0
    for (s, t), vol in site_volume.items():
        room = inputs.storage_room.get((s, t))
        if room is not None:
            checks += 1
            if vol > room + _tol(room):
                problems.append(f"{s} day {t}: stored volume {vol:.3f} above capacity room {room:.3f}")
    for rule in inputs.possession:
        for t in range(H):
            checks += 1
            held = sum(
                level
                for (s, k, tt), level in stock.items()
                if tt == t and s in rule.sites and (rule.sku is None or rule.sku == k)
            )
            if held > rule.room_units[t] + _tol(rule.room_units[t]):
                problems.append(
                    f"{rule.rule_id} day {t}: {held:.3f} u held above the limit's room {rule.room_units[t]:.3f}"
                )

    # cooldown: history and this plan's own lateral receipts
    N = inputs.cooldown_days
    if N > 0:
        planned_receipts: dict[tuple[str, str], list[int]] = defaultdict(list)
        for a, k, _t, arrive in flows.select("arc_id", "sku", "ship_day", "arrive_day").iter_rows():
            arc = arcs.get(a)
            if arc is not None and arc.kind != "purchase":
                planned_receipts[(arc.destination, k)].append(arrive)
        for s, k, t, a in lateral_exit:
            checks += 1
            days = list(inputs.transfer_receipt_days.get((s, k), ())) + planned_receipts.get((s, k), [])
            if any(r <= t < r + N for r in days):
                problems.append(
                    f"{a} {k} day {t}: leaves {s} within {N} days of a transfer receipt (cooldown)"
                )

    # negotiated caps
    for pair, cap in inputs.restrictions.outbound_caps:
        checks += 1
        if pair_out.get(pair, 0.0) > cap + _tol(cap):
            problems.append(f"{pair[0]} {pair[1]}: {pair_out[pair]:.3f} u leave, negotiated cap {cap:.3f}")
    return VerificationReport(ok=not problems, problems=tuple(problems), checks=checks)
