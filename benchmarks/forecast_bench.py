"""Forecast benchmark: fit + predict wall time and peak memory, and the safety-stock comparison.

    .venv/bin/python benchmarks/forecast_bench.py --size S --workers 2          # default network
    .venv/bin/python benchmarks/forecast_bench.py --size L --series 20000 --workers 2   # subset of 250k
    .venv/bin/python benchmarks/forecast_bench.py --size S --compare-ss          # gamma vs z·σ·√L

Peak RSS is this process's maximum resident set plus the largest StatsForecast worker process
(ru_maxrss of the children). With `--series N` on the L network the fit runs on a random
sample of N series and the figures are extrapolated linearly to all series (stated as such).
"""

from __future__ import annotations

import argparse
import logging
import resource
import time
from datetime import timedelta

import numpy as np
import polars as pl
from scipy import stats

from ballast.models import forecast as fc
from ballast.models.policy import load_policy
from ballast.models.sample import SIZES, generate_network
from ballast.models.targets import compute_targets, forecast_horizon, replenishment_lead_times
from ballast.settings import PACKAGED_POLICY
from ballast.tasks.forecast import prepare_series


def peak_rss_mb() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, children


def bench(size: str, workers: int, series: int | None, partition_size: int, seed: int) -> None:
    t0 = time.perf_counter()
    net = generate_network(SIZES[size])
    spec = SIZES[size]
    print(
        f"network {size}: {net['demand'].height:,} demand rows, generated in {time.perf_counter() - t0:.1f} s"
    )
    policy, _ = load_policy(PACKAGED_POLICY)
    as_of = spec.as_of_date
    config = fc.ForecastConfig()
    horizon = forecast_horizon(
        policy, net["sites"], net["lanes"], net["demand"]["site_id"].unique().to_list()
    )

    t0 = time.perf_counter()
    dense, meta = prepare_series(net["demand"], net["items"], as_of, horizon, config)
    t_prep = time.perf_counter() - t0
    del net
    total = meta.height
    print(f"series {total:,}, horizon {horizon} d, prepare (densify, classify, fingerprint) {t_prep:.1f} s")
    print("classes:", dict(meta.group_by("demand_class").len().iter_rows()))
    print("tiers:  ", dict(meta.group_by("tier").len().iter_rows()))
    if series is not None and series < total:
        # Sample within each tier in proportion, so the expensive budget is sampled fairly.
        meta = meta.sample(n=series, seed=seed)
        dense = dense.join(meta.select("site_id", "sku"), on=["site_id", "sku"], how="semi")
    n = meta.height

    backend = fc.LocalBackend(workers=workers)
    t0 = time.perf_counter()
    seconds: dict[str, float] = {}
    rows = 0
    for part in fc.partition_series(meta, fc.default_partitions(n, partition_size)):
        hist = dense.join(part.select("site_id", "sku"), on=["site_id", "sku"], how="semi")
        res = fc.fit_partition(hist, part, horizon, config, backend)
        rows += res.forecasts.height
        for k, v in res.seconds.items():
            seconds[k] = seconds.get(k, 0.0) + v
    t_fit = time.perf_counter() - t0
    own, children = peak_rss_mb()
    print(
        f"fit + predict {n:,} series with {workers} workers: {t_fit:.1f} s "
        f"({t_fit / n * 1000:.2f} ms/series), "
        f"{rows:,} forecast rows"
    )
    print("  by step:", {k: round(v, 1) for k, v in sorted(seconds.items())})
    print(f"  peak RSS: main {own:,.0f} MB, largest worker {children:,.0f} MB")
    if n < total:
        scale = total / n
        print(
            f"  EXTRAPOLATED to {total:,} series (linear in series count, same tier mix): "
            f"fit + predict ~{t_fit * scale / 60:.1f} min; prepare measured {t_prep:.1f} s on all series"
        )


def compare_safety_stock(size: str, cutoffs: int, step: int) -> None:
    """Backtest on intermittent/lumpy series: achieved cycle service and SS units, three rules."""
    net = generate_network(SIZES[size])
    spec = SIZES[size]
    policy, _ = load_policy(PACKAGED_POLICY)
    config = fc.ForecastConfig()
    leads = replenishment_lead_times(net["sites"], net["lanes"])
    demand = net["demand"]
    horizon = forecast_horizon(policy, net["sites"], net["lanes"], demand["site_id"].unique().to_list())
    out = []
    for k in range(cutoffs):
        cut = spec.as_of_date - timedelta(days=horizon + k * step)
        dense, meta = prepare_series(demand, net["items"], cut, horizon, config)
        meta = meta.filter(pl.col("tier") == "intermittent")
        hist = dense.join(meta.select("site_id", "sku"), on=["site_id", "sku"], how="semi")
        res = fc.fit_partition(hist, meta, horizon, config)
        series = meta.select("site_id", "sku", "sku_class")
        sites = net["sites"]
        quant = compute_targets(res.forecasts, series, sites, net["lanes"], policy)
        normal = compute_targets(
            res.forecasts,
            series,
            sites,
            net["lanes"],
            policy.model_copy(update={"safety_stock_method": "normal"}),
        )
        sigma = hist.group_by("site_id", "sku").agg(pl.col("qty").std().alias("sigma"))
        t = quant.join(
            normal.select("site_id", "sku", pl.col("safety_stock").alias("ss_normal")), on=["site_id", "sku"]
        )
        t = t.join(sigma, on=["site_id", "sku"]).join(leads, on="site_id", suffix="_l")
        p = pl.col("lead_time_days") + pl.col("review_days")
        z = pl.col("service_level").map_elements(lambda a: float(stats.norm.ppf(a)), return_dtype=pl.Float64)
        t = t.with_columns(
            (z * pl.col("sigma") * p.sqrt()).alias("ss_classic"), (pl.col("mean_daily") * p).alias("mu_p")
        )
        actual = (
            demand.filter(pl.col("date") >= cut)
            .join(t.select("site_id", "sku", p.alias("P")), on=["site_id", "sku"])
            .filter(pl.col("date") < pl.lit(cut) + pl.duration(days=pl.col("P")))
            .group_by("site_id", "sku")
            .agg(pl.col("qty").sum().alias("actual_p"))
        )
        out.append(
            t.join(actual, on=["site_id", "sku"], how="left").with_columns(pl.col("actual_p").fill_null(0.0))
        )
    all_ = pl.concat(out)
    print(
        f"intermittent/lumpy series × {cutoffs} cutoffs: {all_.height:,} protection periods; "
        f"mean target service level {all_['service_level'].mean():.3f}"
    )
    for name, col in (
        ("gamma quantile (default)", "safety_stock"),
        ("normal on forecast σ", "ss_normal"),
        ("classic z·σ·√(L+R)", "ss_classic"),
    ):
        ok = (all_["actual_p"] <= all_["mu_p"] + all_[col] + 1e-9).to_numpy()
        print(
            f"  {name:26s} achieved cycle service {np.mean(ok):.3f}   "
            f"mean SS {all_[col].mean():7.2f} units   "
            f"total SS {all_[col].sum():,.0f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", default="S", choices=sorted(SIZES))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--series", type=int, default=None, help="fit a random sample of this many series")
    parser.add_argument("--partition-size", type=int, default=5_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--compare-ss", action="store_true")
    parser.add_argument("--cutoffs", type=int, default=4)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.compare_ss:
        compare_safety_stock(args.size, args.cutoffs, 7)
    else:
        bench(args.size, args.workers, args.series, args.partition_size, args.seed)


if __name__ == "__main__":
    main()
