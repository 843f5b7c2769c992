"""Benchmark backfills: cycles per minute at 1-hour steps, serial and on a local Dask cluster.

Usage (from the repository root):

    .venv/bin/python benchmarks/backfill_bench.py --network tiny --hours 6 [--dask --workers 2]
    .venv/bin/python benchmarks/backfill_bench.py --network S --hours 168 --dask --workers 2   # the issue's goal

It builds a history in a temporary BALLAST_HOME with `tests/history.py` (the sample network at T0,
then newer inventory / in-transit / PO snapshots every hour and each closed day's demand, each
ingested at its own time), warms up with a backfill of T0 alone (this fits the forecasts as of T0
and pays numba's compile time once), then times a backfill of T0+1h .. T0+hours serially and, with
--dask, the same range again forced through the Dask runner. It prints wall time, cycles per
minute, the rung each solve ended on, and peak RSS of this process and of its reaped children
(the Dask workers). Forecast refits at day boundaries are part of the timed runs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _peak_mb() -> tuple[float, float]:
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--network", choices=["tiny", "S"], default="tiny")
    parser.add_argument("--hours", type=int, default=6, help="timed as-ofs after T0, at 1-hour steps")
    parser.add_argument("--dask", action="store_true", help="also run the range on a local Dask cluster")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--home", type=Path, default=None, help="keep the warehouse here (default: a temp dir)")
    args = parser.parse_args()

    home = args.home or Path(tempfile.mkdtemp(prefix="ballast-backfill-bench-"))
    home.mkdir(parents=True, exist_ok=True)
    os.environ["BALLAST_HOME"] = str(home)
    os.environ.setdefault("PREFECT_HOME", str(home / ".prefect"))
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "300")

    from ballast.flows.backfill import BackfillParams, backfill
    from ballast.models.sample import SIZES
    from ballast.settings import Settings
    from tests.history import T0, TINY, build_history

    spec = replace(TINY, as_of=T0) if args.network == "tiny" else replace(SIZES["S"], as_of=T0)
    end = T0 + timedelta(hours=args.hours)
    settings = Settings()
    t = time.perf_counter()
    build_history(settings, T0, end, timedelta(hours=1), spec)
    print(f"history: {args.network} network, T0 {T0:%Y-%m-%dT%H:%MZ} + {args.hours} h, built in "
          f"{time.perf_counter() - t:.1f} s in {home}", flush=True)

    results = {}
    t = time.perf_counter()
    warm = backfill(BackfillParams(start=T0, end=T0, every="1h", report=False))
    results["warm-up (T0, forecast fit)"] = {"seconds": round(time.perf_counter() - t, 1), "planned": warm.planned}
    print(f"warm-up: {warm.lines()[0]}", flush=True)

    runs = [("serial", BackfillParams(start=T0 + timedelta(hours=1), end=end, every="1h"))]
    if args.dask:
        runs.append((f"dask x{args.workers}", BackfillParams(start=T0 + timedelta(hours=1), end=end, every="1h",
                                                           force=True, dask=True, workers=args.workers)))
    for name, params in runs:
        t = time.perf_counter()
        summary = backfill(params)
        wall = time.perf_counter() - t
        self_mb, children_mb = _peak_mb()
        results[name] = {
            "as_ofs": summary.total, "planned": summary.planned, "failed": summary.failed,
            "wall_seconds": round(wall, 1), "cycles_per_minute": round(summary.planned / (wall / 60), 2),
            "peak_rss_mb_self": round(self_mb), "peak_rss_mb_children": round(children_mb),
        }
        print(f"{name}: {summary.lines()[0]}", flush=True)
        for line in summary.lines()[1:]:
            print(line)

    import duckdb

    con = duckdb.connect(str(settings.db_path), read_only=True)
    rungs = con.execute("SELECT json_extract_string(solve, '$.rung') AS rung, count(*) FROM plans "
                        "WHERE mode = 'backfill' GROUP BY ALL ORDER BY rung").fetchall()
    fits = con.execute("SELECT count(*) FROM fc_runs WHERE origin = 'backfill'").fetchall()[0][0]
    con.close()
    results["rungs"] = dict(rungs)
    results["forecast_fits"] = fits
    print(json.dumps(results, indent=2), flush=True)
    # A normal exit (not os._exit): Prefect stops its ephemeral API server at interpreter exit.


if __name__ == "__main__":
    main()
