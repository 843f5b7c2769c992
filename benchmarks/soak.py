"""Soak: many planning cycles in one process, one every simulated 15 minutes.

    .venv/bin/python benchmarks/soak.py --cycles 96 [--skus 20] [--workdir DIR] [--json out.json]

96 cycles are a simulated day. A small generated network is delivered once; before each cycle a
new WMS snapshot lands 15 minutes after the previous one (stock drifts, so every cycle plans and
publishes). Each cycle runs the real flow (Prefect's API, DuckDB file, MLflow store, HiGHS).
Printed per cycle: wall time, resident memory (RSS) after the cycle, the plan and its orders.
At the end the warehouse is checked: no duplicate key in any plan mart, one audit entry and one
cycle record per cycle, the audit chain intact. `tests/faults/test_soak.py` runs a short variant.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import psutil

START = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
# (table, key columns): the keys every plan mart must hold once
MART_KEYS = (
    ("plans", "plan_id"),
    ("transfer_orders", "plan_id, order_id"),
    ("released_orders", "order_id"),
    ("outbox_deliveries", "batch_id"),
    ("audit_log", "seq"),
    ("cycle_runs", "run_id"),
)


@dataclass
class CycleStat:
    cycle: int
    as_of: str
    seconds: float
    rss_mb: float
    plan_id: str
    created: bool
    orders: int
    released: int


@dataclass
class SoakResult:
    cycles: list[CycleStat] = field(default_factory=list)
    duplicates: dict[str, int] = field(default_factory=dict)
    audit_entries: int = 0
    cycle_runs: int = 0
    plans: int = 0
    audit_problems: list[str] = field(default_factory=list)

    def rss_growth_mb(self, warmup: int) -> float:
        """RSS after the last cycle minus RSS after cycle `warmup` (first cycles load libraries and caches)."""
        return self.cycles[-1].rss_mb - self.cycles[warmup - 1].rss_mb


def deliver_snapshot(inbox: Path, base: pl.DataFrame, step: int) -> datetime:
    """The WMS snapshot `step` quarter-hours after START: every on-hand figure up by `step` units."""
    from ballast.io.landing import land_frame

    as_of = START + timedelta(minutes=15 * step)
    frame = base.with_columns(pl.lit(as_of).cast(pl.Datetime("us", "UTC")).alias("as_of"), pl.col("on_hand") + step)
    land_frame(frame, inbox, "inventory", as_of)
    return as_of


def check(db: Path) -> dict:
    from ballast.io.plans import verify_audit
    from ballast.io.warehouse import open_warehouse

    with open_warehouse(db, read_only=True) as con:
        dupes = {
            table: con.execute(  # names from MART_KEYS above, not data
                f"SELECT count(*) FROM (SELECT {keys} FROM {table} GROUP BY {keys} HAVING count(*) > 1)"  # noqa: S608
            ).fetchall()[0][0]
            for table, keys in MART_KEYS
        }
        count = {
            t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in ("audit_log", "cycle_runs", "plans")
        }  # noqa: S608
        problems = verify_audit(con)
    return {
        "duplicates": dupes,
        "audit_entries": count["audit_log"],
        "cycle_runs": count["cycle_runs"],
        "plans": count["plans"],
        "audit_problems": problems,
    }


def soak(home: Path, cycles: int, skus: int = 20, history_days: int = 60, echo=print) -> SoakResult:  # noqa: T201
    """Run `cycles` planning cycles in this process on a fresh network under `home`."""
    os.environ["BALLAST_HOME"] = str(home)
    from ballast.flows.planning_cycle import CycleParams, planning_cycle
    from ballast.io.sample_writer import write_sample
    from ballast.models.sample import SIZES, generate_network
    from ballast.settings import Settings

    settings = Settings()
    spec = replace(SIZES["S"], hubs=5, dcs=2, plants=1, skus=skus, history_days=history_days, as_of=START)
    write_sample(spec, settings.inbox_dir, fmt="csv")
    base = generate_network(spec)["inventory"]
    proc = psutil.Process()
    result = SoakResult()
    echo(f"{'cycle':>5} {'as of':<17} {'seconds':>8} {'RSS MB':>8}  plan              orders released")
    for i in range(cycles):
        as_of = START if i == 0 else deliver_snapshot(settings.inbox_dir, base, i)
        t = time.perf_counter()
        outcome = planning_cycle(CycleParams(as_of=as_of + timedelta(minutes=5)))
        stat = CycleStat(
            i + 1,
            f"{as_of:%Y-%m-%d %H:%M}",
            round(time.perf_counter() - t, 2),
            round(proc.memory_info().rss / 2**20, 1),
            outcome.plan_id,
            outcome.created,
            outcome.orders,
            outcome.released,
        )
        result.cycles.append(stat)
        echo(
            f"{stat.cycle:>5} {stat.as_of:<17} {stat.seconds:>8.2f} {stat.rss_mb:>8.1f}  {stat.plan_id}  "
            f"{stat.orders:>6} {stat.released:>8}"
        )
    for key, value in check(settings.db_path).items():
        setattr(result, key, value)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=96)
    parser.add_argument("--skus", type=int, default=20)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")  # as `ballast run` does
    home = args.workdir or Path(tempfile.mkdtemp(prefix="ballast-soak-"))
    home.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PREFECT_HOME", str(home / ".prefect"))
    result = soak(home, args.cycles, args.skus, echo=lambda line: print(line, flush=True))  # noqa: T201
    warm = min(5, len(result.cycles))
    print(f"duplicate keys: {result.duplicates}")  # noqa: T201
    print(
        f"plans {result.plans}, audit entries {result.audit_entries}, cycle records {result.cycle_runs}, "  # noqa: T201
        f"audit chain {'intact' if not result.audit_problems else result.audit_problems}"
    )
    secs = [c.seconds for c in result.cycles[1:]] or [0.0]
    print(
        f"RSS growth after cycle {warm}: {result.rss_growth_mb(warm):+.1f} MB; "  # noqa: T201
        f"warm cycle median {sorted(secs)[len(secs) // 2]:.2f} s, max {max(secs):.2f} s"
    )
    if args.json:
        args.json.write_text(json.dumps(asdict(result), indent=1))
    ok = (
        not any(result.duplicates.values())
        and not result.audit_problems
        and result.audit_entries == result.cycle_runs == len(result.cycles)
    )
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
