"""Pandera (polars backend) schemas: the hard quality gate on every typed extract.

One `DataFrameModel` per extract of `ballast.models.contract`, on a shared strict base. The
frames reaching these schemas have already been parsed from text with explicit formats
(`ballast.models.parsing`), so dtypes are exact and these models check values: ranges, allowed
values, nullability and key uniqueness. Referential integrity, freshness and reconciliation
need other tables and live in `ballast.models.gates`.
"""

from __future__ import annotations

import pandera.polars as pa
import polars as pl
from pandera.typing.polars import Series

from ballast.models.contract import SITE_KINDS

ISO_COUNTRY = r"^[A-Z]{2}$"


class _Extract(pa.DataFrameModel):
    class Config:
        strict = True
        coerce = False


class Sites(_Extract):
    site_id: Series[str] = pa.Field(nullable=False, str_length={"min_value": 1})
    kind: Series[str] = pa.Field(isin=list(SITE_KINDS))
    echelon: Series[pl.Int64] = pa.Field(ge=0)
    country: Series[str] = pa.Field(str_matches=ISO_COUNTRY)
    storage_capacity: Series[pl.Float64] = pa.Field(nullable=True, gt=0)
    outbound_capacity_per_day: Series[pl.Float64] = pa.Field(nullable=True, ge=0)

    class Config:
        unique = ["site_id"]


class Items(_Extract):
    sku: Series[str] = pa.Field(str_length={"min_value": 1})
    unit_cost: Series[pl.Float64] = pa.Field(ge=0)
    unit_price: Series[pl.Float64] = pa.Field(nullable=True, ge=0)
    holding_cost_per_day: Series[pl.Float64] = pa.Field(ge=0)
    unit_volume: Series[pl.Float64] = pa.Field(gt=0)
    shelf_life_days: Series[pl.Int64] = pa.Field(nullable=True, gt=0)

    class Config:
        unique = ["sku"]


class Lanes(_Extract):
    origin: Series[str] = pa.Field(str_length={"min_value": 1})
    destination: Series[str] = pa.Field(str_length={"min_value": 1})
    mode: Series[str] = pa.Field(str_length={"min_value": 1})
    lead_time_days: Series[pl.Int64] = pa.Field(ge=0)
    cost_per_unit: Series[pl.Float64] = pa.Field(ge=0)
    fixed_cost: Series[pl.Float64] = pa.Field(ge=0)
    capacity_per_day: Series[pl.Float64] = pa.Field(nullable=True, gt=0)
    min_units: Series[pl.Float64] = pa.Field(nullable=True, ge=0)

    class Config:
        unique = ["origin", "destination", "mode"]

    @pa.dataframe_check(error="a lane cannot start and end at the same site")
    def origin_is_not_destination(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("origin") != pl.col("destination"))


class Inventory(_Extract):
    as_of: Series[pl.Datetime(time_unit="us", time_zone="UTC")]
    site_id: Series[str] = pa.Field(str_length={"min_value": 1})
    sku: Series[str] = pa.Field(str_length={"min_value": 1})
    on_hand: Series[pl.Float64] = pa.Field(ge=0)
    allocated: Series[pl.Float64] = pa.Field(ge=0)
    reserved: Series[pl.Float64] = pa.Field(ge=0)
    lot: Series[str] = pa.Field(nullable=True)
    expiry_date: Series[pl.Date] = pa.Field(nullable=True)

    class Config:
        unique = ["as_of", "site_id", "sku", "lot"]


class InTransit(_Extract):
    shipment_id: Series[str] = pa.Field(str_length={"min_value": 1})
    origin: Series[str] = pa.Field(str_length={"min_value": 1})
    destination: Series[str] = pa.Field(str_length={"min_value": 1})
    sku: Series[str] = pa.Field(str_length={"min_value": 1})
    qty: Series[pl.Float64] = pa.Field(gt=0)
    ship_date: Series[pl.Date]
    eta: Series[pl.Date]

    class Config:
        unique = ["shipment_id", "sku"]

    @pa.dataframe_check(error="eta must not be before ship_date")
    def eta_after_ship_date(cls, data: pa.PolarsData) -> pl.LazyFrame:
        return data.lazyframe.select(pl.col("eta") >= pl.col("ship_date"))


class PurchaseOrders(_Extract):
    po_id: Series[str] = pa.Field(str_length={"min_value": 1})
    destination: Series[str] = pa.Field(str_length={"min_value": 1})
    sku: Series[str] = pa.Field(str_length={"min_value": 1})
    qty: Series[pl.Float64] = pa.Field(gt=0)
    eta: Series[pl.Date]

    class Config:
        unique = ["po_id", "sku"]


class Demand(_Extract):
    date: Series[pl.Date]
    site_id: Series[str] = pa.Field(str_length={"min_value": 1})
    sku: Series[str] = pa.Field(str_length={"min_value": 1})
    qty: Series[pl.Float64] = pa.Field(ge=0)

    class Config:
        unique = ["date", "site_id", "sku"]


class BookInventory(_Extract):
    as_of: Series[pl.Datetime(time_unit="us", time_zone="UTC")]
    site_id: Series[str] = pa.Field(str_length={"min_value": 1})
    sku: Series[str] = pa.Field(str_length={"min_value": 1})
    qty: Series[pl.Float64] = pa.Field(ge=0)

    class Config:
        unique = ["as_of", "site_id", "sku"]


SCHEMAS: dict[str, type[_Extract]] = {
    "sites": Sites,
    "items": Items,
    "lanes": Lanes,
    "inventory": Inventory,
    "in_transit": InTransit,
    "purchase_orders": PurchaseOrders,
    "demand": Demand,
    "book_inventory": BookInventory,
}
