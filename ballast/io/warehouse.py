"""The DuckDB warehouse: one file, append-only history, layered raw → stg → marts.

* `ingest_files` — one row per delivered file (name, sha256, size, rows, as_of, outcome).
* `raw_<extract>` — every landed row as text, exactly as delivered, with its file and row number;
  columns outside the contract are kept as JSON in `_extra`.
* `quarantine` — every rejected cell or row with file, row, column, rule and value.
* `gate_results` — the gate outcome of each file (pass / pass_with_quarantine / block).
* `stg_<extract>` — typed, validated rows; they count only for files whose gate result passed
  (every reader joins on `gate_results`), so a file is staged in chunks and still all-or-nothing.

Plan marts (`plans`, `transfer_orders`, `decisions`, `released_orders`, `outbox_deliveries`,
`audit_log`, `cycle_runs`) are described here too and written by `ballast.io.plans`.

Nothing is updated or deleted: the state known at any past time is a query over these tables
(`snapshot_as_of`, `demand_history`), which is what backfills rely on.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import duckdb
import polars as pl

from ballast.models.contract import EXTRACTS, Extract, Kind

log = logging.getLogger(__name__)

DUCK_TYPES = {
    Kind.STR: "VARCHAR",
    Kind.INT: "BIGINT",
    Kind.FLOAT: "DOUBLE",
    Kind.DATE: "DATE",
    Kind.TIMESTAMP: "TIMESTAMPTZ",
}

PASSING = ("pass", "pass_with_quarantine")
DEFAULT_MEMORY_LIMIT = os.environ.get("BALLAST_DUCKDB_MEMORY_LIMIT", "2GB")


class WarehouseBusy(RuntimeError):
    """Another process holds the DuckDB file; raised after the retries are spent."""


def _ddl(extract: Extract) -> list[str]:
    raw_cols = ", ".join(f'"{c.name}" VARCHAR' for c in extract.columns)
    stg_cols = ", ".join(f'"{c.name}" {DUCK_TYPES[c.kind]}' for c in extract.columns)
    return [
        f"CREATE TABLE IF NOT EXISTS raw_{extract.name} "
        f"(_file_id BIGINT NOT NULL, _row BIGINT NOT NULL, _line BIGINT, {raw_cols}, _extra VARCHAR)",
        f"CREATE TABLE IF NOT EXISTS stg_{extract.name} "
        f"(_file_id BIGINT NOT NULL, _row BIGINT NOT NULL, _as_of TIMESTAMPTZ NOT NULL, {stg_cols})",
    ]


SCHEMA_DDL: tuple[str, ...] = (
    "CREATE SEQUENCE IF NOT EXISTS file_id_seq START 1",
    """CREATE TABLE IF NOT EXISTS ingest_files (
        file_id BIGINT PRIMARY KEY,
        extract VARCHAR NOT NULL,
        file_name VARCHAR NOT NULL,
        sha256 VARCHAR NOT NULL,
        bytes BIGINT NOT NULL,
        fmt VARCHAR NOT NULL,
        as_of TIMESTAMPTZ NOT NULL,
        rows_declared BIGINT,
        rows_read BIGINT NOT NULL,
        rows_rejected BIGINT NOT NULL,
        extra_columns VARCHAR,
        status VARCHAR NOT NULL,
        reason VARCHAR,
        ingested_at TIMESTAMPTZ NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS quarantine (
        file_id BIGINT NOT NULL,
        extract VARCHAR NOT NULL,
        file_name VARCHAR NOT NULL,
        "row" BIGINT,
        line BIGINT,
        "column" VARCHAR,
        rule VARCHAR NOT NULL,
        value VARCHAR,
        stage VARCHAR NOT NULL,
        detected_at TIMESTAMPTZ NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS gate_results (
        file_id BIGINT PRIMARY KEY,
        extract VARCHAR NOT NULL,
        file_name VARCHAR NOT NULL,
        as_of TIMESTAMPTZ NOT NULL,
        rows_in BIGINT NOT NULL,
        rows_staged BIGINT NOT NULL,
        rows_quarantined BIGINT NOT NULL,
        outcome VARCHAR NOT NULL,
        reasons VARCHAR NOT NULL,
        validated_at TIMESTAMPTZ NOT NULL
    )""",
    *[stmt for e in EXTRACTS.values() for stmt in _ddl(e)],
)


PLAN_DDL = (
    """CREATE TABLE IF NOT EXISTS plans (
        plan_id VARCHAR PRIMARY KEY,
        as_of TIMESTAMPTZ NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        mode VARCHAR NOT NULL,              -- live | backfill | shadow
        policy_version VARCHAR NOT NULL,
        policy_sha256 VARCHAR NOT NULL,
        code_version VARCHAR NOT NULL,
        forecast_run_id VARCHAR,
        forecaster VARCHAR,
        inputs VARCHAR NOT NULL,            -- JSON: extract -> {file, sha256, as_of}
        solve VARCHAR NOT NULL,             -- JSON: rung, status, gap, times, objective
        kpis VARCHAR NOT NULL,              -- JSON
        degraded VARCHAR NOT NULL,          -- JSON list of budget breaches and safe defaults taken
        mlflow_run_id VARCHAR,
        report_path VARCHAR,
        previous_plan_id VARCHAR
    )""",
    """CREATE TABLE IF NOT EXISTS transfer_orders (
        order_id VARCHAR NOT NULL,
        plan_id VARCHAR NOT NULL,
        kind VARCHAR NOT NULL,
        origin VARCHAR NOT NULL,
        destination VARCHAR NOT NULL,
        mode VARCHAR NOT NULL,
        sku VARCHAR NOT NULL,
        ship_date DATE NOT NULL,
        arrive_date DATE NOT NULL,
        qty DOUBLE NOT NULL,
        unit_cost DOUBLE,
        transport_cost DOUBLE,
        value DOUBLE,
        round INTEGER,
        in_freeze_window BOOLEAN NOT NULL,
        approval_status VARCHAR NOT NULL,
        approval_reasons VARCHAR NOT NULL,
        explanation VARCHAR,
        reason VARCHAR,
        PRIMARY KEY (plan_id, order_id)
    )""",
    """CREATE TABLE IF NOT EXISTS decisions (
        plan_id VARCHAR NOT NULL,
        order_id VARCHAR NOT NULL,
        decision VARCHAR NOT NULL,
        decided_by VARCHAR NOT NULL,
        reason VARCHAR,
        decided_at TIMESTAMPTZ NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS released_orders (
        order_id VARCHAR PRIMARY KEY,       -- released once, ever
        plan_id VARCHAR NOT NULL,
        batch_id VARCHAR NOT NULL,
        released_at TIMESTAMPTZ NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS outbox_deliveries (
        batch_id VARCHAR PRIMARY KEY,
        files VARCHAR NOT NULL,
        delivered_at TIMESTAMPTZ NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS audit_log (
        seq BIGINT PRIMARY KEY,
        "at" TIMESTAMPTZ NOT NULL,
        actor VARCHAR NOT NULL,
        action VARCHAR NOT NULL,
        subject VARCHAR NOT NULL,
        payload VARCHAR NOT NULL,
        prev_hash VARCHAR NOT NULL,
        hash VARCHAR NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS cycle_runs (
        run_id VARCHAR NOT NULL,
        as_of TIMESTAMPTZ NOT NULL,
        started_at TIMESTAMPTZ NOT NULL,
        finished_at TIMESTAMPTZ NOT NULL,
        outcome VARCHAR NOT NULL,           -- published | unchanged | blocked | failed
        plan_id VARCHAR,
        reason VARCHAR
    )""",
)


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create every warehouse table that does not exist yet (idempotent)."""
    for stmt in (*SCHEMA_DDL, *PLAN_DDL):
        con.execute(stmt)


def _is_lock_error(exc: duckdb.Error) -> bool:
    text = str(exc).lower()
    return "lock" in text or "conflicting" in text or "being used" in text


@contextmanager
def open_warehouse(
    path: Path,
    *,
    read_only: bool = False,
    wait_seconds: float | None = None,
    poll_seconds: float = 0.5,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the DuckDB file, waiting up to `wait_seconds` while another process holds it.

    DuckDB allows one writing process per file and fails a second opener at once, so we retry
    and then fail with a message that says what to do instead of a raw lock error. The wait
    defaults to `BALLAST_DB_WAIT_SECONDS` (30 s).
    """
    if wait_seconds is None:
        wait_seconds = float(os.environ.get("BALLAST_DB_WAIT_SECONDS", "30"))
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            break
        except duckdb.Error as exc:
            if not _is_lock_error(exc):
                raise
            if time.monotonic() >= deadline:
                raise WarehouseBusy(
                    f"the warehouse {path} is held by another process (waited {wait_seconds:.0f} s); "
                    "wait for it to finish or stop it, then run again"
                ) from exc
            time.sleep(poll_seconds)
    try:
        # Dates of UTC timestamps are UTC dates, whatever the machine's zone.
        con.execute("SET TimeZone = 'UTC'")
        # DuckDB's buffer pool would otherwise grow to 80% of RAM on big scans; past this it
        # spills to `<db>.tmp`. Planning cycles must stay lean next to the solver.
        con.execute("SET memory_limit = ?", [memory_limit])
        if not read_only:
            ensure_schema(con)
        yield con
    finally:
        con.close()


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """All-or-nothing: commit on success, roll back on any exception."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def insert_frame(con: duckdb.DuckDBPyConnection, table: str, frame: pl.DataFrame) -> None:
    """Append a polars frame to `table` by column name (via Arrow, no row-by-row inserts)."""
    if frame.is_empty():
        return
    con.register("_ballast_insert", frame.to_arrow())
    try:
        cols = ", ".join(f'"{c}"' for c in frame.columns)
        con.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM _ballast_insert")
    finally:
        con.unregister("_ballast_insert")


def one(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> tuple | None:
    """The first row of a parameterised query, or None.

    DuckDB 2.0 refuses further work on a connection while a result is unfinished, so results
    are always fetched whole (`fetchall`), never left half-read with `fetchone`.
    """
    rows = con.execute(sql, params or []).fetchall()
    return rows[0] if rows else None


def query_frame(con: duckdb.DuckDBPyConnection, sql: str, params: list | dict | None = None) -> pl.DataFrame:
    """Run a parameterised query and return a polars frame (DuckDB → Arrow → polars)."""
    return con.sql(sql, params=params).pl()


def _typed_columns(extract: Extract) -> str:
    return ", ".join(f's."{c}"' for c in extract.column_names)


def passing_file_ids(con: duckdb.DuckDBPyConnection, extract: str, as_of: datetime | None) -> list[int]:
    """File ids of `extract` that passed their gate, delivered as of `as_of` or earlier (oldest first)."""
    rows = con.execute(
        """SELECT g.file_id FROM gate_results g
           WHERE g.extract = ? AND g.outcome IN ('pass', 'pass_with_quarantine')
             AND (CAST(? AS TIMESTAMPTZ) IS NULL OR g.as_of <= CAST(? AS TIMESTAMPTZ))
           ORDER BY g.as_of, g.file_id""",
        [extract, as_of, as_of],
    ).fetchall()
    return [r[0] for r in rows]


def snapshot_as_of(con: duckdb.DuckDBPyConnection, extract: str, as_of: datetime | None = None) -> pl.DataFrame:
    """The staged rows of the latest passing snapshot of `extract` delivered as of `as_of`.

    Snapshot extracts (sites, inventory, in_transit, ...) are full states: the latest file
    replaces the picture, older files remain as history.
    """
    spec = EXTRACTS[extract]
    ids = passing_file_ids(con, extract, as_of)
    if not ids:
        return empty_frame(spec)
    return query_frame(
        con, f"SELECT {_typed_columns(spec)} FROM stg_{extract} s WHERE s._file_id = ? ORDER BY s._row", [ids[-1]]
    )


def snapshot_meta(con: duckdb.DuckDBPyConnection, extract: str, as_of: datetime | None = None) -> dict | None:
    """File name, sha256 and as_of of the snapshot `snapshot_as_of` would return (None if none)."""
    ids = passing_file_ids(con, extract, as_of)
    if not ids:
        return None
    row = one(con, "SELECT file_id, file_name, sha256, as_of FROM ingest_files WHERE file_id = ?", [ids[-1]])
    assert row is not None
    return {"file_id": row[0], "file_name": row[1], "sha256": row[2], "as_of": row[3]}


def demand_history(con: duckdb.DuckDBPyConnection, as_of: datetime | None = None) -> pl.DataFrame:
    """Daily demand known as of `as_of`: for each (date, site, sku) the latest delivered value.

    Later files may restate earlier days; a file delivered after `as_of` is never seen, and
    neither is any day on or after the as-of date (it is not complete yet).
    """
    return query_frame(
        con,
        """SELECT s.date, s.site_id, s.sku, s.qty FROM (
               SELECT s.*, row_number() OVER (
                   PARTITION BY s.date, s.site_id, s.sku ORDER BY g.as_of DESC, s._file_id DESC) AS rk
               FROM stg_demand s JOIN gate_results g ON g.file_id = s._file_id
               WHERE g.outcome IN ('pass', 'pass_with_quarantine')
                 AND (CAST(? AS TIMESTAMPTZ) IS NULL OR g.as_of <= CAST(? AS TIMESTAMPTZ))
                 AND (CAST(? AS TIMESTAMPTZ) IS NULL OR s.date < CAST(CAST(? AS TIMESTAMPTZ) AS DATE))
           ) s WHERE rk = 1 ORDER BY s.site_id, s.sku, s.date""",
        [as_of, as_of, as_of, as_of],
    )


def empty_frame(extract: Extract) -> pl.DataFrame:
    dtypes = {
        Kind.STR: pl.String,
        Kind.INT: pl.Int64,
        Kind.FLOAT: pl.Float64,
        Kind.DATE: pl.Date,
        Kind.TIMESTAMP: pl.Datetime("us", "UTC"),
    }
    return pl.DataFrame(schema={c.name: dtypes[c.kind] for c in extract.columns})
