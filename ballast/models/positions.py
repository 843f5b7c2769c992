"""Canonical stock positions (DESIGN.md §2, §5): what each site holds, may sell, and will receive.

`build_positions` turns the staged WMS/TMS/ERP extracts plus the orders released by earlier
cycles into three frames:

* ``positions`` — one row per (site_id, sku): on_hand, allocated, reserved, ``available``
  (= max(on_hand − allocated − reserved, 0)), and the shelf-life split of ``available`` into
  ``sellable`` (counted as stock where it stands), ``unsellable_expiring`` (sellable-age stock
  that the site's own demand cannot consume before it expires; movable, not counted) and
  ``expired``. ``short_dated_expiry`` is the earliest expiry among the unsellable-expiring units.
* ``receipts`` — (site_id, sku, day, qty, source): in-transit shipments, purchase orders and
  released orders not yet visible in the TMS extract.
* ``issues`` — (site_id, sku, day, qty, source): released orders still to leave their origin.

Shelf life, simply: committed units (allocated + reserved) are taken from the earliest-expiring
lots first, then the site's forecast mean demand consumes the remaining lots first-expiry-first
day by day. Units of a lot still unsold on its expiry date are ``unsellable_expiring``: they do
not count as available where they stand, but the coordinator may move them to a site whose own
demand sells them before the expiry date (see `ballast.models.network`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import polars as pl

POSITION_COLUMNS = (
    "site_id",
    "sku",
    "on_hand",
    "allocated",
    "reserved",
    "available",
    "sellable",
    "unsellable_expiring",
    "expired",
    "short_dated_expiry",
)

RELEASED_ORDER_SCHEMA: dict[str, type[pl.DataType]] = {
    "order_id": pl.String,
    "origin": pl.String,
    "destination": pl.String,
    "mode": pl.String,
    "sku": pl.String,
    "ship_date": pl.Date,
    "arrive_date": pl.Date,
    "qty": pl.Float64,
}
RELEASED_ORDER_COLUMNS = tuple(RELEASED_ORDER_SCHEMA)


@dataclass(frozen=True, slots=True)
class Positions:
    """The three frames of a position snapshot (see module docstring)."""

    positions: pl.DataFrame
    receipts: pl.DataFrame
    issues: pl.DataFrame


def empty_released_orders() -> pl.DataFrame:
    """A released-orders frame with no rows and the interface's columns and types."""
    return pl.DataFrame(schema=RELEASED_ORDER_SCHEMA)


def _flow_frame(rows: pl.DataFrame | None = None) -> pl.DataFrame:
    schema = {"site_id": pl.String, "sku": pl.String, "day": pl.Date, "qty": pl.Float64, "source": pl.String}
    if rows is None:
        return pl.DataFrame(schema=schema)
    return rows.select(
        pl.col("site_id").cast(pl.String),
        pl.col("sku").cast(pl.String),
        pl.col("day").cast(pl.Date),
        pl.col("qty").cast(pl.Float64),
        pl.col("source").cast(pl.String),
    )


def _latest_snapshot(inventory: pl.DataFrame) -> pl.DataFrame:
    """Keep the latest `as_of` of each site (an extract may hold several snapshots)."""
    if inventory.is_empty():
        return inventory
    latest = inventory.group_by("site_id").agg(pl.col("as_of").max().alias("_latest"))
    return inventory.join(latest, on="site_id").filter(pl.col("as_of") == pl.col("_latest")).drop("_latest")


def _shelf_life_split(
    lots: list[tuple[date | None, float]],
    committed: float,
    daily_demand: list[float],
    as_of: date,
) -> tuple[float, float, float, date | None]:
    """Split a site-SKU's lots into (sellable, unsellable_expiring, expired, earliest short-dated expiry)."""
    # expiry None = no shelf life: sorts last, never expires
    ordered = sorted(([exp, qty] for exp, qty in lots), key=lambda lot: (lot[0] is None, lot[0] or as_of))
    expired = 0.0
    live: list[list] = []
    for exp, qty in ordered:
        if exp is not None and exp <= as_of:
            expired += qty
        else:
            live.append([exp, qty])
    # commitments ship first, from the earliest-expiring live lots
    remaining = committed
    for lot in live:
        take = min(lot[1], remaining)
        lot[1] -= take
        remaining -= take
    # forecast demand sells first-expiry-first, day by day
    for day_index, demand in enumerate(daily_demand):
        left = demand
        for lot in live:
            if left <= 0:
                break
            exp = lot[0]
            if lot[1] <= 0 or (exp is not None and (exp - as_of).days <= day_index):
                continue
            take = min(lot[1], left)
            lot[1] -= take
            left -= take
    horizon = len(daily_demand)
    unsellable = 0.0
    earliest: date | None = None
    for exp, qty in live:
        # a lot expiring within the projected window with units left is not sold in time here
        if exp is not None and qty > 1e-9 and (exp - as_of).days <= horizon:
            unsellable += qty
            earliest = exp if earliest is None else min(earliest, exp)
    available = sum(q for _, q in ordered) - expired - committed
    sellable = max(available, 0.0) - unsellable
    return max(sellable, 0.0), unsellable, expired, earliest


def build_positions(
    inventory: pl.DataFrame,
    in_transit: pl.DataFrame,
    purchase_orders: pl.DataFrame,
    as_of: date,
    *,
    released_orders: pl.DataFrame | None = None,
    forecasts: pl.DataFrame | None = None,
) -> Positions:
    """Positions, receipts and scheduled issues at `as_of` (see module docstring for the rules)."""
    released = released_orders if released_orders is not None else empty_released_orders()
    inv = _latest_snapshot(inventory)
    totals = (
        inv.group_by("site_id", "sku")
        .agg(pl.col("on_hand").sum(), pl.col("allocated").sum(), pl.col("reserved").sum())
        .with_columns(
            available=pl.max_horizontal(
                pl.col("on_hand") - pl.col("allocated") - pl.col("reserved"), pl.lit(0.0)
            )
        )
        .sort("site_id", "sku")
    )
    # shelf life: only site-SKUs that have a dated lot need the lot walk
    dated = inv.filter(pl.col("expiry_date").is_not_null())
    split: dict[tuple[str, str], tuple[float, float, float, date | None]] = {}
    if not dated.is_empty():
        demand: dict[tuple[str, str], list[float]] = {}
        if forecasts is not None and not forecasts.is_empty():
            keys = dated.select("site_id", "sku").unique()
            fc = forecasts.join(keys, on=["site_id", "sku"]).filter(pl.col("day") >= as_of).sort("day")
            for (site, sku), grp in fc.group_by(["site_id", "sku"], maintain_order=True):
                demand[(str(site), str(sku))] = grp["mean"].to_list()
        lots_by_key: dict[tuple[str, str], list[tuple[date | None, float]]] = {}
        for site, sku, qty, exp in dated.select("site_id", "sku", "on_hand", "expiry_date").iter_rows():
            lots_by_key.setdefault((site, sku), []).append((exp, qty))
        undated = inv.filter(pl.col("expiry_date").is_null()).join(
            dated.select("site_id", "sku").unique(), on=["site_id", "sku"]
        )
        for site, sku, qty in undated.select("site_id", "sku", "on_hand").iter_rows():
            lots_by_key[(site, sku)].append((None, qty))
        committed = {
            (s, k): a + r
            for s, k, a, r in totals.select("site_id", "sku", "allocated", "reserved").iter_rows()
        }
        for key, lots in lots_by_key.items():
            split[key] = _shelf_life_split(lots, committed.get(key, 0.0), demand.get(key, []), as_of)
    rows = []
    for site, sku, available in totals.select("site_id", "sku", "available").iter_rows():
        if (site, sku) in split:
            sellable, unsellable, expired, earliest = split[(site, sku)]
        else:
            sellable, unsellable, expired, earliest = available, 0.0, 0.0, None
        rows.append((sellable, unsellable, expired, earliest))
    extra = pl.DataFrame(
        rows,
        schema={
            "sellable": pl.Float64,
            "unsellable_expiring": pl.Float64,
            "expired": pl.Float64,
            "short_dated_expiry": pl.Date,
        },
        orient="row",
    )
    positions = pl.concat([totals, extra], how="horizontal").select(POSITION_COLUMNS)

    parts = []
    if not in_transit.is_empty():
        parts.append(
            in_transit.select(
                site_id="destination", sku="sku", day=pl.max_horizontal("eta", pl.lit(as_of)), qty="qty"
            ).with_columns(source=pl.lit("in_transit"))
        )
    if not purchase_orders.is_empty():
        parts.append(
            purchase_orders.select(
                site_id="destination", sku="sku", day=pl.max_horizontal("eta", pl.lit(as_of)), qty="qty"
            ).with_columns(source=pl.lit("purchase_order"))
        )
    # a released order is counted until the TMS shows it in transit (shipment_id == order_id)
    shown = set(in_transit["shipment_id"].to_list()) if not in_transit.is_empty() else set()
    pending = released.filter(~pl.col("order_id").is_in(list(shown))) if shown else released
    pending = pending.filter(pl.col("arrive_date") >= as_of)
    if not pending.is_empty():
        parts.append(
            pending.select(site_id="destination", sku="sku", day="arrive_date", qty="qty").with_columns(
                source=pl.lit("released_order")
            )
        )
    receipts = (
        _flow_frame(pl.concat([_flow_frame(p) for p in parts])).sort("site_id", "sku", "day", "source")
        if parts
        else _flow_frame()
    )
    to_ship = pending.filter(pl.col("ship_date") >= as_of)
    issues = (
        _flow_frame(
            to_ship.select(site_id="origin", sku="sku", day="ship_date", qty="qty").with_columns(
                source=pl.lit("released_order")
            )
        ).sort("site_id", "sku", "day")
        if not to_ship.is_empty()
        else _flow_frame()
    )
    return Positions(positions=positions, receipts=receipts, issues=issues)
