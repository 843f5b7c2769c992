"""Demand history as forecastable series: densified daily panels, demand classes and ABC classes.

Demand classes follow Syntetos, Boylan & Croston (2005): for the non-zero demands of a series

* ADI  = days in the window / days with demand (the average inter-demand interval),
* CV²  = (population std / mean)² of the non-zero demand sizes,

and the cut-offs ADI = 1.32, CV² = 0.49 split the plane into smooth (frequent, regular sizes),
erratic (frequent, irregular sizes), intermittent (rare, regular sizes) and lumpy (rare,
irregular sizes). A series with less history than `min_history_days`, or without two demands
to measure, is `new`: there is nothing yet to classify.

SKU classes A/B/C rank SKUs by network-wide demand value (qty × unit cost over the window): the
SKUs that make the first 80% of value are A, the next 15% B, the rest C.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import date, timedelta
from typing import Final, Literal

import numpy as np
import polars as pl

logger = logging.getLogger(__name__)

ADI_CUTOFF: Final = 1.32
CV2_CUTOFF: Final = 0.49
DemandClass = Literal["smooth", "erratic", "intermittent", "lumpy", "new"]
DEMAND_CLASSES: Final[tuple[str, ...]] = ("smooth", "erratic", "intermittent", "lumpy", "new")
SERIES_KEY: Final = ("site_id", "sku")


def classify(adi: float, cv2: float) -> DemandClass:
    """The Syntetos-Boylan class of one series from its ADI and CV²."""
    if adi < ADI_CUTOFF:
        return "smooth" if cv2 < CV2_CUTOFF else "erratic"
    return "intermittent" if cv2 < CV2_CUTOFF else "lumpy"


def densify(demand: pl.DataFrame, as_of: date, window_days: int) -> pl.DataFrame:
    """One row per series and day from its first record (at most `window_days` back) to `as_of` − 1.

    Missing days are zero demand. Days on or after `as_of` are dropped: that day is not complete.
    Returns `site_id, sku, date, qty` sorted by series and date.
    """
    last = as_of - timedelta(days=1)
    start_floor = as_of - timedelta(days=window_days)
    recent = demand.filter(pl.col("date") < as_of)
    spans = recent.group_by(SERIES_KEY).agg(pl.col("date").min().alias("first"))
    spans = spans.with_columns(
        pl.max_horizontal(pl.col("first"), pl.lit(start_floor)).alias("first"), pl.lit(last).alias("last")
    )
    grid = spans.select(*SERIES_KEY, pl.date_ranges("first", "last", interval="1d").alias("date")).explode(
        "date"
    )
    daily = (
        recent.filter(pl.col("date") >= start_floor).group_by(*SERIES_KEY, "date").agg(pl.col("qty").sum())
    )
    return (
        grid.join(daily, on=[*SERIES_KEY, "date"], how="left")
        .with_columns(pl.col("qty").fill_null(0.0).cast(pl.Float64))
        .drop_nulls("date")
        .sort(*SERIES_KEY, "date")
    )


def series_stats(dense: pl.DataFrame, min_history_days: int) -> pl.DataFrame:
    """Per series: `n_days, n_demand_days, total_qty, adi, cv2, demand_class` from a dense panel."""
    nz = pl.col("qty").filter(pl.col("qty") > 0)
    stats = dense.group_by(SERIES_KEY, maintain_order=True).agg(
        pl.len().alias("n_days"),
        (pl.col("qty") > 0).sum().alias("n_demand_days"),
        pl.col("qty").sum().alias("total_qty"),
        nz.mean().alias("size_mean"),
        nz.std(ddof=0).alias("size_std"),
    )
    stats = stats.with_columns(
        pl.when(pl.col("n_demand_days") > 0)
        .then(pl.col("n_days") / pl.col("n_demand_days"))
        .otherwise(float("inf"))
        .alias("adi"),
        pl.when(pl.col("size_mean") > 0)
        .then((pl.col("size_std") / pl.col("size_mean")) ** 2)
        .otherwise(0.0)
        .alias("cv2"),
    )
    is_new = (pl.col("n_days") < min_history_days) | (pl.col("n_demand_days") < 2)
    frequent = pl.col("adi") < ADI_CUTOFF
    regular = pl.col("cv2") < CV2_CUTOFF
    demand_class = (
        pl.when(is_new)
        .then(pl.lit("new"))
        .when(frequent & regular)
        .then(pl.lit("smooth"))
        .when(frequent)
        .then(pl.lit("erratic"))
        .when(regular)
        .then(pl.lit("intermittent"))
        .otherwise(pl.lit("lumpy"))
    )
    return stats.with_columns(demand_class.alias("demand_class")).drop("size_mean", "size_std")


def abc_classes(
    dense: pl.DataFrame, items: pl.DataFrame, a_share: float = 0.80, b_share: float = 0.95
) -> pl.DataFrame:
    """`sku, demand_value, sku_class` with A/B/C by cumulative share of network demand value.

    A SKU missing from `items` is valued at unit cost 0 and so ranks as C.
    """
    value = (
        dense.group_by("sku")
        .agg(pl.col("qty").sum())
        .join(items.select("sku", "unit_cost"), on="sku", how="left")
        .with_columns((pl.col("qty") * pl.col("unit_cost").fill_null(0.0)).alias("demand_value"))
        .sort(["demand_value", "sku"], descending=[True, False])
    )
    total = float(value["demand_value"].sum())
    # Share of value *before* this SKU: the SKU that crosses 80% is still A.
    before = (value["demand_value"].cum_sum() - value["demand_value"]) / total if total > 0 else None
    if before is None:
        return value.select("sku", "demand_value", pl.lit("C").alias("sku_class"))
    return value.with_columns(before.alias("_before")).select(
        "sku",
        "demand_value",
        pl.when(pl.col("demand_value") <= 0)
        .then(pl.lit("C"))
        .when(pl.col("_before") < a_share)
        .then(pl.lit("A"))
        .when(pl.col("_before") < b_share)
        .then(pl.lit("B"))
        .otherwise(pl.lit("C"))
        .alias("sku_class"),
    )


def fingerprints(dense: pl.DataFrame) -> pl.DataFrame:
    """`site_id, sku, fingerprint`: a stable digest of each series' dense history and its dates.

    blake2b over the raw float64 bytes plus first and last date, so the key survives library
    upgrades (polars' own hash is not stable across versions) and changes if any day changes.
    """
    keys = dense.group_by(SERIES_KEY, maintain_order=True).agg(
        pl.len().alias("n"), pl.col("date").first().alias("first"), pl.col("date").last().alias("last")
    )
    values = dense["qty"].to_numpy().astype(np.float64, copy=False)
    ends = np.cumsum(keys["n"].to_numpy())
    starts = ends - keys["n"].to_numpy()
    firsts = keys["first"].to_list()
    lasts = keys["last"].to_list()
    digests = []
    for s, e, f, last in zip(starts, ends, firsts, lasts, strict=True):
        h = hashlib.blake2b(values[s:e].tobytes(), digest_size=16)
        h.update(f"{f}|{last}".encode())
        digests.append(h.hexdigest())
    return keys.select(*SERIES_KEY).with_columns(pl.Series("fingerprint", digests, dtype=pl.String))
