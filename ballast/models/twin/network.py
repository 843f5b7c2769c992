"""The simulated network: dense arrays over nodes (suppliers and own sites) × SKUs, built from
the generated extracts (`ballast.models.sample.generate_network`).

Suppliers hold no stock and ship without limit unless they have an outbound capacity. The twin
tracks available units (on hand − allocated − reserved at the start); lots and expiry are not
simulated.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl
from numpy.typing import NDArray

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Receipt:
    """A shipment or purchase order the network already expects at the start."""

    ref: str
    kind: str  # "in_transit" | "purchase_order"
    origin: int  # node index, -1 for a purchase order (origin unknown)
    dest: int
    sku: int
    qty: float
    ship_date: date | None
    day: int  # arrival day index (0 = the first simulated day)


@dataclass(frozen=True)
class TwinNetwork:
    start: date
    nodes: tuple[str, ...]
    kind: tuple[str, ...]
    country: tuple[str, ...]
    skus: tuple[str, ...]
    unit_cost: NDArray[np.float64]
    unit_price: NDArray[np.float64]  # NaN: no price
    holding: NDArray[np.float64]  # per unit and day
    volume: NDArray[np.float64]
    out_capacity: NDArray[np.float64]  # units/day per node, inf = unlimited
    lane_origin: NDArray[np.int64]
    lane_dest: NDArray[np.int64]
    lane_mode: tuple[str, ...]
    lane_lead: NDArray[np.int64]
    lane_cost: NDArray[np.float64]  # per unit (purchase price on supplier lanes)
    lane_fixed: NDArray[np.float64]  # per lane and day used
    lane_capacity: NDArray[np.float64]  # volume/day, inf = unlimited
    lane_forbidden: NDArray[np.bool_]
    stock0: NDArray[np.float64]  # [node, sku] available units at the start
    receipts: tuple[Receipt, ...]
    history: NDArray[np.float64]  # [day, node, sku] demand history, last row = the day before start
    frames: dict[str, pl.DataFrame]  # master data as generated (landed once)
    storage_capacity: NDArray[np.float64] | None = None  # volume per node, inf/None = unlimited

    def storage(self) -> NDArray[np.float64]:
        """Storage capacity (volume) per node; unlimited where unknown."""
        if self.storage_capacity is None:
            return np.full(len(self.nodes), np.inf)
        return self.storage_capacity

    @property
    def n_nodes(self) -> int:
        return len(self.nodes)

    @property
    def n_skus(self) -> int:
        return len(self.skus)

    @property
    def n_lanes(self) -> int:
        return len(self.lane_origin)

    @property
    def is_supplier(self) -> NDArray[np.bool_]:
        return np.array([k == "supplier" for k in self.kind])

    @property
    def is_purchase(self) -> NDArray[np.bool_]:
        return self.is_supplier[self.lane_origin]

    def node(self, site_id: str) -> int:
        try:
            return self.nodes.index(site_id)
        except ValueError:
            raise KeyError(f"site {site_id!r} is not in the simulated network") from None

    def lane(self, origin: str, dest: str, mode: str) -> int:
        o, d = self.node(origin), self.node(dest)
        hits = np.flatnonzero((self.lane_origin == o) & (self.lane_dest == d))
        for h in hits:
            if self.lane_mode[h] == mode:
                return int(h)
        raise KeyError(f"no lane {origin} -> {dest} by {mode} in the simulated network")

    def shortage_penalty(self, flat: float, price_multiple: float) -> NDArray[np.float64]:
        """Per-unit penalty of a lost sale (the policy's rule: max(flat, multiple × price))."""
        return np.maximum(flat, price_multiple * np.nan_to_num(self.unit_price, nan=0.0))

    def credit_price(self) -> NDArray[np.float64]:
        """Value credited per unit held at the end: the cheapest purchase price (same for every SKU)."""
        prices = self.lane_cost[self.is_purchase]
        return np.full(self.n_skus, float(prices.min()) if prices.size else 0.0)

    def parent_lanes(self) -> NDArray[np.int64]:
        """Per node, the lane a base-stock rule replenishes it on (-1: none): from the nearest
        echelon above, allowed by the policy, shortest lead time first, then cheapest."""
        out = np.full(self.n_nodes, -1, dtype=np.int64)
        echelon = {"supplier": 0, "plant": 1, "dc": 2, "hub": 3, "store": 4}
        for n in range(self.n_nodes):
            if self.kind[n] == "supplier":
                continue
            best: tuple[int, int, float] | None = None
            for ln in np.flatnonzero(self.lane_dest == n):
                o = self.lane_origin[ln]
                if self.lane_forbidden[ln] or echelon[self.kind[o]] >= echelon[self.kind[n]]:
                    continue
                key = (-echelon[self.kind[o]], int(self.lane_lead[ln]), float(self.lane_cost[ln]))
                if best is None or key < best:
                    best, out[n] = key, ln
        return out


def _index(values: list[str]) -> dict[str, int]:
    return {v: i for i, v in enumerate(values)}


def build_network(
    frames: dict[str, pl.DataFrame], start: date, forbidden: set[tuple[str, str]] | None = None
) -> TwinNetwork:
    """The twin network from generated extracts; `forbidden` (origin, destination) pairs are
    never used by the baselines (the policy forbids them)."""
    sites, items, lanes = frames["sites"], frames["items"], frames["lanes"]
    nodes = sites["site_id"].to_list()
    ni, si = _index(nodes), _index(items["sku"].to_list())
    n_nodes, n_skus = len(nodes), items.height

    out_cap = sites["outbound_capacity_per_day"].fill_null(float("inf")).to_numpy().astype(float)
    lane_cap = lanes["capacity_per_day"].fill_null(float("inf")).to_numpy().astype(float)
    forbidden = forbidden or set()

    inv = frames["inventory"].with_columns(
        avail=pl.max_horizontal(pl.col("on_hand") - pl.col("allocated") - pl.col("reserved"), pl.lit(0.0))
    )
    stock0 = np.zeros((n_nodes, n_skus))
    for site, sku, qty in inv.group_by("site_id", "sku").agg(pl.col("avail").sum()).iter_rows():
        stock0[ni[site], si[sku]] += qty
    stock0 = np.floor(stock0)

    receipts: list[Receipt] = []
    for r in frames["in_transit"].iter_rows(named=True):
        receipts.append(
            Receipt(
                r["shipment_id"],
                "in_transit",
                ni[r["origin"]],
                ni[r["destination"]],
                si[r["sku"]],
                float(r["qty"]),
                r["ship_date"],
                max(0, (r["eta"] - start).days),
            )
        )
    for r in frames["purchase_orders"].iter_rows(named=True):
        receipts.append(
            Receipt(
                r["po_id"],
                "purchase_order",
                -1,
                ni[r["destination"]],
                si[r["sku"]],
                float(r["qty"]),
                None,
                max(0, (r["eta"] - start).days),
            )
        )

    demand = frames["demand"]
    first = demand["date"].min()
    n_days = (start - first).days if first is not None else 0
    history = np.zeros((n_days, n_nodes, n_skus))
    if n_days:
        d = demand.filter(pl.col("date") < start)
        history[
            np.array([(x - first).days for x in d["date"].to_list()], dtype=np.int64),
            np.array([ni[s] for s in d["site_id"].to_list()], dtype=np.int64),
            np.array([si[s] for s in d["sku"].to_list()], dtype=np.int64),
        ] = d["qty"].to_numpy()

    origin = lanes["origin"].to_list()
    dest = lanes["destination"].to_list()
    return TwinNetwork(
        start=start,
        nodes=tuple(nodes),
        kind=tuple(sites["kind"].to_list()),
        country=tuple(sites["country"].to_list()),
        skus=tuple(items["sku"].to_list()),
        unit_cost=items["unit_cost"].to_numpy().astype(float),
        unit_price=items["unit_price"].fill_null(float("nan")).to_numpy().astype(float),
        holding=items["holding_cost_per_day"].to_numpy().astype(float),
        volume=items["unit_volume"].to_numpy().astype(float),
        out_capacity=out_cap,
        lane_origin=np.array([ni[o] for o in origin], dtype=np.int64),
        lane_dest=np.array([ni[d] for d in dest], dtype=np.int64),
        lane_mode=tuple(lanes["mode"].to_list()),
        lane_lead=np.maximum(lanes["lead_time_days"].to_numpy().astype(np.int64), 1),
        lane_cost=lanes["cost_per_unit"].to_numpy().astype(float),
        lane_fixed=lanes["fixed_cost"].to_numpy().astype(float),
        lane_capacity=lane_cap,
        lane_forbidden=np.array([(o, d) in forbidden for o, d in zip(origin, dest, strict=True)]),
        stock0=stock0,
        receipts=tuple(receipts),
        history=history,
        frames={k: frames[k] for k in ("sites", "items", "lanes")},
        storage_capacity=sites["storage_capacity"].fill_null(float("inf")).to_numpy().astype(float),
    )
