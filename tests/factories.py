"""Small, valid extract frames for tests: a supplier, a plant, a DC, two hubs and three SKUs."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import polars as pl

AS_OF = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
TS = pl.Datetime("us", "UTC")


def sites() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "site_id": ["SUP-01", "PLT-DE-01", "DC-DE-01", "HUB-DE-01", "HUB-DE-02"],
            "kind": ["supplier", "plant", "dc", "hub", "hub"],
            "echelon": [0, 1, 2, 3, 3],
            "country": ["CN", "DE", "DE", "DE", "DE"],
            "storage_capacity": [None, 50_000.0, 20_000.0, 2_000.0, 1_500.0],
            "outbound_capacity_per_day": [None, 5_000.0, 3_000.0, None, None],
        },
        schema_overrides={"storage_capacity": pl.Float64, "outbound_capacity_per_day": pl.Float64},
    )


def items() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "sku": ["00123", "00456", "00789"],
            "unit_cost": [10.0, 4.5, 30.0],
            "unit_price": [18.0, 9.0, None],
            "holding_cost_per_day": [0.006, 0.003, 0.02],
            "unit_volume": [0.01, 0.02, 0.05],
            "shelf_life_days": [None, 60, None],
        },
        schema_overrides={"unit_price": pl.Float64, "shelf_life_days": pl.Int64},
    )


def lanes() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "origin": ["SUP-01", "PLT-DE-01", "DC-DE-01", "DC-DE-01", "HUB-DE-01", "HUB-DE-02"],
            "destination": ["PLT-DE-01", "DC-DE-01", "HUB-DE-01", "HUB-DE-02", "HUB-DE-02", "HUB-DE-01"],
            "mode": ["sea", "truck", "truck", "truck", "van", "van"],
            "lead_time_days": [21, 2, 1, 1, 1, 1],
            "cost_per_unit": [9.0, 0.3, 0.2, 0.2, 0.4, 0.4],
            "fixed_cost": [500.0, 150.0, 0.0, 0.0, 50.0, 50.0],
            "capacity_per_day": [None, 100.0, 50.0, 50.0, 10.0, 10.0],
            "min_units": [100.0, None, None, None, 5.0, 5.0],
        },
        schema_overrides={"capacity_per_day": pl.Float64, "min_units": pl.Float64},
    )


def inventory(as_of: datetime = AS_OF) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "as_of": [as_of] * 6,
            "site_id": ["DC-DE-01", "DC-DE-01", "HUB-DE-01", "HUB-DE-01", "HUB-DE-02", "HUB-DE-02"],
            "sku": ["00123", "00456", "00123", "00456", "00123", "00456"],
            "on_hand": [500.0, 300.0, 5.0, 80.0, 120.0, 0.0],
            "allocated": [10.0, 0.0, 0.0, 5.0, 0.0, 0.0],
            "reserved": [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            "lot": [None, "L1", None, "L2", None, "L3"],
            "expiry_date": [None, date(2027, 1, 10), None, date(2026, 12, 1), None, date(2027, 2, 1)],
        },
        schema_overrides={"as_of": TS, "lot": pl.String, "expiry_date": pl.Date},
    )


def book_inventory(as_of: datetime = AS_OF) -> pl.DataFrame:
    inv = inventory(as_of)
    return inv.group_by("as_of", "site_id", "sku", maintain_order=True).agg(pl.col("on_hand").sum().alias("qty"))


def in_transit(as_of: datetime = AS_OF) -> pl.DataFrame:
    d = as_of.date()
    return pl.DataFrame(
        {
            "shipment_id": ["SH-1", "SH-2"],
            "origin": ["DC-DE-01", "PLT-DE-01"],
            "destination": ["HUB-DE-01", "DC-DE-01"],
            "sku": ["00123", "00456"],
            "qty": [20.0, 100.0],
            "ship_date": [d - timedelta(days=1), d - timedelta(days=1)],
            "eta": [d, d + timedelta(days=1)],
        }
    )


def purchase_orders(as_of: datetime = AS_OF) -> pl.DataFrame:
    d = as_of.date()
    return pl.DataFrame(
        {
            "po_id": ["PO-1"],
            "destination": ["PLT-DE-01"],
            "sku": ["00789"],
            "qty": [400.0],
            "eta": [d + timedelta(days=10)],
        }
    )


def demand(as_of: datetime = AS_OF, days: int = 28) -> pl.DataFrame:
    start = as_of.date() - timedelta(days=days)
    rows = []
    for i in range(days):
        day = start + timedelta(days=i)
        for site, sku, qty in (("HUB-DE-01", "00123", 3.0), ("HUB-DE-02", "00123", 1.0), ("HUB-DE-01", "00456", 2.0)):
            rows.append({"date": day, "site_id": site, "sku": sku, "qty": qty + (i % 3)})
    return pl.DataFrame(rows)


def network(as_of: datetime = AS_OF) -> dict[str, pl.DataFrame]:
    return {
        "sites": sites(),
        "items": items(),
        "lanes": lanes(),
        "inventory": inventory(as_of),
        "book_inventory": book_inventory(as_of),
        "in_transit": in_transit(as_of),
        "purchase_orders": purchase_orders(as_of),
        "demand": demand(as_of),
    }
