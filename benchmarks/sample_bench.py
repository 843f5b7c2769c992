"""Wall time and peak memory of `ballast sample`: generate a network and land it in a temp inbox.

Usage: .venv/bin/python benchmarks/sample_bench.py [S] [M] [L]   (default: S L)

Each size runs in its own child process, so its peak RSS is its own.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run_one(size: str) -> None:
    from ballast.io.sample_writer import land_network, resolve_formats
    from ballast.models.sample import SIZES, generate_network

    spec = SIZES[size]
    with tempfile.TemporaryDirectory(prefix=f"ballast-sample-{size}-") as tmp:
        t0 = time.perf_counter()
        frames = generate_network(spec)
        t1 = time.perf_counter()
        paths = land_network(frames, Path(tmp), spec, resolve_formats("mixed"))
        t2 = time.perf_counter()
        peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
        print(
            f"size {size}: {spec.own_sites} own sites x {spec.skus:,} SKUs x {spec.history_days} days"
            f" | generate {t1 - t0:.1f} s, write {t2 - t1:.1f} s, total {t2 - t0:.1f} s"
            f" | peak RSS {peak_gib:.2f} GiB"
        )
        for path in paths:
            extract = path.parent.name
            mib = path.stat().st_size / 2**20
            print(f"  {extract:<16} {frames[extract].height:>12,} rows  {mib:>9.1f} MiB  {path.name}")


def main(sizes: list[str]) -> None:
    for size in sizes:
        subprocess.run([sys.executable, __file__, "--one", size], check=True)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--one":
        run_one(sys.argv[2])
    else:
        main(sys.argv[1:] or ["S", "L"])
