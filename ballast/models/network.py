"""The coordinator's input (DESIGN.md §4): one frozen, typed object with sparse index lists.

`build_inputs` turns the staged frames, the positions, the forecasts and targets, and the hub
agents' statements and proposals into a `NetworkInputs`. Only *candidate* arcs get variables:

* replenishment and purchase arcs from the echelon above into every site-SKU in deficit, and
  — where the requested volume exceeds what that source can spare — into the source as well,
  up the echelons (a DC that feeds hubs may itself need its plant or a supplier);
* the surplus → deficit lateral arcs the agents proposed, and the short-dated offers.

Site-SKU pairs touched by no candidate arc keep their no-action trajectory; they enter the
model only as a constant share of shared capacities (storage, possession limits).

Capacities are made *no worse than doing nothing*: a room that the no-action trajectory already
exceeds is raised to that trajectory, so the plan never has to make stock disappear and the empty
plan is always feasible. Storage goes one step further: a site whose no-action volume peaks above
its capacity (stock this morning, or receipts the plan cannot refuse) has to find room for that
peak anyway, so its capacity is taken as that peak on every day of the horizon. The plan may then
refill the space that sales free, but never raise the site's volume above the peak; a hub over
capacity can still be replenished in a SKU it is about to run out of. A capacity that
cannot bind, given the variables' upper bounds, is left out of the model: it would only couple
SKUs that are otherwise independent (`sku_groups`).

Shelf life: short-dated units (see `ballast.models.positions`) are not stock where they stand;
they may travel on proposed arcs that arrive before their expiry, up to the destination's mean
demand between arrival and expiry, and each unit moved earns its unit cost (a write-off avoided).

Cooldown (no ping-pong): a SKU that reached a site by transfer on day r may not leave that site
on a lateral or upward arc on days r .. r + cooldown_days − 1 (receipts from earlier cycles'
released orders and in-transit shipments). Downstream replenishment is normal flow, not ping-pong.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Literal

import numpy as np
import polars as pl
from scipy import stats

from ballast.models.agents import is_forbidden
from ballast.models.policy import Policy
from ballast.models.positions import Positions

ArcKind = Literal["purchase", "replenishment", "lateral"]
Pair = tuple[str, str]  # (site_id, sku)
Slot = tuple[str, str, int]  # (arc_id, sku, day)


@dataclass(frozen=True, slots=True)
class Site:
    site_id: str
    kind: str
    echelon: int
    country: str
    storage_capacity: float | None
    outbound_capacity_per_day: float | None


@dataclass(frozen=True, slots=True)
class Item:
    sku: str
    unit_cost: float
    holding_cost_per_day: float
    unit_volume: float
    shortage_penalty: float
    min_transfer_units: float  # 0: no minimum (policy minimum transfer, quantity or value)


@dataclass(frozen=True, slots=True)
class Arc:
    arc_id: str
    origin: str
    destination: str
    mode: str
    kind: ArcKind
    lead_days: int
    cost_per_unit: float
    fixed_cost: float
    capacity_volume_per_day: float | None
    min_units: float | None

    leaf_destination: bool = True  # the destination is a hub or store (it passes nothing on)

    @property
    def minimum_transfer_applies(self) -> bool:
        """The policy's minimum transfer governs rebalancing moves between hubs or stores; replenishment,
        purchases and DC-to-DC moves are governed by their lanes' own minimums and fixed costs."""
        return self.kind == "lateral" and self.leaf_destination

    @property
    def needs_binary(self) -> bool:
        """A lane-day binary is needed only where a fixed cost or a minimum applies."""
        return self.fixed_cost > 0 or (self.min_units or 0) > 0


@dataclass(frozen=True, slots=True)
class PossessionRule:
    rule_id: str
    country: str
    sku: str | None
    sites: tuple[str, ...]
    room_units: tuple[float, ...]  # per day, for the in-model pairs it covers


@dataclass(frozen=True, slots=True)
class ShortDated:
    units: float
    expiry_day: int  # day index of the earliest expiry; arrivals must be earlier


@dataclass(frozen=True, slots=True)
class Restrictions:
    """What negotiation adds: ship slots an agent refused and per-pair caps on what may leave."""

    banned_slots: frozenset[Slot] = frozenset()
    outbound_caps: tuple[tuple[Pair, float], ...] = ()

    def merge(self, other: Restrictions) -> Restrictions:
        caps = dict(self.outbound_caps)
        for pair, cap in other.outbound_caps:
            caps[pair] = min(cap, caps.get(pair, cap))
        return Restrictions(self.banned_slots | other.banned_slots, tuple(sorted(caps.items())))


@dataclass(frozen=True, slots=True)
class SolverSettings:
    time_limit_seconds: float
    mip_gap: float
    threads: int


@dataclass(frozen=True)
class NetworkInputs:
    """Everything `build_model` needs, indexed sparsely. Day t is `as_of + t`; t = 0 .. horizon − 1."""

    as_of: date
    horizon: int
    unmet_demand: Literal["lost_sales", "backorders"]
    backorder_daily_share: float
    safety_shortfall_penalty: float
    short_dated_credit_share: float
    cooldown_days: int
    sites: dict[str, Site]
    items: dict[str, Item]
    arcs: dict[str, Arc]
    pairs: tuple[Pair, ...]
    ship_slots: tuple[Slot, ...]
    short_dated_slots: tuple[Slot, ...]
    initial_units: dict[Pair, float]
    receipt_units: dict[tuple[str, str, int], float]
    issue_units: dict[tuple[str, str, int], float]
    demand_units: dict[Pair, tuple[float, ...]]
    safety_units: dict[Pair, float]
    short_dated: dict[Pair, ShortDated]
    short_dated_sell_cap: dict[Pair, float]  # destination pair -> units it sells before the expiry
    ship_upper: dict[tuple[str, str], float]  # (arc, sku) -> upper bound on one day's shipment
    storage_room: dict[tuple[str, int], float]  # volume free for in-model pairs, per site and day
    lane_room: dict[tuple[str, int], float]  # volume per arc and day
    outbound_room: dict[tuple[str, int], float]  # units per site and day
    possession: tuple[PossessionRule, ...]
    forbidden_arcs: frozenset[str]  # lanes of the network the policy forbids (for verification)
    cooldown_blocked: frozenset[Slot]  # slots removed by the cooldown rule (for explanations)
    transfer_receipt_days: dict[Pair, tuple[int, ...]]  # past and scheduled transfer receipts
    restrictions: Restrictions = Restrictions()
    solver: SolverSettings = SolverSettings(60.0, 0.01, 2)
    binding: dict[str, frozenset] = field(default_factory=dict)
    # order-level binaries for the policy minimum transfer only on small models; larger ones enforce
    # it after the solve (round up or drop, then an LP repair: `ballast.models.ladder`)
    exact_minimum_transfer: bool = True
    release_now_cost: float = 0.0  # per unit shipped inside the freeze window (policy: release_now_cost_per_unit)
    freeze_days: int = 1
    # (arc, sku) -> units the previous cycle's plan meant to ship inside this freeze window (policy:
    # release_now_cost_on = changes). For these the release-now cost is paid on the difference between
    # what ships inside the window and this, not on every unit shipped.
    planned_now: dict[tuple[str, str], float] = field(default_factory=dict)
    # destinations that pay no release-now cost this cycle (policy: release_now_cost_waived), with the
    # (sku, day) that would first fall below safety stock if nothing bound for them were released now
    release_now_waived: dict[str, tuple[str, int]] = field(default_factory=dict)
    # pair -> (units of end-of-horizon stock credited at most, credit per unit) (policy:
    # end_of_horizon_cover_days)
    end_cover: dict[Pair, tuple[float, float]] = field(default_factory=dict)
    # cost per unit-day of each equal slice of the shortfall below safety stock, top slice first
    # (policy: safety_stock_shortfall_curve); a pair not here pays the flat safety_shortfall_penalty
    safety_slopes: dict[Pair, tuple[float, ...]] = field(default_factory=dict)

    def shortfall_slices(self, pair: Pair) -> tuple[tuple[float, float], ...]:
        """(width in units, cost per unit-day) of each slice of the shortfall below the pair's safety
        stock, the slice nearest safety stock first; the costs never fall going down (convex)."""
        slopes = self.safety_slopes.get(pair) or (self.safety_shortfall_penalty,)
        width = self.safety_units[pair] / len(slopes)
        return tuple((width, slope) for slope in slopes)

    def shortfall_cost(self, pair: Pair, units: float) -> float:
        """What `units` below the pair's safety stock cost for one day."""
        cost, left = 0.0, max(units, 0.0)
        for width, slope in self.shortfall_slices(pair):
            take = min(left, width)
            cost += take * slope
            left -= take
        return cost

    def end_cover_credit(self, pair: Pair, level: float) -> float:
        """What `level` units left at the pair when the horizon ends are credited (`end_cover`)."""
        cap, credit = self.end_cover.get(pair, (0.0, 0.0))
        return credit * min(max(level, 0.0), cap)

    def release_cost(self, t: int) -> float:
        """What shipping one unit on day `t` costs for being released now rather than left to a later cycle."""
        return self.release_now_cost if t < self.freeze_days else 0.0

    def release_cost_of(self, arc: str, sku: str, t: int) -> float:
        """The release-now cost per unit of one slot; zero where it is paid on the change from the
        previous plan instead (`planned_now`, `release_change_cost`)."""
        if (arc, sku) in self.planned_now or self.arcs[arc].destination in self.release_now_waived:
            return 0.0
        return self.release_cost(t)

    def release_change_cost(self, shipped_now: dict[tuple[str, str], float]) -> float:
        """Release-now cost × |units shipped inside the freeze window − units the previous plan meant
        to ship there|, over the (arc, SKU) pairs of `planned_now`; `shipped_now` maps (arc, sku) to
        the units a plan ships inside the window."""
        return self.release_now_cost * sum(
            abs(shipped_now.get(key, 0.0) - planned) for key, planned in self.planned_now.items()
        )

    @property
    def days(self) -> range:
        return range(self.horizon)

    def day(self, t: int) -> date:
        return self.as_of + timedelta(days=t)

    def skus(self) -> tuple[str, ...]:
        return tuple(sorted({s for _, s in self.pairs} | {s for _, s, _ in self.ship_slots}))

    def restrict(self, extra: Restrictions) -> NetworkInputs:
        """A copy with negotiation's restrictions applied (refused slots lose their variable)."""
        merged = self.restrictions.merge(extra)
        banned = merged.banned_slots
        return dataclasses.replace(
            self,
            restrictions=merged,
            ship_slots=tuple(s for s in self.ship_slots if s not in banned),
            short_dated_slots=tuple(s for s in self.short_dated_slots if s not in banned),
        )

    def subset(self, skus: frozenset[str]) -> NetworkInputs:
        """The part of the network that concerns `skus` only (shared rooms stay whole)."""

        def keep_pair(d: dict) -> dict:
            return {k: v for k, v in d.items() if k[1] in skus}

        return dataclasses.replace(
            self,
            items={k: v for k, v in self.items.items() if k in skus},
            pairs=tuple(p for p in self.pairs if p[1] in skus),
            ship_slots=tuple(s for s in self.ship_slots if s[1] in skus),
            short_dated_slots=tuple(s for s in self.short_dated_slots if s[1] in skus),
            initial_units=keep_pair(self.initial_units),
            receipt_units=keep_pair(self.receipt_units),
            issue_units=keep_pair(self.issue_units),
            demand_units=keep_pair(self.demand_units),
            safety_units=keep_pair(self.safety_units),
            safety_slopes=keep_pair(self.safety_slopes),
            short_dated=keep_pair(self.short_dated),
            short_dated_sell_cap=keep_pair(self.short_dated_sell_cap),
            ship_upper=keep_pair(self.ship_upper),
            possession=tuple(r for r in self.possession if r.sku is None or r.sku in skus),
            cooldown_blocked=frozenset(s for s in self.cooldown_blocked if s[1] in skus),
            transfer_receipt_days=keep_pair(self.transfer_receipt_days),
            planned_now=keep_pair(self.planned_now),
            end_cover=keep_pair(self.end_cover),
        )

    def size(self) -> dict[str, int]:
        return {
            "pairs": len(self.pairs),
            "ship_slots": len(self.ship_slots),
            "short_dated_slots": len(self.short_dated_slots),
            "arcs": len({a for a, _, _ in self.ship_slots}),
            "skus": len(self.skus()),
        }


def arc_id(origin: str, destination: str, mode: str) -> str:
    return f"{origin}>{destination}:{mode}"


def _shortage_penalty(policy: Policy, unit_price: float | None) -> float:
    return max(policy.shortage_penalty_per_unit, policy.shortage_penalty_price_multiple * (unit_price or 0.0))


def expected_shortage_slopes(
    *,
    service_level: float,
    protection_days: float,
    shortage_penalty: float,
    floor: float,
    segments: int,
) -> tuple[float, ...]:
    """Cost per unit-day of each of `segments` equal slices of the shortfall below safety stock, the
    slice nearest safety stock first.

    Safety stock covers demand over the protection period P up to its α-quantile: stock x above the
    mean leaves a stock-out probability of about 1 − Φ(z_α · x / safety stock). Lost sales over P,
    E[(D_P − μ_P − x)⁺], fall by that probability per unit of x, so a unit of shortfall whose slice
    sits at stock x costs penalty × (1 − Φ(z_α · x / ss)) / P per day (taken at the slice's middle),
    never less than the flat `floor`. Just below safety stock that is ≈ penalty × (1 − α) / P; at
    the last units ≈ penalty / (2P).
    """
    z = float(stats.norm.ppf(min(max(service_level, 0.5), 0.9999)))
    days = max(protection_days, 1.0)
    mids = [1.0 - (j + 0.5) / segments for j in range(segments)]
    return tuple(max(floor, shortage_penalty * float(stats.norm.sf(z * x)) / days) for x in mids)


def _min_transfer(policy: Policy, unit_cost: float) -> float:
    # Whole units: orders ship whole units, so a minimum of 8.09 units means 9.
    by_value = math.ceil(policy.minimum_transfer.value / unit_cost - 1e-9) if unit_cost > 0 else 0.0
    return float(max(math.ceil(policy.minimum_transfer.units - 1e-9), by_value))


def _no_action(stock0: np.ndarray, net_in: np.ndarray, demand: np.ndarray, backorders: bool) -> np.ndarray:
    """End-of-day stock per pair and day when nothing new is shipped (P × H)."""
    P, H = demand.shape
    out = np.zeros((P, H))
    level = stock0.copy()
    for t in range(H):
        level = level + net_in[:, t] - demand[:, t]
        if not backorders:
            level = np.maximum(level, 0.0)
        out[:, t] = np.maximum(level, 0.0)
    return out


def build_inputs(
    *,
    sites: pl.DataFrame,
    items: pl.DataFrame,
    lanes: pl.DataFrame,
    positions: Positions,
    forecasts: pl.DataFrame,
    targets: pl.DataFrame,
    statements: pl.DataFrame,
    proposals: pl.DataFrame,
    policy: Policy,
    as_of: date,
    released_orders: pl.DataFrame | None = None,
    in_transit: pl.DataFrame | None = None,
    previous_orders: pl.DataFrame | None = None,
) -> NetworkInputs:
    """Assemble the sparse coordinator input from frames (see module docstring for the rules)."""
    H = policy.horizon_days
    backorders = policy.unmet_demand == "backorders"
    site_map = {
        r["site_id"]: Site(
            r["site_id"],
            r["kind"],
            int(r["echelon"]),
            r["country"],
            r["storage_capacity"],
            r["outbound_capacity_per_day"],
        )
        for r in sites.iter_rows(named=True)
    }
    countries = {s.site_id: s.country for s in site_map.values()}
    item_map = {
        r["sku"]: Item(
            r["sku"],
            float(r["unit_cost"]),
            float(r["holding_cost_per_day"]),
            float(r["unit_volume"]),
            _shortage_penalty(policy, r["unit_price"]),
            _min_transfer(policy, float(r["unit_cost"])),
        )
        for r in items.iter_rows(named=True)
    }

    # ---- every own site-SKU pair as arrays: stock, net known flows, mean demand -------------------
    pos = positions.positions.filter(pl.col("site_id").is_in(list(site_map)))
    day_index = (pl.col("day") - pl.lit(as_of)).dt.total_days()
    fc = forecasts.select("site_id", "sku", t=day_index, mean="mean").filter(pl.col("t").is_between(0, H - 1))
    rec = positions.receipts.select("site_id", "sku", t=day_index, qty="qty").filter(
        pl.col("t").is_between(0, H - 1)
    )
    iss = positions.issues.select("site_id", "sku", t=day_index, qty="qty").filter(
        pl.col("t").is_between(0, H - 1)
    )
    tg = targets.select("site_id", "sku", "safety_stock")
    all_pairs = (
        pl.concat(
            [
                pos.select("site_id", "sku"),
                fc.select("site_id", "sku"),
                rec.select("site_id", "sku"),
                iss.select("site_id", "sku"),
                tg.select("site_id", "sku"),
            ]
        )
        .unique()
        .filter(pl.col("site_id").is_in([s for s, v in site_map.items() if v.kind != "supplier"]))
        .sort("site_id", "sku")
        .with_row_index("p")
    )
    P = all_pairs.height
    pair_keys: list[Pair] = list(all_pairs.select("site_id", "sku").iter_rows())
    pidx = {k: i for i, k in enumerate(pair_keys)}

    def dense(frame: pl.DataFrame, value: str) -> np.ndarray:
        out = np.zeros((P, H))
        if frame.is_empty():
            return out
        j = frame.join(all_pairs, on=["site_id", "sku"])
        np.add.at(out, (j["p"].to_numpy(), j["t"].to_numpy()), j[value].to_numpy())
        return out

    def vector(frame: pl.DataFrame, value: str) -> np.ndarray:
        out = np.zeros(P)
        j = frame.join(all_pairs, on=["site_id", "sku"])
        out[j["p"].to_numpy()] = j[value].fill_null(0.0).to_numpy()
        return out

    demand = dense(fc, "mean")
    receipts = dense(rec, "qty")
    issues_m = dense(iss, "qty")
    stock0 = vector(pos, "sellable")
    safety = vector(tg, "safety_stock")
    no_action = _no_action(stock0, receipts - issues_m, demand, backorders)

    # ---- candidate arcs ---------------------------------------------------------------------------
    lane_rows = [
        r
        for r in lanes.iter_rows(named=True)
        if r["origin"] in site_map
        and r["destination"] in site_map
        and r["lead_time_days"] + policy.safety_time_days < H
        and not is_forbidden(policy, r["origin"], r["destination"], r["mode"], countries)
    ]
    forbidden = frozenset(
        arc_id(r["origin"], r["destination"], r["mode"])
        for r in lanes.iter_rows(named=True)
        if is_forbidden(policy, r["origin"], r["destination"], r["mode"], countries)
    )
    arcs: dict[str, Arc] = {}
    inbound_from_above: dict[str, list[str]] = defaultdict(list)
    for r in lane_rows:
        o, d = site_map[r["origin"]], site_map[r["destination"]]
        if o.kind == "supplier":
            kind: ArcKind = "purchase"
        elif o.echelon < d.echelon:
            kind = "replenishment"
        else:
            kind = "lateral"
        a = Arc(
            arc_id(o.site_id, d.site_id, r["mode"]),
            o.site_id,
            d.site_id,
            r["mode"],
            kind,
            int(r["lead_time_days"]) + policy.safety_time_days,  # planned: nominal lead plus safety time
            float(r["cost_per_unit"]),
            float(r["fixed_cost"]),
            r["capacity_per_day"],
            r["min_units"],
            leaf_destination=d.kind in ("hub", "store") and o.kind in ("hub", "store"),
        )
        arcs[a.arc_id] = a
        if kind != "lateral":
            inbound_from_above[d.site_id].append(a.arc_id)

    st = statements.select(
        "site_id", "sku", "stock_units", "receipts_units", "deficit_units", "surplus_units", "status"
    )
    stmt = {
        (s, k): (stock, rec_u, deficit, surplus, status)
        for s, k, stock, rec_u, deficit, surplus, status in st.iter_rows()
    }

    def holds(site: str, sku: str) -> bool:
        row = stmt.get((site, sku))
        return row is not None and (row[0] + row[1]) > 0

    sourcing: dict[Pair, bool] = {}

    def carries(site: str, sku: str) -> bool:
        """The site can pass the SKU on within the plan: a supplier, stock or receipts there, or a
        source above it that carries it (an empty DC still relays its plant's stock to its hubs)."""
        key = (site, sku)
        if key not in sourcing:
            sourcing[key] = False  # upward arcs form no cycle; this only guards against a malformed network
            sourcing[key] = (
                site_map[site].kind == "supplier"
                or holds(site, sku)
                or any(carries(arcs[a].origin, sku) for a in inbound_from_above.get(site, ()))
            )
        return sourcing[key]

    candidate: set[tuple[str, str]] = set()  # (arc, sku)
    short_dated_candidates: set[tuple[str, str]] = set()
    for r in proposals.iter_rows(named=True):
        aid = arc_id(r["origin"], r["destination"], r["mode"])
        if aid not in arcs:
            continue
        if r["units"] > 0:
            candidate.add((aid, r["sku"]))
        if r["short_dated_units"] > 0:
            short_dated_candidates.add((aid, r["sku"]))

    # deficits pull replenishment from above; a source asked for more than it can spare pulls in turn.
    # A source that also offers the SKU sideways still supplies its own sites: the model splits its stock.
    asked: dict[Pair, float] = defaultdict(float)
    frontier = sorted((s, k) for (s, k), row in stmt.items() if row[4] == "deficit")
    seen: set[Pair] = set()
    while frontier:
        nxt: list[Pair] = []
        for site, sku in frontier:
            if (site, sku) in seen:
                continue
            seen.add((site, sku))
            need = stmt.get((site, sku), (0, 0, 0, 0, ""))[2] + asked.get((site, sku), 0.0)
            for aid in inbound_from_above.get(site, ()):
                a = arcs[aid]
                if not carries(a.origin, sku):
                    continue
                candidate.add((aid, sku))
                if site_map[a.origin].kind != "supplier":
                    asked[(a.origin, sku)] += need
                    spare = stmt.get((a.origin, sku), (0, 0, 0, 0, ""))[3]
                    if asked[(a.origin, sku)] > spare:
                        nxt.append((a.origin, sku))
        frontier = sorted(set(nxt))

    # no ping-pong inside the plan: a site-SKU that receives does not also send sideways or up
    receivers = {(arcs[a].destination, k) for a, k in candidate | short_dated_candidates}
    candidate = {
        (a, k) for a, k in candidate if arcs[a].kind != "lateral" or (arcs[a].origin, k) not in receivers
    }
    short_dated_candidates = {
        (a, k) for a, k in short_dated_candidates if (arcs[a].origin, k) not in receivers
    }

    # end cover: a SKU a fixed-cost lane's destination ends the horizon short of may ride a lane-day
    # opened for its other SKUs; added after the ping-pong rule, and never to a site-SKU that sends
    # sideways or short-dated stock, so it takes no rescue move away
    if policy.end_of_horizon_cover_days > 0:
        senders = {(arcs[a].origin, k) for a, k in candidate if arcs[a].kind == "lateral"}
        senders |= {(arcs[a].origin, k) for a, k in short_dated_candidates}
        short_at_end = no_action[:, H - 1] < safety + policy.end_of_horizon_cover_days * demand.mean(axis=1) - 1e-9
        for (site, sku), p in pidx.items():
            if p < 0 or not short_at_end[p] or (site, sku) in senders:
                continue
            for aid in inbound_from_above.get(site, ()):
                a = arcs[aid]
                if a.kind == "replenishment" and a.fixed_cost > 0 and carries(a.origin, sku):
                    candidate.add((aid, sku))

    # ---- in-model pairs and slots -----------------------------------------------------------------
    in_model: set[Pair] = set()
    for aid, sku in candidate | short_dated_candidates:
        a = arcs[aid]
        in_model.add((a.destination, sku))
        if site_map[a.origin].kind != "supplier":
            in_model.add((a.origin, sku))
    for pair in in_model:
        if pair not in pidx:  # a pair with no row anywhere: zero everything
            pidx[pair] = -1
    pairs = tuple(sorted(in_model))

    # cooldown: transfer receipts from own sites (released orders, in-transit) block lateral/upward exits
    rel = released_orders if released_orders is not None else None
    receipt_days: dict[Pair, set[int]] = defaultdict(set)
    if rel is not None and not rel.is_empty():
        for o, d, sku, arrive in rel.select("origin", "destination", "sku", "arrive_date").iter_rows():
            if o in site_map and site_map[o].kind != "supplier":
                receipt_days[(d, sku)].add((arrive - as_of).days)
    if in_transit is not None and not in_transit.is_empty():
        for o, d, sku, eta in in_transit.select("origin", "destination", "sku", "eta").iter_rows():
            if o in site_map and site_map[o].kind != "supplier":
                receipt_days[(d, sku)].add(max((eta - as_of).days, 0))
    N = policy.cooldown_days

    def blocked(a: Arc, sku: str, t: int) -> bool:
        if N <= 0 or a.kind != "lateral":
            return False
        return any(r <= t < r + N for r in receipt_days.get((a.origin, sku), ()))

    ship_slots: list[Slot] = []
    blocked_slots: list[Slot] = []
    for aid, sku in sorted(candidate):
        a = arcs[aid]
        for t in range(H - a.lead_days):
            (blocked_slots if blocked(a, sku, t) else ship_slots).append((aid, sku, t))

    # ---- shelf life: short-dated pools and how much each destination sells in time ---------------
    short_dated: dict[Pair, ShortDated] = {}
    for site, sku, units, expiry in positions.positions.select(
        "site_id", "sku", "unsellable_expiring", "short_dated_expiry"
    ).iter_rows():
        if units > 0 and expiry is not None:
            short_dated[(site, sku)] = ShortDated(float(units), (expiry - as_of).days)
    sd_slots: list[Slot] = []
    sell_cap: dict[Pair, float] = {}
    for aid, sku in sorted(short_dated_candidates):
        a = arcs[aid]
        pool = short_dated.get((a.origin, sku))
        if pool is None:
            continue
        last_ship = min(pool.expiry_day - 1 - a.lead_days, H - 1 - a.lead_days)
        for t in range(0, last_ship + 1):
            slot = (aid, sku, t)
            (blocked_slots if blocked(a, sku, t) else sd_slots).append(slot)
        p = pidx.get((a.destination, sku), -1)
        if p >= 0 and (a.destination, sku) not in sell_cap:
            window = demand[p, a.lead_days : max(min(pool.expiry_day, H), a.lead_days)].sum()
            sell_cap[(a.destination, sku)] = float(max(window - stock0[p], 0.0))

    # ---- per-pair data, kept sparse ---------------------------------------------------------------
    def row(pair: Pair) -> int:
        return pidx.get(pair, -1)

    initial, dem, ss_map, rec_map, iss_map = {}, {}, {}, {}, {}
    for pair in pairs:
        p = row(pair)
        if p < 0:
            initial[pair], dem[pair], ss_map[pair] = 0.0, (0.0,) * H, 0.0
            continue
        initial[pair] = float(stock0[p])
        dem[pair] = tuple(float(x) for x in demand[p])
        ss_map[pair] = float(safety[p])
        for t in np.nonzero(receipts[p])[0]:
            rec_map[(pair[0], pair[1], int(t))] = float(receipts[p, t])
        for t in np.nonzero(issues_m[p])[0]:
            iss_map[(pair[0], pair[1], int(t))] = float(issues_m[p, t])

    # upper bound of one day's shipment on an arc: what the origin could ever hold, or what the
    # network downstream could ever use
    usable: dict[str, float] = defaultdict(float)
    rec_total: dict[Pair, float] = defaultdict(float)
    for pair in pairs:
        usable[pair[1]] += sum(dem[pair]) + ss_map[pair] + initial[pair]
    for (s, k, _t), q in rec_map.items():
        usable[k] += q
        rec_total[(s, k)] += q
    end_cover = _end_cover(policy.end_of_horizon_cover_days, candidate | short_dated_candidates, arcs, dem, ss_map)
    has_inbound = {(arcs[a].destination, k) for a, k in candidate}
    has_outbound = {(arcs[a].origin, k) for a, k in candidate | short_dated_candidates}
    ship_upper: dict[tuple[str, str], float] = {}
    for aid, sku in candidate | short_dated_candidates:
        a = arcs[aid]
        bound = usable[sku]
        if site_map[a.origin].kind != "supplier" and (a.origin, sku) not in has_inbound:
            own = initial.get((a.origin, sku), 0.0) + rec_total[(a.origin, sku)]
            pool = short_dated.get((a.origin, sku))
            bound = min(bound, own + (pool.units if pool else 0.0))
        dest = (a.destination, sku)
        if dest not in has_outbound and dest in dem:
            # a site that passes nothing on never usefully receives more than it sells plus safety stock
            # (but a lane or policy minimum may force more than that onto the truck)
            # (with backorders, demand before the arrival still waits for it)
            after = end_cover[dest][0] - ss_map[dest] if dest in end_cover else 0.0  # end cover past safety stock
            useful = sum(dem[dest][0 if backorders else a.lead_days :]) + ss_map[dest] + after
            floor = max(a.min_units or 0.0, item_map[sku].min_transfer_units if a.kind == "lateral" else 0.0)
            bound = min(bound, max(useful, floor))
        ship_upper[(aid, sku)] = bound

    # ---- shared rooms: storage, lanes, outbound, possession (never below doing nothing) ----------
    vol = np.array([item_map[k].unit_volume if k in item_map else 0.0 for _, k in pair_keys])
    in_model_rows = np.array(sorted(p for p in (row(x) for x in pairs) if p >= 0), dtype=np.int64)
    mask = np.zeros(P, dtype=bool)
    mask[in_model_rows] = True
    site_of = all_pairs["site_id"].to_numpy()
    storage_room: dict[tuple[str, int], float] = {}
    for s in site_map.values():
        if s.storage_capacity is None or s.kind == "supplier":
            continue
        rows = site_of == s.site_id
        base = (no_action[rows & ~mask] * vol[rows & ~mask, None]).sum(axis=0) if P else np.zeros(H)
        own = (no_action[rows & mask] * vol[rows & mask, None]).sum(axis=0) if P else np.zeros(H)
        # a site the no-action projection already takes over its capacity holds that peak volume
        # whatever the plan does: the plan may use the space up to it (refill what is sold), never above
        capacity = max(s.storage_capacity, float((base + own).max())) if H else s.storage_capacity
        for t in range(H):
            storage_room[(s.site_id, t)] = float(max(capacity - base[t], own[t]))
    lane_base: dict[tuple[str, int], float] = defaultdict(float)
    out_base: dict[tuple[str, int], float] = defaultdict(float)
    if rel is not None and not rel.is_empty():
        for o, d, mode, sku, ship, qty in rel.select(
            "origin", "destination", "mode", "sku", "ship_date", "qty"
        ).iter_rows():
            t = (ship - as_of).days
            if 0 <= t < H:
                v = item_map[sku].unit_volume if sku in item_map else 0.0
                lane_base[(arc_id(o, d, mode), t)] += qty * v
                out_base[(o, t)] += qty
    lane_room = {
        (aid, t): float(max(a.capacity_volume_per_day - lane_base.get((aid, t), 0.0), 0.0))
        for aid, a in arcs.items()
        if a.capacity_volume_per_day is not None
        for t in range(H)
    }
    outbound_room = {
        (s.site_id, t): float(max(s.outbound_capacity_per_day - out_base.get((s.site_id, t), 0.0), 0.0))
        for s in site_map.values()
        if s.outbound_capacity_per_day is not None
        for t in range(H)
    }
    possession = []
    country_of = np.array([countries.get(s, "") for s in site_of]) if P else np.array([])
    sku_of = all_pairs["sku"].to_numpy()
    for n, rule in enumerate(policy.possession_limits):
        rows = country_of == rule.country
        if rule.sku is not None:
            rows &= sku_of == rule.sku
        base = no_action[rows & ~mask].sum(axis=0) if P else np.zeros(H)
        own = no_action[rows & mask].sum(axis=0) if P else np.zeros(H)
        covered = tuple(
            sorted(s.site_id for s in site_map.values() if s.country == rule.country and s.kind != "supplier")
        )
        room = tuple(float(max(rule.max_units - base[t], own[t])) for t in range(H))
        possession.append(
            PossessionRule(
                f"possession-{n}-{rule.country}-{rule.sku or 'all'}", rule.country, rule.sku, covered, room
            )
        )

    waived: dict[str, tuple[str, int]] = (
        release_now_waived(ship_slots, arcs, pidx, no_action, safety, policy.freeze_window_days)
        if policy.release_now_cost_waived == "below_safety_stock" and policy.release_now_cost_per_unit > 0
        else {}
    )
    priced_arcs = {aid for aid, a in arcs.items() if a.destination not in waived}
    inputs = NetworkInputs(
        as_of=as_of,
        horizon=H,
        unmet_demand=policy.unmet_demand,
        backorder_daily_share=policy.backorder_daily_penalty_share,
        safety_shortfall_penalty=policy.safety_stock_shortfall_penalty_per_unit,
        short_dated_credit_share=1.0,
        release_now_cost=policy.release_now_cost_per_unit,
        freeze_days=policy.freeze_window_days,
        planned_now=_planned_now(policy, previous_orders, as_of, priced_arcs),
        release_now_waived=waived,
        end_cover=end_cover,
        cooldown_days=N,
        sites=site_map,
        items=item_map,
        arcs={aid: arcs[aid] for aid in sorted({a for a, _ in candidate | short_dated_candidates})},
        pairs=pairs,
        ship_slots=tuple(ship_slots),
        short_dated_slots=tuple(sd_slots),
        initial_units=initial,
        receipt_units=rec_map,
        issue_units=iss_map,
        demand_units=dem,
        safety_units=ss_map,
        safety_slopes=_safety_slopes(policy, targets, ss_map, item_map),
        short_dated={k: v for k, v in short_dated.items() if k in in_model},
        short_dated_sell_cap=sell_cap,
        ship_upper=ship_upper,
        storage_room=storage_room,
        lane_room=lane_room,
        outbound_room=outbound_room,
        possession=tuple(possession),
        forbidden_arcs=forbidden,
        cooldown_blocked=frozenset(blocked_slots),
        transfer_receipt_days={k: tuple(sorted(v)) for k, v in receipt_days.items()},
        solver=SolverSettings(policy.solver.time_limit_seconds, policy.solver.mip_gap, policy.solver.threads),
    )
    order_slots = sum(
        1
        for a, k, _t in inputs.ship_slots + inputs.short_dated_slots
        if inputs.arcs[a].minimum_transfer_applies and item_map[k].min_transfer_units > 0
    )
    return dataclasses.replace(
        inputs, binding=binding_resources(inputs), exact_minimum_transfer=order_slots <= MAX_ORDER_BINARIES
    )


MAX_ORDER_BINARIES = 2_000


def release_now_waived(
    slots: Sequence[Slot],
    arcs: dict[str, Arc],
    pidx: dict[Pair, int],
    no_action: np.ndarray,
    safety: np.ndarray,
    freeze_days: int,
) -> dict[str, tuple[str, int]]:
    """Destinations a move released now keeps at safety stock and one left to the next cycle cannot.

    For every slot inside the freeze window, the days from the arrival of a move shipped then to the
    day before a move shipped on the first day after the window could land are days only a move
    released by this cycle can reach. A destination whose stock with no new move (`no_action`, end
    of day) falls below safety stock on such a day, for a SKU it can receive, is mapped to that SKU
    and the first such day."""
    out: dict[str, tuple[str, int]] = {}
    H = no_action.shape[1] if no_action.ndim == 2 else 0
    for aid, sku, t in sorted(slots, key=lambda s: (s[2], s[0], s[1])):
        if t >= freeze_days:
            continue
        a = arcs[aid]
        p = pidx.get((a.destination, sku), -1)
        if p < 0 or safety[p] <= 0:
            continue
        for day in range(t + a.lead_days, min(freeze_days + a.lead_days, H)):
            if no_action[p, day] < safety[p] - 1e-6:
                first = out.get(a.destination)
                if first is None or day < first[1]:
                    out[a.destination] = (sku, day)
                break
    return out


END_COVER_MARGIN = 0.01  # per unit over the lane's unit cost: topping up beats leaving it to a later lane-day


def _end_cover(
    days: int,
    candidate: set[tuple[str, str]],
    arcs: dict[str, Arc],
    demand: dict[Pair, tuple[float, ...]],
    safety: dict[Pair, float],
) -> dict[Pair, tuple[float, float]]:
    """Pair -> (safety stock + `days` × its mean daily forecast, credit per unit) for every destination
    of a candidate replenishment lane (from a site above, not a supplier) with a fixed cost; `days` 0:
    none.

    The credit is the unit cost of the cheapest candidate lane into the pair, of any kind, plus
    END_COVER_MARGIN, so no lane earns more than the margin by filling it; a pair that some candidate
    lane without a fixed cost reaches gets none (it can be topped up any day, no lane-day to save).
    The cap starts at safety stock, the buffer a destination should still hold when the horizon ends;
    the units above it are what it sells in the days after the horizon, which a later plan would
    otherwise ship on a lane-day of its own."""
    if days <= 0:
        return {}
    inbound: dict[Pair, list[Arc]] = defaultdict(list)
    for aid, sku in candidate:
        inbound[(arcs[aid].destination, sku)].append(arcs[aid])
    out: dict[Pair, tuple[float, float]] = {}
    for pair, lanes in inbound.items():
        if pair not in demand or not any(a.kind == "replenishment" and a.fixed_cost > 0 for a in lanes):
            continue
        if any(a.fixed_cost <= 0 for a in lanes):
            continue
        d = demand[pair]
        cap = safety.get(pair, 0.0) + days * (sum(d) / len(d) if d else 0.0)
        if cap > 0:
            out[pair] = (float(cap), min(a.cost_per_unit for a in lanes) + END_COVER_MARGIN)
    return out


def _planned_now(
    policy: Policy, previous_orders: pl.DataFrame | None, as_of: date, arc_ids: set[str]
) -> dict[tuple[str, str], float]:
    """(arc, sku) -> units the previous plan meant to ship inside this cycle's freeze window, when the
    policy prices release-now on changes (else, or without a previous plan, empty)."""
    if (
        policy.release_now_cost_on != "changes"
        or policy.release_now_cost_per_unit <= 0
        or previous_orders is None
        or previous_orders.is_empty()
    ):
        return {}
    out: dict[tuple[str, str], float] = defaultdict(float)
    for o, d, mode, sku, ship, qty in previous_orders.select(
        "origin", "destination", "mode", "sku", "ship_date", "qty"
    ).iter_rows():
        aid = arc_id(o, d, mode)
        if 0 <= (ship - as_of).days < policy.freeze_window_days and aid in arc_ids:
            out[(aid, sku)] += float(qty)
    return dict(out)


def _safety_slopes(
    policy: Policy, targets: pl.DataFrame, safety: dict[Pair, float], items: dict[str, Item]
) -> dict[Pair, tuple[float, ...]]:
    """The expected-shortage slices of every in-model pair with safety stock (policy curve), else none."""
    if policy.safety_stock_shortfall_curve == "flat":
        return {}
    out: dict[Pair, tuple[float, ...]] = {}
    protection = pl.col("lead_time_days") + pl.col("review_days")
    for s, k, level, days in targets.select("site_id", "sku", "service_level", protection).iter_rows():
        pair = (s, k)
        if safety.get(pair, 0.0) <= 0 or k not in items:
            continue
        out[pair] = expected_shortage_slopes(
            service_level=float(level),
            protection_days=float(days),
            shortage_penalty=items[pair[1]].shortage_penalty,
            floor=policy.safety_stock_shortfall_penalty_per_unit,
            segments=policy.safety_stock_shortfall_segments,
        )
    return out


def binding_resources(inputs: NetworkInputs) -> dict[str, frozenset]:
    """Shared capacities that might bind given the variables' bounds; the others are left out."""
    H = inputs.horizon
    upper = inputs.ship_upper
    by_arc: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for aid, sku, t in inputs.ship_slots + inputs.short_dated_slots:
        by_arc[aid].append((sku, t))
    lanes = set()
    out_sites = set()
    out_volume: dict[tuple[str, int], float] = defaultdict(float)
    for aid, slots in by_arc.items():
        a = inputs.arcs[aid]
        per_day: dict[int, float] = defaultdict(float)
        units: dict[int, float] = defaultdict(float)
        for sku, t in slots:
            per_day[t] += upper.get((aid, sku), 0.0) * inputs.items[sku].unit_volume
            units[t] += upper.get((aid, sku), 0.0)
        if a.capacity_volume_per_day is not None and any(
            v > inputs.lane_room.get((aid, t), np.inf) + 1e-9 for t, v in per_day.items()
        ):
            lanes.add(aid)
        for t, u in units.items():
            out_volume[(a.origin, t)] += u
    for (site, t), u in out_volume.items():
        if u > inputs.outbound_room.get((site, t), np.inf) + 1e-9:
            out_sites.add(site)
    # storage: in-model stock at a site is at most its start, known receipts and every possible arrival
    inbound_units: dict[Pair, float] = defaultdict(float)
    for aid, sku, _t in inputs.ship_slots + inputs.short_dated_slots:
        inbound_units[(inputs.arcs[aid].destination, sku)] += upper.get((aid, sku), 0.0)
    receipts: dict[Pair, float] = defaultdict(float)
    for (s, k, _t), q in inputs.receipt_units.items():
        receipts[(s, k)] += q
    site_volume: dict[str, float] = defaultdict(float)
    pair_max: dict[Pair, float] = {}
    for pair in inputs.pairs:
        m = inputs.initial_units[pair] + receipts[pair] + inbound_units[pair]
        pair_max[pair] = m
        site_volume[pair[0]] += m * inputs.items[pair[1]].unit_volume
    storage = {
        s
        for s, v in site_volume.items()
        if (s, 0) in inputs.storage_room and v > min(inputs.storage_room[(s, t)] for t in range(H)) + 1e-9
    }
    possession = set()
    for rule in inputs.possession:
        total = sum(
            m for (s, k), m in pair_max.items() if s in rule.sites and (rule.sku is None or k == rule.sku)
        )
        if total > min(rule.room_units) + 1e-9:
            possession.add(rule.rule_id)
    return {
        "lanes": frozenset(lanes),
        "outbound": frozenset(out_sites),
        "storage": frozenset(storage),
        "possession": frozenset(possession),
    }


def sku_groups(inputs: NetworkInputs) -> list[frozenset[str]]:
    """Connected components of SKUs coupled by a shared binding capacity or a lane-day binary."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(members: set[str]) -> None:
        it = iter(sorted(members))
        first = next(it, None)
        if first is None:
            return
        root = find(first)
        for m in it:
            r = find(m)
            if r != root:
                parent[r] = root

    skus = inputs.skus()
    for s in skus:
        find(s)
    b = inputs.binding
    arc_skus: dict[str, set[str]] = defaultdict(set)
    origin_skus: dict[str, set[str]] = defaultdict(set)
    for aid, sku, _t in inputs.ship_slots + inputs.short_dated_slots:
        arc_skus[aid].add(sku)
        origin_skus[inputs.arcs[aid].origin].add(sku)
    for aid, members in arc_skus.items():
        if inputs.arcs[aid].needs_binary or aid in b.get("lanes", ()):
            union(members)
    for site in b.get("outbound", ()):
        union(origin_skus[site])
    site_skus: dict[str, set[str]] = defaultdict(set)
    for s, k in inputs.pairs:
        site_skus[s].add(k)
    for site in b.get("storage", ()):
        union(site_skus[site])
    for rule in inputs.possession:
        if rule.rule_id in b.get("possession", ()) and rule.sku is None:
            union({k for s, k in inputs.pairs if s in rule.sites})
    groups: dict[str, set[str]] = defaultdict(set)
    for s in skus:
        groups[find(s)].add(s)
    return sorted((frozenset(g) for g in groups.values()), key=lambda g: min(g))
