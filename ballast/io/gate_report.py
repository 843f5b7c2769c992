"""Read gate outcomes and quarantine back out of the warehouse for people and reports."""

from __future__ import annotations

import json
from dataclasses import dataclass

import duckdb

from ballast.models.gates import describe_failure


@dataclass(frozen=True, slots=True)
class GateRow:
    file_id: int
    extract: str
    file_name: str
    as_of: str
    rows_in: int
    rows_staged: int
    rows_quarantined: int
    outcome: str
    reasons: tuple[str, ...]
    examples: tuple[str, ...]


def gate_rows(con: duckdb.DuckDBPyConnection, file_ids: list[int] | None = None, examples: int = 3) -> list[GateRow]:
    """Gate results (all, or the given files), each with its first quarantined rows described."""
    rows = con.execute(
        """SELECT file_id, extract, file_name, strftime(as_of, '%Y-%m-%dT%H:%M:%SZ'), rows_in, rows_staged,
                  rows_quarantined, outcome, reasons
           FROM gate_results WHERE (CAST(? AS BIGINT[]) IS NULL OR list_contains(CAST(? AS BIGINT[]), file_id))
           ORDER BY file_id""",
        [file_ids, file_ids],
    ).fetchall()
    out = []
    for r in rows:
        sample = con.execute(
            """SELECT file_name, "row", line, "column", rule, value FROM quarantine
               WHERE file_id = ? AND "row" IS NOT NULL ORDER BY "row", "column" LIMIT ?""",
            [r[0], examples],
        ).fetchall()
        out.append(
            GateRow(
                file_id=r[0], extract=r[1], file_name=r[2], as_of=r[3], rows_in=r[4], rows_staged=r[5],
                rows_quarantined=r[6], outcome=r[7], reasons=tuple(json.loads(r[8])),
                examples=tuple(describe_failure(*s) for s in sample),
            )
        )
    return out


def quarantine_rows(
    con: duckdb.DuckDBPyConnection, file_name: str | None = None, limit: int = 50
) -> list[str]:
    """Quarantined cells and rows, newest file first, as one readable line each."""
    rows = con.execute(
        """SELECT file_name, "row", line, "column", rule, value FROM quarantine
           WHERE (CAST(? AS VARCHAR) IS NULL OR file_name = CAST(? AS VARCHAR))
           ORDER BY file_id DESC, "row" NULLS FIRST, "column" LIMIT ?""",
        [file_name, file_name, limit],
    ).fetchall()
    return [describe_failure(*r) for r in rows]
