"""Wall time and peak RSS of the soft GX suite on a 1M- and a 10M-row demand frame.

Each size runs in a fresh interpreter so peak RSS belongs to that size alone. The staged frame
and the reference history have the same number of rows (sites × SKUs × 10 days each).

    .venv/bin/python benchmarks/expectations_bench.py                 # 1M and 10M, object strings
    .venv/bin/python benchmarks/expectations_bench.py --rows 1000000 --strings category
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

SHAPES = {1_000_000: (100, 1_000), 10_000_000: (200, 5_000)}  # rows -> (sites, SKUs)
DAYS = 10


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def demand(sites: int, skus: int, start: str, seed: int, strings: str) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = sites * skus * DAYS
    site_codes = np.tile(np.repeat(np.arange(sites), skus), DAYS)
    sku_codes = np.tile(np.arange(skus), sites * DAYS)
    site_names = np.array([f"S{i:04d}" for i in range(sites)], dtype=object)
    sku_names = np.array([f"K{i:05d}" for i in range(skus)], dtype=object)
    # SKU means fixed across calls so staged and reference come from the same process.
    mean = 0.2 + 20 * np.random.default_rng(0).random(skus) ** 3  # many slow movers, a few fast
    qty = rng.negative_binomial(1.5, 1.5 / (1.5 + mean[sku_codes])).astype("float64")
    if strings == "category":
        site = pd.Categorical.from_codes(site_codes, site_names)
        sku = pd.Categorical.from_codes(sku_codes, sku_names)
    else:
        site, sku = site_names[site_codes], sku_names[sku_codes]
    dates = pd.date_range(start, periods=DAYS, freq="D").values.repeat(sites * skus)
    assert len(qty) == n
    return pd.DataFrame({"date": dates, "site_id": site, "sku": sku, "qty": qty})


def run_one(rows: int, strings: str) -> None:
    sites, skus = SHAPES[rows]
    started = time.perf_counter()
    staged = demand(sites, skus, "2026-03-11", seed=2, strings=strings)
    reference = demand(sites, skus, "2026-03-01", seed=1, strings=strings)
    generated = time.perf_counter() - started
    rss_data = rss_mb()

    started = time.perf_counter()
    import great_expectations  # noqa: F401  (timed apart from the suite)

    from ballast.io.expectations import run_statistical_suite

    imported = time.perf_counter() - started
    rss_import = rss_mb()

    with tempfile.TemporaryDirectory() as docs:
        started = time.perf_counter()
        report = run_statistical_suite({"demand": staged}, reference, Path(docs), "bench")
        first = time.perf_counter() - started
        peak_first = peak_rss_mb()
        started = time.perf_counter()
        run_statistical_suite({"demand": staged}, reference, Path(docs), "bench-2")
        second = time.perf_counter() - started

    print(
        f"rows={rows:>10,} strings={strings:<8} sites={sites} skus={skus} | "
        f"generate {generated:5.1f} s, data RSS {rss_data:6.0f} MB | "
        f"import GX {imported:4.1f} s (+{rss_import - rss_data:.0f} MB) | "
        f"suite {first:5.1f} s, again {second:5.1f} s | peak RSS {peak_first:6.0f} MB "
        f"(+{peak_first - rss_import:.0f} MB over data+GX) | "
        f"expectations {sum(s.evaluated for s in report.suites)}, failed {len(report.failures)}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, choices=sorted(SHAPES))
    parser.add_argument("--strings", choices=("object", "category"), default="object")
    args = parser.parse_args()
    if args.rows is not None:
        run_one(args.rows, args.strings)
        return
    for rows in sorted(SHAPES):
        cmd = [sys.executable, __file__, "--rows", str(rows), "--strings", args.strings]
        subprocess.run(cmd, check=True)


if __name__ == "__main__":
    main()
