"""Projected stock by day, with and without a plan: what a planner looks at to judge it.

The projection is a stock *position*: stock that can be sold now, plus known receipts, minus
scheduled issues and forecast mean demand, day by day. It is not clipped at zero, so a negative
value reads as forecast demand the site cannot serve by then.
"""

from __future__ import annotations

from datetime import date, timedelta

import polars as pl


def project_stock(
    positions: pl.DataFrame,
    receipts: pl.DataFrame,
    issues: pl.DataFrame,
    forecasts: pl.DataFrame,
    orders: pl.DataFrame,
    as_of: date,
    days: int,
    keys: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """(site_id, sku, day, without_plan, with_plan) for `days` days from `as_of`.

    `positions` needs site_id, sku, available (sellable if present); `receipts`/`issues` site_id,
    sku, day, qty; `forecasts` site_id, sku, day, mean; `orders` origin, destination, sku,
    ship_date, arrive_date, qty. `keys` limits the projection to some (site_id, sku) pairs.
    """
    start_col = "sellable" if "sellable" in positions.columns else "available"
    start = positions.select("site_id", "sku", pl.col(start_col).alias("start"))
    if keys is not None:
        start = keys.join(start, on=["site_id", "sku"], how="left").with_columns(pl.col("start").fill_null(0.0))
    calendar = pl.DataFrame({"day": [as_of + timedelta(days=d) for d in range(days)]})
    grid = start.join(calendar, how="cross")

    def daily(frame: pl.DataFrame, site: str, day: str, sign: float, name: str) -> pl.DataFrame:
        return (
            frame.select(pl.col(site).alias("site_id"), "sku", pl.col(day).alias("day"), (pl.col("qty") * sign).alias(name))
            .group_by("site_id", "sku", "day")
            .agg(pl.col(name).sum())
        )

    base_flows = [
        daily(receipts, "site_id", "day", 1.0, "r"),
        daily(issues, "site_id", "day", -1.0, "i"),
        forecasts.select("site_id", "sku", "day", (-pl.col("mean")).alias("d")),
    ]
    plan_flows = [
        daily(orders, "destination", "arrive_date", 1.0, "pin"),
        daily(orders, "origin", "ship_date", -1.0, "pout"),
    ]
    frame = grid
    for f in (*base_flows, *plan_flows):
        frame = frame.join(f, on=["site_id", "sku", "day"], how="left")
    frame = frame.fill_null(0.0).sort("site_id", "sku", "day")
    net = pl.col("r") + pl.col("i") + pl.col("d")
    return frame.with_columns(
        (pl.col("start") + net.cum_sum().over("site_id", "sku")).alias("without_plan"),
        (pl.col("start") + (net + pl.col("pin") + pl.col("pout")).cum_sum().over("site_id", "sku")).alias("with_plan"),
    ).select("site_id", "sku", "day", "without_plan", "with_plan")


def most_affected(projection: pl.DataFrame, n: int = 6) -> pl.DataFrame:
    """The (site_id, sku) pairs whose worst projected position the plan improves most."""
    return (
        projection.group_by("site_id", "sku")
        .agg((pl.col("with_plan").min() - pl.col("without_plan").min()).alias("improvement"))
        .filter(pl.col("improvement") > 0)
        .sort(["improvement", "site_id", "sku"], descending=[True, False, False])
        .head(n)
        .select("site_id", "sku")
    )
