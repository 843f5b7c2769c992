"""Ingest + validate benchmark: wall time and peak memory on named network sizes.

    .venv/bin/python benchmarks/ingest_bench.py --size S [--size L] [--workdir DIR] [--json out.json]

The sample is written by a separate process first (not timed), then a fresh process ingests and
validates it, so its peak RSS is the pipeline's own.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path


def _write(size: str, home: Path) -> None:
    from ballast.io.sample_writer import write_sample
    from ballast.models.sample import SIZES

    write_sample(SIZES[size], home / "inbox", "mixed")


def _run(home: Path) -> dict:
    from ballast.io.ingest import ingest_inbox
    from ballast.io.staging import validate_pending
    from ballast.io.warehouse import open_warehouse
    from ballast.models.policy import load_policy
    from ballast.settings import Settings

    s = Settings(home=home)
    policy, _ = load_policy(s.policy_path)
    t0 = time.perf_counter()
    with open_warehouse(s.db_path) as con:
        report = ingest_inbox(con, s.inbox_dir, s.archive_dir)
        t1 = time.perf_counter()
        as_of = con.execute("SELECT max(as_of) FROM ingest_files").fetchone()[0]
        gates = validate_pending(con, policy, as_of + timedelta(minutes=5))
        t2 = time.perf_counter()
        rows = con.execute("SELECT sum(rows_read) FROM ingest_files").fetchone()[0]
    return {
        "files": len(report.outcomes),
        "rows": int(rows),
        "ingest_s": round(t1 - t0, 2),
        "validate_s": round(t2 - t1, 2),
        "total_s": round(t2 - t0, 2),
        "rows_per_s": round(rows / (t2 - t0)),
        "outcomes": sorted({g.outcome for g in gates}),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "db_mb": round(s.db_path.stat().st_size / 1e6),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", action="append", default=None, help="S, M or L (repeatable)")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--phase", choices=["write", "run"], help=argparse.SUPPRESS)
    ap.add_argument("--home", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase == "write":
        _write(args.size[0], args.home)
        return
    if args.phase == "run":
        print(json.dumps(_run(args.home)))
        return
    results = {}
    for size in args.size or ["S"]:
        home = Path(tempfile.mkdtemp(prefix=f"ballast-bench-{size}-", dir=args.workdir))
        t = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--phase", "write", "--size", size, "--home", str(home)], check=True)
        write_s = time.perf_counter() - t
        out = subprocess.run(
            [sys.executable, __file__, "--phase", "run", "--home", str(home)], check=True, capture_output=True, text=True
        )
        results[size] = {"write_sample_s": round(write_s, 1), **json.loads(out.stdout.strip().splitlines()[-1])}
        print(f"{size}: {results[size]}", flush=True)
    print()
    print(f"{'size':<5}{'files':>6}{'rows':>13}{'ingest s':>10}{'validate s':>11}{'total s':>9}{'rows/s':>11}{'peak MB':>9}{'db MB':>7}")
    for size, r in results.items():
        print(f"{size:<5}{r['files']:>6}{r['rows']:>13,}{r['ingest_s']:>10}{r['validate_s']:>11}{r['total_s']:>9}"
              f"{r['rows_per_s']:>11,}{r['peak_rss_mb']:>9,}{r['db_mb']:>7,}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
