"""Validate: judge each landed file at the gate and stage the good rows, one transaction per file.

Files are taken in dependency order (master data before the extracts that point into it), then
by `as_of`. For each: parse the raw text (`ballast.models.parsing`), run the gate
(`ballast.models.gates`), then write quarantine rows, staged rows (unless blocked) and the gate
result together. Nothing already staged is touched, so a blocked file leaves the last good data
in force.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import duckdb
import pandas as pd
import polars as pl

from ballast.io.warehouse import insert_frame, one, query_frame, snapshot_as_of, transaction
from ballast.models.contract import EXTRACTS, VALIDATION_ORDER
from ballast.models.gates import (
    GateResult,
    decide,
    reconciliation_failures,
    reference_failures,
    schema_failures,
    staleness,
)
from ballast.models.parsing import ROW, parse_extract
from ballast.models.policy import Policy

log = logging.getLogger(__name__)


def pending_files(con: duckdb.DuckDBPyConnection) -> list[tuple[int, str, str, datetime, int]]:
    """Landed files without a gate result: (file_id, extract, file_name, as_of, rows_rejected_at_ingest)."""
    rows = con.execute(
        """SELECT f.file_id, f.extract, f.file_name, f.as_of, f.rows_rejected FROM ingest_files f
           LEFT JOIN gate_results g USING (file_id)
           WHERE f.status = 'landed' AND g.file_id IS NULL"""
    ).fetchall()
    order = {name: i for i, name in enumerate(VALIDATION_ORDER)}
    return sorted(rows, key=lambda r: (order[r[1]], r[3], r[0]))


CHUNK_ROWS = 1_000_000
QUARANTINE_EMPTY = pl.DataFrame(
    schema={"row": pl.Int64, "column": pl.String, "rule": pl.String, "value": pl.String, "line": pl.Int64}
)


def _quarantine_frame(failures: pl.DataFrame, lines: pl.DataFrame) -> pl.DataFrame:
    return failures.join(lines, on=ROW, how="left").rename({ROW: "row", "_line": "line"})


def _cross_chunk_duplicates(con: duckdb.DuckDBPyConnection, extract: str, key: tuple[str, ...], file_id: int) -> pl.DataFrame:
    """Rows of a file staged in several chunks whose key repeats in another chunk."""
    keys = ", ".join(f'"{k}"' for k in key)
    return query_frame(
        con,
        f"""SELECT _row AS "row", _row AS _r FROM stg_{extract} WHERE _file_id = ?
            QUALIFY count(*) OVER (PARTITION BY {keys}) > 1""",
        [file_id],
    )


def validate_file(
    con: duckdb.DuckDBPyConnection,
    file_id: int,
    extract_name: str,
    file_name: str,
    as_of: datetime,
    ingest_rejects: int,
    policy: Policy,
    now: datetime,
) -> GateResult:
    """Gate one landed file: stage its good rows, quarantine the rest, record the verdict.

    Rows are typed and checked in chunks of `CHUNK_ROWS`, so a two-year demand history of a large
    network never sits in memory at once; keys repeated across chunks are caught in SQL. The
    verdict (with the quarantine rows) is one transaction, and it is what makes staged rows count.
    """
    spec = EXTRACTS[extract_name]
    known = {
        "sites": snapshot_as_of(con, "sites", as_of).get_column("site_id"),
        "items": snapshot_as_of(con, "items", as_of).get_column("sku"),
    }
    lanes = snapshot_as_of(con, "lanes", as_of) if spec.name == "in_transit" else None
    wms = snapshot_as_of(con, "inventory", as_of) if spec.name == "book_inventory" else None
    total = one(con, f"SELECT count(*) FROM raw_{spec.name} WHERE _file_id = ?", [file_id])[0]  # type: ignore[index]
    row_failures: list[pl.DataFrame] = [QUARANTINE_EMPTY]
    recon_failures: list[pl.DataFrame] = []
    compared = 0
    staged_rows = 0
    # Staged rows count only once the file's gate result says pass (every reader joins on it), so
    # chunks are committed as they go and memory stays flat; rows left by an interrupted attempt
    # were never visible and are cleared first.
    con.execute(f"DELETE FROM stg_{spec.name} WHERE _file_id = ?", [file_id])
    for first in range(1, total + 1, CHUNK_ROWS):
        raw = query_frame(
            con,
            f"SELECT * FROM raw_{spec.name} WHERE _file_id = ? AND _row BETWEEN ? AND ? ORDER BY _row",
            [file_id, first, first + CHUNK_ROWS - 1],
        )
        parsed = parse_extract(raw, spec)
        failures = pl.concat(
            [parsed.failures, schema_failures(parsed.typed, spec), reference_failures(parsed.typed, spec, known, lanes)]
        )
        lines = raw.select(ROW, "_line")
        row_failures.append(_quarantine_frame(failures, lines))
        if wms is not None:
            # Reconciliation differences are findings about the book, not bad rows: listed in
            # quarantine, rows staged; they block only beyond `reconciliation_max_share`.
            recon, n = reconciliation_failures(parsed.typed, wms, policy.quality_gates.reconciliation_tolerance)
            recon_failures.append(_quarantine_frame(recon, lines))
            compared += n
        bad = failures.get_column(ROW).drop_nulls().unique().implode()
        good = parsed.typed.filter(~pl.col(ROW).is_in(bad))
        insert_frame(
            con,
            f"stg_{spec.name}",
            good.with_columns(
                pl.lit(file_id, pl.Int64).alias("_file_id"),
                pl.lit(as_of).cast(pl.Datetime("us", "UTC")).alias("_as_of"),
            ),
        )
        staged_rows += good.height
    if total > CHUNK_ROWS:
        dups = _cross_chunk_duplicates(con, spec.name, spec.key, file_id)
        if dups.height:
            con.execute(
                f"DELETE FROM stg_{spec.name} WHERE _file_id = ? AND list_contains(CAST(? AS BIGINT[]), _row)",
                [file_id, dups.get_column("row").to_list()],
            )
            staged_rows -= dups.height
            line_of = query_frame(
                con,
                f"SELECT _row AS \"row\", _line AS line FROM raw_{spec.name} WHERE _file_id = ? "
                "AND list_contains(CAST(? AS BIGINT[]), _row)",
                [file_id, dups.get_column("row").to_list()],
            )
            row_failures.append(
                line_of.with_columns(
                    pl.lit(",".join(spec.key)).alias("column"),
                    pl.lit(f"key:unique — duplicate key ({', '.join(spec.key)})").alias("rule"),
                    pl.lit(None, pl.String).alias("value"),
                ).select("row", "column", "rule", "value", "line")
            )
    rows_failed = pl.concat(row_failures, how="diagonal_relaxed")
    recon_all = pl.concat(recon_failures, how="diagonal_relaxed") if recon_failures else rows_failed.clear()
    file_reasons: list[str] = []
    stale = staleness(as_of, now, policy.staleness_budget(spec.name))
    if stale:
        file_reasons.append(stale)
    file_reasons.extend(
        f"{r['column']}: {r['rule']}" for r in rows_failed.filter(pl.col("row").is_null()).iter_rows(named=True)
    )
    rows_in = total + ingest_rejects
    rows_bad = rows_failed.get_column("row").drop_nulls().n_unique() + ingest_rejects
    gate = policy.quality_gates.for_extract(spec.name)
    outcome, reasons = decide(rows_in, rows_bad, gate.max_quarantine_share, file_reasons, spec.name)
    if recon_all.height:
        outcome = _reconciliation_verdict(recon_all.height, compared, policy, outcome, reasons)
    if outcome == "block":
        staged_rows = 0
    quarantine = pl.concat([rows_failed, recon_all], how="diagonal_relaxed").with_columns(
        pl.lit(file_id, pl.Int64).alias("file_id"),
        pl.lit(spec.name).alias("extract"),
        pl.lit(file_name).alias("file_name"),
        pl.lit("validate").alias("stage"),
        pl.lit(now).cast(pl.Datetime("us", "UTC")).alias("detected_at"),
    )
    result = GateResult(
        file_id=file_id, extract=spec.name, file_name=file_name, as_of=as_of, rows_in=rows_in,
        rows_staged=staged_rows, rows_quarantined=rows_bad, outcome=outcome, reasons=tuple(reasons),
    )
    with transaction(con):
        if outcome == "block":
            # nothing of a blocked file is staged
            con.execute(f"DELETE FROM stg_{spec.name} WHERE _file_id = ?", [file_id])
        insert_frame(con, "quarantine", quarantine)
        con.execute(
            "INSERT INTO gate_results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [file_id, spec.name, file_name, as_of, rows_in, staged_rows, rows_bad, outcome, result.reasons_json(), now],
        )
    log.info("gate %s %s: %s (%d in, %d staged, %d quarantined)", spec.name, file_name, outcome, rows_in,
             staged_rows, rows_bad)
    return result


def _reconciliation_verdict(differing: int, compared: int, policy: Policy, outcome: str, reasons: list[str]) -> str:
    gates = policy.quality_gates
    share = differing / compared
    line = (
        f"reconciliation: {differing} of {compared} site×SKU pairs differ from WMS beyond "
        f"{gates.reconciliation_tolerance:.0%} ({share:.1%}; allowed {gates.reconciliation_max_share:.0%})"
    )
    if share > gates.reconciliation_max_share:
        reasons.append(line + "; rule: quality_gates.reconciliation")
        return "block"
    reasons.append(line + "; listed in quarantine, rows staged")
    return outcome


def validate_pending(
    con: duckdb.DuckDBPyConnection, policy: Policy, now: datetime | None = None
) -> list[GateResult]:
    """Gate every landed file that has no gate result yet."""
    now = now or datetime.now(UTC)
    return [
        validate_file(con, file_id, extract, name, as_of, rejects, policy, now)
        for file_id, extract, name, as_of, rejects in pending_files(con)
    ]


def staged_frames(
    con: duckdb.DuckDBPyConnection, file_ids: dict[str, int]
) -> tuple[dict[str, pd.DataFrame], pd.DataFrame | None]:
    """The rows staged from the given files (as pandas, for Great Expectations), the demand
    history before them as the drift reference, and a WMS-vs-book reconciliation frame."""
    staged: dict[str, pd.DataFrame] = {}
    for extract, file_id in file_ids.items():
        cols = ", ".join(f'"{c}"' for c in EXTRACTS[extract].column_names)
        staged[extract] = query_frame(con, f"SELECT {cols} FROM stg_{extract} WHERE _file_id = ?", [file_id]).to_pandas()
    reference = None
    if "demand" in file_ids:
        reference = query_frame(
            con,
            """SELECT s.date, s.site_id, s.sku, s.qty FROM stg_demand s
               WHERE s._file_id <> ? AND s.date < (SELECT min(date) FROM stg_demand WHERE _file_id = ?)""",
            [file_ids["demand"], file_ids["demand"]],
        ).to_pandas()
        reference = reference if len(reference) else None
    if "book_inventory" in file_ids:
        book = query_frame(
            con, "SELECT site_id, sku, qty AS book_qty FROM stg_book_inventory WHERE _file_id = ?",
            [file_ids["book_inventory"]],
        )
        as_of = one(con, "SELECT as_of FROM gate_results WHERE file_id = ?", [file_ids["book_inventory"]])[0]  # type: ignore[index]
        wms = snapshot_as_of(con, "inventory", as_of).group_by("site_id", "sku").agg(pl.col("on_hand").sum().alias("wms_qty"))
        recon = book.join(wms, on=["site_id", "sku"], how="left").with_columns(pl.col("wms_qty").fill_null(0.0))
        recon = recon.with_columns(
            ((pl.col("wms_qty") - pl.col("book_qty")) / pl.max_horizontal(pl.col("book_qty"), pl.lit(1.0))).alias("rel_diff")
        )
        staged["reconciliation"] = recon.to_pandas()
    return staged, reference
