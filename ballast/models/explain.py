"""Explanations (DESIGN.md §5): every order carries why, as structured data and one sentence.

`build_orders` turns the verified flows into the orders frame the planning cycle publishes. Each
order's ``reason`` (JSON) holds the destination's deficit and when it bites, the source's surplus,
the forecast and its interval, the cost of the move against the shortage it avoids, and the
alternatives considered with why each lost; ``explanation`` says the same in one line.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from datetime import date

import polars as pl

from ballast.models.network import NetworkInputs

ORDER_SCHEMA = {
    "order_id": pl.String,
    "kind": pl.String,  # transfer | purchase
    "origin": pl.String,
    "destination": pl.String,
    "mode": pl.String,
    "sku": pl.String,
    "ship_date": pl.Date,
    "arrive_date": pl.Date,
    "qty": pl.Float64,
    "unit_cost": pl.Float64,
    "transport_cost": pl.Float64,
    "value": pl.Float64,
    "round": pl.Int64,
    "explanation": pl.String,
    "reason": pl.String,
    "short_dated_qty": pl.Float64,
}


def order_id(sku: str, origin: str, destination: str, mode: str, ship_date: date) -> str:
    """Deterministic idempotency key of the plan-independent parts of an order."""
    key = f"{sku}|{origin}|{destination}|{mode}|{ship_date.isoformat()}"
    return hashlib.sha256(key.encode()).hexdigest()[:20]


def _iso(d: date | None) -> str | None:
    return d.isoformat() if d is not None else None


def _num(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:,.1f}".rstrip("0").rstrip(".")


def build_orders(
    inputs: NetworkInputs,
    flows: pl.DataFrame,
    statements: pl.DataFrame,
    *,
    settled_round: dict[tuple[str, str, int], int] | None = None,
) -> pl.DataFrame:
    """The orders frame (ORDER_SCHEMA) of a verified flow table, each order explained."""
    if flows.is_empty():
        return pl.DataFrame(schema=ORDER_SCHEMA)
    stmt = {(r["site_id"], r["sku"]): r for r in statements.iter_rows(named=True)}
    arcs, items, sites = inputs.arcs, inputs.items, inputs.sites
    settled_round = settled_round or {}
    # lane-day fixed costs are shared by the orders on that lane-day in proportion to units
    lane_day_units: dict[tuple[str, int], float] = defaultdict(float)
    used: dict[tuple[str, str], float] = defaultdict(float)  # (arc, sku) -> units in the plan
    for a, k, t, q in flows.select("arc_id", "sku", "ship_day", "qty").iter_rows():
        lane_day_units[(a, t)] += q
        used[(a, k)] += q
    into: dict[tuple[str, str], set[str]] = defaultdict(set)
    for a, k, _t in inputs.ship_slots + inputs.short_dated_slots:
        into[(arcs[a].destination, k)].add(a)
    blocked: dict[tuple[str, str], set[str]] = defaultdict(set)
    for a, k, _t in inputs.cooldown_blocked | inputs.restrictions.banned_slots:
        if a in arcs:
            blocked[(arcs[a].destination, k)].add(a)
    forbidden_into: dict[str, list[str]] = defaultdict(list)
    for a in sorted(inputs.forbidden_arcs):
        forbidden_into[a.split(">")[1].split(":")[0]].append(a)

    rows = []
    for r in flows.sort("sku", "origin", "destination", "mode", "ship_day").iter_rows(named=True):
        a, k, t = r["arc_id"], r["sku"], r["ship_day"]
        arc, item = arcs[a], items[k]
        qty, sd = r["qty"], r["short_dated_qty"]
        ship, arrive = inputs.day(t), inputs.day(r["arrive_day"])
        purchase = arc.kind == "purchase"
        unit_cost = arc.cost_per_unit if purchase else item.unit_cost
        fixed_share = arc.fixed_cost * qty / lane_day_units[(a, t)] if arc.needs_binary else 0.0
        transport = fixed_share + (0.0 if purchase else arc.cost_per_unit * qty)
        move_cost = transport + (unit_cost * qty if purchase else 0.0)
        dest = stmt.get((arc.destination, k), {})
        src = stmt.get((arc.origin, k), {})
        deficit = float(dest.get("deficit_units") or 0.0)
        short_units = max(-(dest.get("projected_min_units") or 0.0), 0.0)
        avoided_units = min(qty, short_units)
        below_safety = min(max(qty - avoided_units, 0.0), deficit)
        avoided = item.shortage_penalty * avoided_units + inputs.shortfall_cost((arc.destination, k), below_safety)
        bite = dest.get("bite_date")
        alternatives = _alternatives(
            inputs, arc.destination, k, a, used, into, blocked, forbidden_into, stmt, bite
        )
        reason = {
            "order": {"arc": a, "kind": arc.kind, "ship_day": t, "lead_time_days": arc.lead_days},
            "destination": {
                "site_id": arc.destination,
                "stock_units": dest.get("stock_units"),
                "receipts_units": dest.get("receipts_units"),
                "safety_stock_units": dest.get("safety_stock_units"),
                "projected_min_units": dest.get("projected_min_units"),
                "deficit_units": deficit,
                "bite_date": _iso(bite),
                "stockout_date": _iso(dest.get("stockout_date")),
                "stockout_date_q95": _iso(dest.get("stockout_date_q95")),
            },
            "source": {
                "site_id": arc.origin,
                "kind": sites[arc.origin].kind,
                "stock_units": src.get("stock_units"),
                "surplus_units": src.get("surplus_units"),
                "short_dated_units": sd,
                "short_dated_expiry": _iso(src.get("short_dated_expiry")),
            },
            "forecast": {
                "horizon_days": inputs.horizon,
                "mean_units": dest.get("demand_mean_units"),
                "q95_units": dest.get("demand_q95_units"),
            },
            "economics": {
                "move_cost": round(move_cost, 4),
                "transport_cost": round(transport, 4),
                "fixed_cost_share": round(fixed_share, 4),
                "shortage_penalty_per_unit": item.shortage_penalty,
                "shortage_units_avoided": round(avoided_units, 4),
                "shortage_cost_avoided": round(avoided, 4),
                "short_dated_write_off_avoided": round(sd * item.unit_cost, 4),
            },
            "alternatives": alternatives,
            "round": settled_round.get((a, k, t), 0),
        }
        released_now = _released_now(inputs, arc.destination, t)
        if released_now:
            reason["released_now"] = released_now
        sentence = _sentence(
            inputs, arc, k, qty, sd, ship, arrive, dest, src, move_cost, avoided, alternatives, released_now
        )
        rows.append(
            (
                order_id(k, arc.origin, arc.destination, arc.mode, ship),
                "purchase" if purchase else "transfer",
                arc.origin,
                arc.destination,
                arc.mode,
                k,
                ship,
                arrive,
                qty,
                unit_cost,
                round(transport, 6),
                round(qty * unit_cost, 6),
                settled_round.get((a, k, t), 0),
                sentence,
                json.dumps(reason, default=str, sort_keys=True),
                sd,
            )
        )
    return pl.DataFrame(rows, schema=ORDER_SCHEMA, orient="row")


def _alternatives(
    inputs: NetworkInputs,
    destination: str,
    sku: str,
    chosen: str,
    used: dict[tuple[str, str], float],
    into: dict[tuple[str, str], set[str]],
    blocked: dict[tuple[str, str], set[str]],
    forbidden_into: dict[str, list[str]],
    stmt: dict,
    bite: date | None,
) -> list[dict]:
    arcs = inputs.arcs
    me = arcs[chosen]
    out = []
    for a in sorted(into.get((destination, sku), set()) | blocked.get((destination, sku), set())):
        if a == chosen:
            continue
        alt = arcs[a]
        src = stmt.get((alt.origin, sku), {})
        earliest = inputs.day(alt.lead_days)
        if used.get((a, sku), 0.0) > 0:
            why = f"also used ({_num(used[(a, sku)])} u)"
        elif a in blocked.get((destination, sku), set()) and a not in into.get((destination, sku), set()):
            why = "blocked (cooldown or refused in negotiation)"
        elif bite is not None and earliest > bite and alt.lead_days > me.lead_days:
            why = f"slower: arrives {earliest} at the earliest, after the deficit bites on {bite}"
        elif inputs.sites[alt.origin].kind != "supplier" and not (src.get("surplus_units") or 0) > 0:
            why = f"{alt.origin} has no stock to spare"
        elif alt.cost_per_unit > me.cost_per_unit:
            why = f"dearer: {alt.cost_per_unit:g}/u against {me.cost_per_unit:g}/u"
        elif alt.fixed_cost > me.fixed_cost:
            why = f"fixed cost {alt.fixed_cost:g} per shipment day against {me.fixed_cost:g}"
        else:
            why = "not needed once the chosen order covers the deficit"
        out.append(
            {
                "arc": a,
                "origin": alt.origin,
                "mode": alt.mode,
                "lead_time_days": alt.lead_days,
                "cost_per_unit": alt.cost_per_unit,
                "fixed_cost": alt.fixed_cost,
                "why_not": why,
            }
        )
    for a in forbidden_into.get(destination, []):
        out.append({"arc": a, "origin": a.split(">")[0], "why_not": "forbidden by policy"})
    return out


def _released_now(inputs: NetworkInputs, destination: str, t: int) -> dict | None:
    """Why an order inside the freeze window paid no release-now cost (`release_now_cost_waived`)."""
    first = inputs.release_now_waived.get(destination)
    if first is None or t >= inputs.freeze_days:
        return None
    sku, day = first
    return {"sku": sku, "below_safety_stock_on": _iso(inputs.day(day))}


def _sentence(
    inputs, arc, sku, qty, sd, ship, arrive, dest, src, move_cost, avoided, alternatives, released_now
) -> str:
    verb = "Buy" if arc.kind == "purchase" else "Move"
    head = f"{verb} {_num(qty)} u of {sku} {arc.origin} → {arc.destination} by {arc.mode} on {ship} (arrives {arrive})"
    parts = []
    deficit = dest.get("deficit_units") or 0.0
    if deficit > 0:
        stockout = dest.get("stockout_date")
        parts.append(
            f"{arc.destination} falls {_num(deficit)} u below safety stock from {dest.get('bite_date')}"
            + (f", out of stock from {stockout}" if stockout else "")
            + f" (forecast {_num(dest.get('demand_mean_units') or 0)} u, q95 {_num(dest.get('demand_q95_units') or 0)} u"
            f" over {inputs.horizon} d)"
        )
    elif dest:
        parts.append(
            f"{arc.destination} sells {_num(dest.get('demand_mean_units') or 0)} u over {inputs.horizon} d"
        )
    if sd > 0:
        parts.append(
            f"{_num(sd)} u are short-dated stock {arc.origin} cannot sell before {src.get('short_dated_expiry')}"
        )
    elif arc.kind != "purchase" and src:
        parts.append(f"{arc.origin} can spare {_num(src.get('surplus_units') or 0)} u")
    parts.append(f"the move costs {_num(move_cost)} against {_num(avoided)} of shortage avoided")
    if released_now:
        parts.append(
            f"{arc.destination} pays no release-now cost this cycle: with no new move it is below safety stock"
            f" of {released_now['sku']} on {released_now['below_safety_stock_on']}, before a move released"
            " by the next cycle could land"
        )
    lost = [a for a in alternatives if not a["why_not"].startswith("also used")]
    if lost:
        first = lost[0]
        parts.append(f"{first['origin']} ({first.get('mode', '?')}) not chosen: {first['why_not']}")
    return head + ": " + "; ".join(parts) + "."
