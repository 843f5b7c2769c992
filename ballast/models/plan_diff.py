"""What changed between two plans: orders added, removed, or with another quantity."""

from __future__ import annotations

import polars as pl

KEY = ("order_id", "kind", "origin", "destination", "mode", "sku", "ship_date")


def diff_orders(before: pl.DataFrame, after: pl.DataFrame) -> pl.DataFrame:
    """(change, order key columns, qty_before, qty_after) for every order that differs."""
    a = before.select(*KEY, pl.col("qty").alias("qty_before"))
    b = after.select(*KEY, pl.col("qty").alias("qty_after"))
    joined = a.join(b, on=list(KEY), how="full", coalesce=True)
    change = (
        pl.when(pl.col("qty_before").is_null())
        .then(pl.lit("added"))
        .when(pl.col("qty_after").is_null())
        .then(pl.lit("removed"))
        .when((pl.col("qty_before") - pl.col("qty_after")).abs() > 1e-6)
        .then(pl.lit("changed"))
    )
    return (
        joined.with_columns(change.alias("change"))
        .filter(pl.col("change").is_not_null())
        .select("change", *KEY, "qty_before", "qty_after")
        .sort("change", "ship_date", "origin", "destination", "sku")
    )
