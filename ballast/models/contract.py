"""The inbox data contract (DESIGN.md §2): extract names, required columns, types and keys.

This module is the single description of what an ERP/WMS/TMS extract must contain. The
Pandera schemas (`ballast.models.schemas`), the sample generator and the warehouse tables are
all derived from it, so a change to the contract is made here once.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    """Logical type of a contract column; the physical polars/DuckDB type follows from it."""

    STR = "str"
    INT = "int"
    FLOAT = "float"
    DATE = "date"
    TIMESTAMP = "timestamp"  # UTC, written with an explicit offset or `Z`


@dataclass(frozen=True, slots=True)
class Column:
    """One required column of an extract."""

    name: str
    kind: Kind
    nullable: bool = False


@dataclass(frozen=True, slots=True)
class Extract:
    """One extract of the contract: its columns, key and whether it is a point-in-time snapshot."""

    name: str
    source: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    snapshot: bool
    optional: bool = False

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"{self.name} has no column {name!r}")


S, INT, F, D, TS = Kind.STR, Kind.INT, Kind.FLOAT, Kind.DATE, Kind.TIMESTAMP

SITE_KINDS = ("supplier", "plant", "dc", "hub", "store")

EXTRACTS: dict[str, Extract] = {
    e.name: e
    for e in (
        Extract(
            "sites",
            "ERP",
            (
                Column("site_id", S),
                Column("kind", S),
                Column("echelon", INT),
                Column("country", S),
                Column("storage_capacity", F, nullable=True),
                Column("outbound_capacity_per_day", F, nullable=True),
            ),
            key=("site_id",),
            snapshot=True,
        ),
        Extract(
            "items",
            "ERP",
            (
                Column("sku", S),
                Column("unit_cost", F),
                Column("unit_price", F, nullable=True),
                Column("holding_cost_per_day", F),
                Column("unit_volume", F),
                Column("shelf_life_days", INT, nullable=True),
            ),
            key=("sku",),
            snapshot=True,
        ),
        Extract(
            "lanes",
            "TMS",
            (
                Column("origin", S),
                Column("destination", S),
                Column("mode", S),
                Column("lead_time_days", INT),
                Column("cost_per_unit", F),
                Column("fixed_cost", F),
                Column("capacity_per_day", F, nullable=True),
                Column("min_units", F, nullable=True),
            ),
            key=("origin", "destination", "mode"),
            snapshot=True,
        ),
        Extract(
            "inventory",
            "WMS",
            (
                Column("as_of", TS),
                Column("site_id", S),
                Column("sku", S),
                Column("on_hand", F),
                Column("allocated", F),
                Column("reserved", F),
                Column("lot", S, nullable=True),
                Column("expiry_date", D, nullable=True),
            ),
            key=("as_of", "site_id", "sku", "lot"),
            snapshot=True,
        ),
        Extract(
            "in_transit",
            "TMS",
            (
                Column("shipment_id", S),
                Column("origin", S),
                Column("destination", S),
                Column("sku", S),
                Column("qty", F),
                Column("ship_date", D),
                Column("eta", D),
            ),
            key=("shipment_id", "sku"),
            snapshot=True,
        ),
        Extract(
            "purchase_orders",
            "ERP",
            (
                Column("po_id", S),
                Column("destination", S),
                Column("sku", S),
                Column("qty", F),
                Column("eta", D),
            ),
            key=("po_id", "sku"),
            snapshot=True,
        ),
        Extract(
            "demand",
            "POS",
            (
                Column("date", D),
                Column("site_id", S),
                Column("sku", S),
                Column("qty", F),
            ),
            key=("date", "site_id", "sku"),
            snapshot=False,
        ),
        Extract(
            "book_inventory",
            "ERP",
            (
                Column("as_of", TS),
                Column("site_id", S),
                Column("sku", S),
                Column("qty", F),
            ),
            key=("as_of", "site_id", "sku"),
            snapshot=True,
            optional=True,
        ),
    )
}

# Validation order: an extract is checked after every extract its references point into.
VALIDATION_ORDER: tuple[str, ...] = (
    "sites",
    "items",
    "lanes",
    "inventory",
    "book_inventory",
    "in_transit",
    "purchase_orders",
    "demand",
)

# Referential integrity: (extract, column) -> (target extract, target column).
REFERENCES: dict[tuple[str, str], tuple[str, str]] = {
    ("lanes", "origin"): ("sites", "site_id"),
    ("lanes", "destination"): ("sites", "site_id"),
    ("inventory", "site_id"): ("sites", "site_id"),
    ("inventory", "sku"): ("items", "sku"),
    ("book_inventory", "site_id"): ("sites", "site_id"),
    ("book_inventory", "sku"): ("items", "sku"),
    ("in_transit", "origin"): ("sites", "site_id"),
    ("in_transit", "destination"): ("sites", "site_id"),
    ("in_transit", "sku"): ("items", "sku"),
    ("purchase_orders", "destination"): ("sites", "site_id"),
    ("purchase_orders", "sku"): ("items", "sku"),
    ("demand", "site_id"): ("sites", "site_id"),
    ("demand", "sku"): ("items", "sku"),
}

FILE_FORMATS = ("csv", "parquet")
