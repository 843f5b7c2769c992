"""Safety stock, reorder points and order-up-to targets per site×SKU from the demand forecast.

Protection period P = L + R days: L the lead time of the site's usual replenishment lane, R the
policy's review period. Demand over P, D_P, is the sum of the first P forecast days:

    μ_P = Σ_{d<P} mean_d
    V_P = Σ_{d<P} σ_d²,   σ_d = (hi95_d − mean_d) / z_0.975   (or (q95_d − mean_d) / z_0.95 if the
                                                            frame has no hi95; days independent)

At cycle service level α (policy, by site kind and SKU class):

    quantile method (default):  D_P ~ Gamma(shape μ_P²/V_P, scale V_P/μ_P),  Q = F⁻¹(α)
    normal method:              D_P ~ Normal(μ_P, V_P),                      Q = μ_P + z_α √V_P

    safety_stock   = max(Q − μ_P, 0)
    target_stock   = μ_P + safety_stock                  (order-up-to level)
    lt_demand_mean = Σ_{d<L} mean_d                      (expected demand over the lead time)
    reorder_point  = lt_demand_mean + safety_stock

The gamma is non-negative and right-skewed, so for intermittent items (most days zero, a few
large) its α-quantile sits where the lumps are, where a normal with the same mean and variance
puts mass below zero and under-protects at high α; for smooth high-volume items the two agree.
The classic rule z_α · σ_daily · √(L + R) from the spread of past daily demand is kept as
`classic_safety_stock` for comparison.
"""

from __future__ import annotations

import logging
import math
from typing import Final, Literal

import numpy as np
import polars as pl
from scipy import stats

from ballast.models.policy import Policy

logger = logging.getLogger(__name__)

Z95: Final = float(stats.norm.ppf(0.95))
Z975: Final = float(stats.norm.ppf(0.975))
TARGET_COLUMNS: Final = (
    "site_id",
    "sku",
    "lead_time_days",
    "review_days",
    "service_level",
    "mean_daily",
    "lt_demand_mean",
    "safety_stock",
    "reorder_point",
    "target_stock",
)


def replenishment_lead_times(sites: pl.DataFrame, lanes: pl.DataFrame) -> pl.DataFrame:
    """`site_id, lead_time_days`: the shortest inbound lane from a higher echelon (smaller number).

    A site without such a lane (a top-echelon site, or one fed only laterally) takes its shortest
    inbound lane of any kind, and 0 if nothing reaches it.
    """
    ech = sites.select("site_id", "echelon")
    inbound = (
        lanes.select("origin", "destination", "lead_time_days")
        .join(ech.rename({"site_id": "origin", "echelon": "origin_echelon"}), on="origin", how="left")
        .join(ech.rename({"site_id": "destination", "echelon": "dest_echelon"}), on="destination", how="left")
    )
    from_above = (
        inbound.filter(pl.col("origin_echelon") < pl.col("dest_echelon"))
        .group_by("destination")
        .agg(pl.col("lead_time_days").min().alias("from_above"))
    )
    any_inbound = inbound.group_by("destination").agg(pl.col("lead_time_days").min().alias("any_lane"))
    return (
        sites.select("site_id")
        .join(from_above.rename({"destination": "site_id"}), on="site_id", how="left")
        .join(any_inbound.rename({"destination": "site_id"}), on="site_id", how="left")
        .select(
            "site_id",
            pl.coalesce("from_above", "any_lane", pl.lit(0)).cast(pl.Int64).alias("lead_time_days"),
        )
    )


def forecast_horizon(
    policy: Policy, sites: pl.DataFrame, lanes: pl.DataFrame, demand_sites: list[str]
) -> int:
    """H = planning horizon + the longest replenishment lead time of a site with demand.

    Never shorter than that lead time + the review period, so targets can always be computed.
    """
    leads = replenishment_lead_times(sites, lanes)
    if demand_sites:
        leads = leads.filter(pl.col("site_id").is_in(demand_sites))
    max_lead = int(leads["lead_time_days"].max() or 0) if leads.height else 0
    review = policy.forecasting.review_period_days
    return max(policy.horizon_days + max_lead, max_lead + review, 1)


def protection_quantile(
    mu: float, var: float, service_level: float, method: Literal["quantile", "normal"]
) -> float:
    """The α-quantile of demand over the protection period (see the module docstring)."""
    if mu <= 0:
        return 0.0
    if var <= 0:
        return mu
    if method == "normal":
        return mu + float(stats.norm.ppf(service_level)) * math.sqrt(var)
    shape = mu * mu / var
    return float(stats.gamma.ppf(service_level, shape, scale=var / mu))


def classic_safety_stock(sigma_daily: float, lead_days: float, service_level: float) -> float:
    """The textbook z_α · σ · √L (σ: standard deviation of daily demand, L in days)."""
    return float(stats.norm.ppf(service_level)) * sigma_daily * math.sqrt(max(lead_days, 0.0))


def _daily_variance(forecasts: pl.DataFrame) -> pl.Expr:
    """σ_d² from the widest upper quantile the frame has: hi95 (97.5th pct) if present, else q95.

    The farther out, the better for intermittent demand, whose variance sits in rare lumps
    that a 95th percentile can miss entirely.
    """
    if "hi95" in forecasts.columns:
        return ((pl.col("hi95") - pl.col("mean")).clip(lower_bound=0.0) / Z975) ** 2
    return ((pl.col("q95") - pl.col("mean")).clip(lower_bound=0.0) / Z95) ** 2


def compute_targets(
    forecasts: pl.DataFrame,
    series: pl.DataFrame,
    sites: pl.DataFrame,
    lanes: pl.DataFrame,
    policy: Policy,
) -> pl.DataFrame:
    """Targets per site×SKU; `forecasts` as produced by the forecaster (day ≥ as_of first).

    `series` supplies `sku_class` (A/B/C) per site×SKU for the service level; `sites` the kind.
    """
    review = policy.forecasting.review_period_days
    leads = replenishment_lead_times(sites, lanes)
    keys = (
        series.select("site_id", "sku", "sku_class")
        .join(sites.select("site_id", "kind"), on="site_id", how="left")
        .join(leads, on="site_id", how="left")
        .with_columns(pl.col("lead_time_days").fill_null(0))
    )
    levels = {
        (k, c): policy.service_levels.level(k or "", c)
        for k, c in keys.select("kind", "sku_class").unique().iter_rows()
    }
    keys = keys.with_columns(
        pl.struct("kind", "sku_class")
        .map_elements(lambda r: levels[(r["kind"], r["sku_class"])], return_dtype=pl.Float64)
        .alias("service_level")
    )
    ranked = forecasts.sort("site_id", "sku", "day").with_columns(
        pl.int_range(pl.len()).over("site_id", "sku").alias("_d"),
        _daily_variance(forecasts).alias("_var"),
    )
    joined = ranked.join(keys.select("site_id", "sku", "lead_time_days"), on=["site_id", "sku"])
    in_p = pl.col("_d") < pl.col("lead_time_days") + review
    in_l = pl.col("_d") < pl.col("lead_time_days")
    sums = joined.group_by("site_id", "sku").agg(
        pl.col("mean").filter(in_p).sum().alias("mu_p"),
        pl.col("_var").filter(in_p).sum().alias("var_p"),
        pl.col("mean").filter(in_l).sum().alias("lt_demand_mean"),
        in_p.sum().alias("_days_p"),
    )
    out = keys.join(sums, on=["site_id", "sku"], how="inner")
    method = policy.safety_stock_method
    q = [
        protection_quantile(mu, var, sl, method)
        for mu, var, sl in zip(out["mu_p"], out["var_p"], out["service_level"], strict=True)
    ]
    out = out.with_columns(pl.Series("q_p", q, dtype=pl.Float64))
    return (
        out.select(
            "site_id",
            "sku",
            pl.col("lead_time_days").cast(pl.Float64),
            pl.lit(float(review)).alias("review_days"),
            "service_level",
            (pl.col("mu_p") / pl.col("_days_p").clip(lower_bound=1)).alias("mean_daily"),
            pl.col("lt_demand_mean").cast(pl.Float64),
            (pl.col("q_p") - pl.col("mu_p")).clip(lower_bound=0.0).alias("safety_stock"),
        )
        .with_columns(
            (pl.col("lt_demand_mean") + pl.col("safety_stock")).alias("reorder_point"),
            (
                pl.col("mean_daily") * (pl.col("lead_time_days") + pl.col("review_days"))
                + pl.col("safety_stock")
            ).alias("target_stock"),
        )
        .select(TARGET_COLUMNS)
        .sort("site_id", "sku")
    )


def empirical_service(actual_p: np.ndarray, mu_p: np.ndarray, safety_stock: np.ndarray) -> float:
    """Share of protection periods whose actual demand stayed within μ_P + safety stock."""
    if actual_p.size == 0:
        return float("nan")
    return float(np.mean(actual_p <= mu_p + safety_stock + 1e-9))
