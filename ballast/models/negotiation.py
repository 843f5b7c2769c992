"""Negotiation (issue §4): agents check the coordinator's answer against their local rules.

After a solve, each site's agent reviews the flows that concern it (`review_flows`, a pure
function of the site's rules and its part of the plan). What it rejects becomes a constraint —
`Restrictions` on the next solve — and the coordinator solves again, for the SKU groups touched
only. Rounds are bounded (`Policy.negotiation_max_rounds`); rejections are sorted by (site, rule,
arc, SKU, day) so the same plan always yields the same restrictions. If rejections remain after
the last round, the rejected flows are dropped and the plan says so.

Local rules (not part of the data contract; a site's own knowledge):

* ``receiving_closed_weekdays`` / ``receiving_closed_dates``: nothing may arrive on those days —
  every candidate slot into the site arriving on such a day is refused at once (not only the one
  the coordinator picked, which would only move the problem to the next lane);
* ``reserve_units``: per SKU, units the site keeps for itself — at most its available stock minus
  the reserve may leave over the horizon.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date

import polars as pl

from ballast.models.network import NetworkInputs, Restrictions


@dataclass(frozen=True, slots=True)
class LocalRules:
    receiving_closed_weekdays: frozenset[int] = frozenset()  # 0 = Monday
    receiving_closed_dates: frozenset[date] = frozenset()
    reserve_units: tuple[tuple[str, float], ...] = ()  # (sku, units kept)


@dataclass(frozen=True, slots=True)
class Rejection:
    site_id: str
    rule: str  # receiving_closed | reserve
    arc_id: str
    sku: str
    ship_day: int
    detail: str


def review_flows(
    site_id: str, rules: LocalRules, flows: pl.DataFrame, inputs: NetworkInputs
) -> tuple[list[Rejection], Restrictions]:
    """One agent's review of the flows into and out of its site: what it refuses, as constraints."""
    rejections: list[Rejection] = []
    banned: set[tuple[str, str, int]] = set()
    caps: dict[tuple[str, str], float] = {}
    closed = lambda t: (  # noqa: E731 - a one-line predicate reads best inline
        inputs.day(t).weekday() in rules.receiving_closed_weekdays
        or inputs.day(t) in rules.receiving_closed_dates
    )
    closed_days: set[int] = set()
    for a, k, t, arrive in (
        flows.filter(pl.col("destination") == site_id)
        .select("arc_id", "sku", "ship_day", "arrive_day")
        .iter_rows()
    ):
        if closed(arrive):
            closed_days.add(arrive)
            rejections.append(
                Rejection(
                    site_id,
                    "receiving_closed",
                    a,
                    k,
                    t,
                    f"{site_id} does not receive on {inputs.day(arrive)}",
                )
            )
    if closed_days:
        for a, k, t in inputs.ship_slots + inputs.short_dated_slots:
            arc = inputs.arcs[a]
            if arc.destination == site_id and t + arc.lead_days in closed_days:
                banned.add((a, k, t))
    reserve = dict(rules.reserve_units)
    if reserve:
        leaving: dict[str, list[tuple[str, int, float]]] = defaultdict(list)
        for a, k, t, q in (
            flows.filter(pl.col("origin") == site_id).select("arc_id", "sku", "ship_day", "qty").iter_rows()
        ):
            if k in reserve:
                leaving[k].append((a, t, q))
        for k, moves in sorted(leaving.items()):
            stock = inputs.initial_units.get((site_id, k), 0.0)
            cap = max(stock - reserve[k], 0.0)
            total = sum(q for _, _, q in moves)
            if total > cap + 1e-6:
                caps[(site_id, k)] = cap
                for a, t, q in sorted(moves, key=lambda m: (-m[1], m[0])):
                    rejections.append(
                        Rejection(
                            site_id,
                            "reserve",
                            a,
                            k,
                            t,
                            f"{site_id} keeps {reserve[k]:g} u of {k}: {q:g} u would break it",
                        )
                    )
    rejections.sort(key=lambda r: (r.site_id, r.rule, r.arc_id, r.sku, r.ship_day))
    return rejections, Restrictions(frozenset(banned), tuple(sorted(caps.items())))


def review_all(
    rules: dict[str, LocalRules], flows: pl.DataFrame, inputs: NetworkInputs
) -> tuple[list[Rejection], Restrictions]:
    """Every agent with local rules reviews the plan; their answers merged deterministically."""
    found: list[Rejection] = []
    merged = Restrictions()
    for site_id in sorted(rules):
        rej, res = review_flows(site_id, rules[site_id], flows, inputs)
        found.extend(rej)
        merged = merged.merge(res)
    return found, merged


def drop_rejected(flows: pl.DataFrame, rejections: list[Rejection]) -> pl.DataFrame:
    """Remove the flows named by rejections (used when the rounds run out)."""
    if not rejections:
        return flows
    keys = pl.DataFrame(
        [(r.arc_id, r.sku, r.ship_day) for r in rejections],
        schema={"arc_id": pl.String, "sku": pl.String, "ship_day": pl.Int64},
        orient="row",
    ).unique()
    return flows.join(keys, on=["arc_id", "sku", "ship_day"], how="anti")
