"""Projected stock by day, with and without a plan: what a planner looks at to judge it.

The projection is a stock *position*: stock that can be sold now, plus known receipts, minus
scheduled issues and forecast mean demand, day by day. It is not clipped at zero, so a negative
value reads as forecast demand the site cannot serve by then.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl


def stock_flows(
    positions: pl.DataFrame,
    receipts: pl.DataFrame,
    issues: pl.DataFrame,
    forecasts: pl.DataFrame,
    orders: pl.DataFrame,
    as_of: date,
    days: int,
    keys: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Per (site_id, sku, day): start stock and the day's receipts `r`, issues `i` (negative),
    forecast demand `d` (negative) and plan arrivals `pin` / departures `pout` (negative).

    `positions` needs site_id, sku, available (sellable if present); `receipts`/`issues` site_id,
    sku, day, qty; `forecasts` site_id, sku, day, mean; `orders` origin, destination, sku,
    ship_date, arrive_date, qty. `keys` limits the projection to some (site_id, sku) pairs; by
    default every pair that holds stock or has forecast demand.
    """
    start_col = "sellable" if "sellable" in positions.columns else "available"
    start = positions.select("site_id", "sku", pl.col(start_col).alias("start"))
    if keys is None:
        keys = pl.concat([start.select("site_id", "sku"), forecasts.select("site_id", "sku")]).unique()
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
    return frame.fill_null(0.0).sort("site_id", "sku", "day")


def project_stock(flows: pl.DataFrame) -> pl.DataFrame:
    """(site_id, sku, day, without_plan, with_plan): the unclipped stock position by day."""
    net = pl.col("r") + pl.col("i") + pl.col("d")
    return flows.with_columns(
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


def expected_unmet(projection_flows: pl.DataFrame) -> tuple[float, float, float]:
    """(forecast demand, unmet without plan, unmet with plan) under lost sales, over the horizon.

    `projection_flows` is `stock_flows(...)`: per (site_id, sku, day) the start stock and the
    day's receipts, issues, demand and plan in/out. Stock is clipped at zero day by day: demand
    that cannot be served is lost, not carried.
    """
    if projection_flows.is_empty():
        return 0.0, 0.0, 0.0
    frame = projection_flows.sort("site_id", "sku", "day")
    days = frame.get_column("day").n_unique()
    pairs = frame.height // days

    def matrix(col: str) -> np.ndarray:
        return frame.get_column(col).to_numpy().reshape(pairs, days)

    start = matrix("start")[:, 0]
    supply = matrix("r") + matrix("i")  # issues are negative
    demand = -matrix("d")
    plan = matrix("pin") + matrix("pout")
    unmet = []
    for with_plan in (False, True):
        stock = start.copy()
        lost = 0.0
        for t in range(days):
            stock = stock + supply[:, t] + (plan[:, t] if with_plan else 0.0)
            served = np.minimum(np.maximum(stock, 0.0), demand[:, t])
            lost += float((demand[:, t] - served).sum())
            stock = np.maximum(stock - demand[:, t], 0.0)
        unmet.append(lost)
    return float(demand.sum()), unmet[0], unmet[1]
