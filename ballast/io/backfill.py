"""What backfills did, in the warehouse: `backfill_runs` (one row per invocation) and
`backfill_steps` (one row per as-of handled: planned, skipped, blocked or failed, with why).

The backfilled plans themselves are ordinary rows of `plans` with `mode = 'backfill'`; they are
never released and never reach the outbox (`plans.publish` releases live plans only). Whether an
as-of is done is read from `plans` (same as-of, policy, code and input fingerprints), so a killed
backfill resumes from what was committed (a step row follows its plan's commit; a kill between
the two leaves the plan, which the rerun finds and records as skipped).
"""

from __future__ import annotations

import json
from datetime import datetime

import duckdb
import polars as pl

from ballast.io.warehouse import one, query_frame

DDL = (
    """CREATE TABLE IF NOT EXISTS backfill_runs (
        backfill_id VARCHAR PRIMARY KEY,
        started_at TIMESTAMPTZ NOT NULL,
        finished_at TIMESTAMPTZ,
        range_start TIMESTAMPTZ NOT NULL,
        range_end TIMESTAMPTZ NOT NULL,
        every VARCHAR NOT NULL,
        policy VARCHAR,                   -- the --policy file of a what-if, else NULL (policy in force)
        force BOOLEAN NOT NULL,
        runner VARCHAR NOT NULL,          -- serial | dask:<address or local:N>
        summary VARCHAR                   -- JSON: counts and seconds, written at the end
    )""",
    """CREATE TABLE IF NOT EXISTS backfill_steps (
        backfill_id VARCHAR NOT NULL,
        as_of TIMESTAMPTZ NOT NULL,
        status VARCHAR NOT NULL,          -- planned | skipped | blocked | failed
        plan_id VARCHAR,
        reason VARCHAR,
        seconds DOUBLE NOT NULL,
        recorded_at TIMESTAMPTZ NOT NULL
    )""",
)


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    for stmt in DDL:
        con.execute(stmt)


def start_run(
    con: duckdb.DuckDBPyConnection, backfill_id: str, now: datetime, start: datetime, end: datetime, every: str,
    policy: str | None, force: bool, runner: str,
) -> None:
    ensure_tables(con)
    con.execute(
        "INSERT INTO backfill_runs VALUES (?, ?, NULL, ?, ?, ?, ?, ?, ?, NULL)",
        [backfill_id, now, start, end, every, policy, force, runner],
    )


def finish_run(con: duckdb.DuckDBPyConnection, backfill_id: str, now: datetime, summary: dict) -> None:
    con.execute(
        "UPDATE backfill_runs SET finished_at = ?, summary = ? WHERE backfill_id = ?",
        [now, json.dumps(summary, default=str), backfill_id],
    )


def record_step(
    con: duckdb.DuckDBPyConnection, backfill_id: str, as_of: datetime, status: str, plan_id: str | None,
    reason: str | None, seconds: float, now: datetime,
) -> None:
    ensure_tables(con)
    con.execute(
        "INSERT INTO backfill_steps VALUES (?, ?, ?, ?, ?, ?, ?)",
        [backfill_id, as_of, status, plan_id, reason, seconds, now],
    )


def backfilled_plans(
    con: duckdb.DuckDBPyConnection, as_of: datetime, policy_sha256: str, code_version: str
) -> list[tuple[str, dict]]:
    """(plan id, input fingerprints) of backfilled plans at `as_of` with this policy and code version."""
    rows = con.execute(
        """SELECT plan_id, inputs FROM plans WHERE mode = 'backfill' AND as_of = ? AND policy_sha256 = ?
             AND code_version = ? ORDER BY created_at""",
        [as_of, policy_sha256, code_version],
    ).fetchall()
    return [(r[0], json.loads(r[1])) for r in rows]


def plan_ids_like(con: duckdb.DuckDBPyConnection, base: str) -> set[str]:
    rows = con.execute("SELECT plan_id FROM plans WHERE plan_id = ? OR starts_with(plan_id, ?)", [base, base + "-r"])
    return {r[0] for r in rows.fetchall()}


def live_plan_at(con: duckdb.DuckDBPyConnection, as_of: datetime) -> str | None:
    """The live plan published for exactly this as-of (the newest if several), if any."""
    row = one(
        con, "SELECT plan_id FROM plans WHERE mode = 'live' AND as_of = ? ORDER BY created_at DESC LIMIT 1", [as_of]
    )
    return None if row is None else row[0]


def steps(con: duckdb.DuckDBPyConnection, backfill_id: str) -> pl.DataFrame:
    ensure_tables(con)
    return query_frame(
        con,
        "SELECT as_of, status, plan_id, reason, seconds FROM backfill_steps WHERE backfill_id = ? ORDER BY as_of",
        [backfill_id],
    )


def kpi_history(con: duckdb.DuckDBPyConnection, backfill_id: str) -> pl.DataFrame:
    """One row per plan this backfill planned or found already planned (not other backfills' what-ifs), KPIs unpacked."""
    ensure_tables(con)
    rows = con.execute(
        """SELECT p.as_of, p.plan_id, p.kpis, p.solve FROM plans p
           WHERE p.plan_id IN (SELECT plan_id FROM backfill_steps WHERE backfill_id = ? AND plan_id IS NOT NULL)
           ORDER BY p.as_of""",
        [backfill_id],
    ).fetchall()
    records = []
    for as_of, plan_id, kpis, solve in rows:
        k = json.loads(kpis)
        s = json.loads(solve)
        records.append({"as_of": as_of, "plan_id": plan_id, "rung": s.get("rung"),
                        **{key: float(v) for key, v in k.items() if isinstance(v, int | float)}})
    return pl.DataFrame(records) if records else pl.DataFrame(schema={"as_of": pl.Datetime("us", "UTC"),
                                                                      "plan_id": pl.String, "rung": pl.String})
