"""Whole planning-cycle benchmark: wall time per step and peak memory, cold and warm.

    .venv/bin/python benchmarks/cycle_bench.py --size S [--size M] [--workdir DIR] [--json out.json]

Each size gets a fresh BALLAST_HOME. `cold`: sample network delivered, first cycle (ingest,
gates, forecast refit, plan). `warm`: a new inventory snapshot 15 minutes later, forecasts
cached. Each cycle runs in its own process (`ballast run`, Prefect's ephemeral API included),
so its peak RSS is its own.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path


def _cycle(home: Path, now: str) -> dict:
    env = dict(os.environ, BALLAST_HOME=str(home), PREFECT_HOME=str(home / ".prefect"))
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "ballast.cli", "run", "--now", now], env=env, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(proc.stdout[-3000:] + proc.stderr[-3000:])
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    import duckdb

    con = duckdb.connect(str(home / "data" / "ballast.duckdb"), read_only=True)
    row = con.execute(
        "SELECT plan_id, solve, (SELECT count(*) FROM transfer_orders o WHERE o.plan_id = p.plan_id) "
        "FROM plans p ORDER BY created_at DESC LIMIT 1"
    ).fetchall()[0]
    con.close()
    solve = json.loads(row[1])
    return {
        "wall_s": round(wall, 1),
        "peak_rss_mb_max_so_far": round(peak),
        "steps_s": solve.get("cycle_seconds", {}),
        "solver": {k: solve.get(k) for k in ("rung", "termination", "build_seconds", "handoff_seconds",
                                              "solve_seconds", "extract_seconds", "columns", "rows", "mip_gap")},
        "orders": row[2],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", action="append", default=None)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    from ballast.io.landing import land_frame
    from ballast.io.sample_writer import write_sample
    from ballast.models.sample import SIZES, generate_network

    results = {}
    for size in args.size or ["S"]:
        home = Path(tempfile.mkdtemp(prefix=f"ballast-cycle-{size}-", dir=args.workdir))
        spec = SIZES[size]
        write_sample(spec, home / "inbox", "mixed")
        now = spec.as_of + timedelta(minutes=5)
        cold = _cycle(home, now.strftime("%Y-%m-%dT%H:%M:%SZ"))
        print(f"{size} cold: {cold}", flush=True)
        later = spec.as_of + timedelta(minutes=15)
        inventory = generate_network(spec)["inventory"]
        import polars as pl

        land_frame(inventory.with_columns(pl.lit(later).alias("as_of")), home / "inbox", "inventory", later)
        warm = _cycle(home, (later + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ"))
        print(f"{size} warm: {warm}", flush=True)
        results[size] = {"cold": cold, "warm": warm}
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
