"""Whole planning-cycle benchmark: wall time per step and peak memory, cold and warm.

    .venv/bin/python benchmarks/cycle_bench.py --size S [--size M] [--workdir DIR] [--json out.json]

Each size gets a fresh BALLAST_HOME. `cold`: sample network delivered, first cycle (ingest,
gates, forecast refit, plan). `warm`: a new inventory snapshot 15 minutes later, forecasts
cached. Each cycle runs in its own process (`ballast run`, Prefect's ephemeral API included),
so its peak RSS is its own (os.wait4's rusage of that process; Prefect's ephemeral API server, a
grandchild, is not counted). Prints each cycle as it ends, then a Markdown table; --json keeps it all.
`rest` is the wall time outside the timed steps: interpreter and Prefect start-up, publishing. `solve`
is the ladder's solve time: HiGHS, plus the greedy heuristic when the plan came from that rung.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path


def _cycle(home: Path, now: str) -> dict:
    env = dict(os.environ, BALLAST_HOME=str(home), PREFECT_HOME=str(home / ".prefect"))
    t = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ballast.cli", "run", "--now", now], env=env, stdout=out, stderr=subprocess.STDOUT,
            text=True,
        )
        _, status, usage = os.wait4(proc.pid, 0)  # this cycle's own peak RSS, not the max over earlier children
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait for it again
        wall = time.perf_counter() - t
        if proc.returncode != 0:
            out.seek(0)
            raise RuntimeError(out.read()[-5000:])
    peak = usage.ru_maxrss / 1024
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
        "peak_rss_mb": round(peak),
        "steps_s": solve.get("cycle_seconds", {}),
        "solver": {k: solve.get(k) for k in ("rung", "termination", "build_seconds", "handoff_seconds",
                                              "solve_seconds", "extract_seconds", "columns", "rows", "mip_gap")},
        "orders": row[2],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--table", type=Path, default=None, help="print the table of an earlier --json file and stop")
    ap.add_argument("--size", action="append", default=None)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if args.table:
        _table(json.loads(args.table.read_text()))
        return
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
    _table(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def _table(results: dict) -> None:
    steps = ["ingest", "validate", "read_inputs", "forecast", "coordinate"]
    head = ["size", "cycle", "wall s", *steps, "rest s", "solver rung", "build s", "handoff s", "solve s", "columns",
            "orders", "peak RSS MB"]
    print("\n| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    for size, runs in results.items():
        for name, r in runs.items():
            sv = r["solver"]
            rest = r["wall_s"] - sum(r["steps_s"].values())  # process start, Prefect's API, publish
            cells = [size, name, f"{r['wall_s']:.1f}", *(f"{r['steps_s'].get(k, 0):.1f}" for k in steps), f"{rest:.1f}",
                     str(sv.get("rung")), *(f"{sv.get(k) or 0:.1f}" for k in ("build_seconds", "handoff_seconds",
                                                                              "solve_seconds")),
                     f"{sv.get('columns') or 0:,}", f"{r['orders']:,}", f"{r['peak_rss_mb']:,}"]
            print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
