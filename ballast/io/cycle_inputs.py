"""Everything a planning cycle reads from the warehouse, as known at its as-of time.

Two clocks decide what a reader sees. A file's `as_of` says what time it describes; its
`ingested_at` (and its gate result's `validated_at`) say when ballast learnt it. A live cycle
runs at its as-of, so everything it can see was delivered by then. A replay of a past as-of T
(a backfill) runs later, when files describing times before T may have arrived late: passing
`known_at=T` hides every file ingested or gated after T, so the replay sees what the live
cycle saw, never data that arrived later.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime

import duckdb
import polars as pl

from ballast.io.plans import empty_planned_orders, latest_plan_id, planned_unreleased, released_commitments
from ballast.io.warehouse import demand_history, empty_frame, one, query_frame, snapshot_as_of, snapshot_meta
from ballast.models.contract import EXTRACTS
from ballast.models.readiness import LatestFile

SNAPSHOTS = ("sites", "items", "lanes", "inventory", "in_transit", "purchase_orders")


@dataclass(frozen=True)
class CycleInputs:
    """The staged state at `as_of`: snapshot frames, demand history, released commitments, what
    the previous plan meant to ship next (unreleased) and the fingerprints (file name, sha256,
    as_of) a plan id is computed from."""

    as_of: datetime
    frames: dict[str, pl.DataFrame]
    demand: pl.DataFrame
    released: pl.DataFrame
    fingerprints: dict[str, dict]
    previous_plan_id: str | None
    previous_orders: pl.DataFrame = field(default_factory=empty_planned_orders)


# A gate result counts at `known_at` only if its file was ingested and gated by then (NULL: no limit).
_KNOWN = """(CAST(? AS TIMESTAMPTZ) IS NULL OR (g.validated_at <= CAST(? AS TIMESTAMPTZ)
             AND g.file_id IN (SELECT file_id FROM ingest_files WHERE ingested_at <= CAST(? AS TIMESTAMPTZ))))"""


def _known(known_at: datetime | None) -> list:
    return [known_at, known_at, known_at]


def latest_files(con: duckdb.DuckDBPyConnection, as_of: datetime, known_at: datetime | None = None) -> list[LatestFile]:
    """Each extract's newest gated file delivered as of `as_of` (and known at `known_at`)."""
    rows = con.execute(
        f"""SELECT extract, file_name, as_of, outcome FROM gate_results g WHERE as_of <= ? AND {_KNOWN}
           QUALIFY row_number() OVER (PARTITION BY extract ORDER BY as_of DESC, file_id DESC) = 1""",
        [as_of, *_known(known_at)],
    ).fetchall()
    return [LatestFile(*r) for r in rows]


def passing_as_of(
    con: duckdb.DuckDBPyConnection, as_of: datetime, known_at: datetime | None = None
) -> dict[str, datetime]:
    rows = con.execute(
        f"""SELECT extract, max(as_of) FROM gate_results g
           WHERE as_of <= ? AND outcome IN ('pass', 'pass_with_quarantine') AND {_KNOWN} GROUP BY extract""",
        [as_of, *_known(known_at)],
    ).fetchall()
    return {r[0]: r[1] for r in rows}


def known_file_ids(
    con: duckdb.DuckDBPyConnection, extract: str, as_of: datetime, known_at: datetime | None
) -> list[int]:
    """Passing files of `extract` describing `as_of` or earlier and known at `known_at` (oldest first)."""
    rows = con.execute(
        f"""SELECT g.file_id FROM gate_results g
           WHERE g.extract = ? AND g.outcome IN ('pass', 'pass_with_quarantine') AND g.as_of <= ? AND {_KNOWN}
           ORDER BY g.as_of, g.file_id""",
        [extract, as_of, *_known(known_at)],
    ).fetchall()
    return [r[0] for r in rows]


def snapshot_known(
    con: duckdb.DuckDBPyConnection, extract: str, as_of: datetime, known_at: datetime | None
) -> tuple[pl.DataFrame, dict | None]:
    """(rows, file meta) of the latest passing snapshot of `extract` as known at `known_at`."""
    if known_at is None:
        return snapshot_as_of(con, extract, as_of), snapshot_meta(con, extract, as_of)
    ids = known_file_ids(con, extract, as_of, known_at)
    if not ids:
        return empty_frame(EXTRACTS[extract]), None
    cols = ", ".join(f's."{c}"' for c in EXTRACTS[extract].column_names)
    frame = query_frame(con, f"SELECT {cols} FROM stg_{extract} s WHERE s._file_id = ? ORDER BY s._row", [ids[-1]])
    row = one(con, "SELECT file_id, file_name, sha256, as_of FROM ingest_files WHERE file_id = ?", [ids[-1]])
    assert row is not None
    return frame, {"file_id": row[0], "file_name": row[1], "sha256": row[2], "as_of": row[3]}


def demand_known(con: duckdb.DuckDBPyConnection, as_of: datetime, known_at: datetime | None) -> pl.DataFrame:
    """Daily demand before the as-of date as known at `known_at`: per day the latest delivered value."""
    if known_at is None:
        return demand_history(con, as_of)
    return query_frame(
        con,
        f"""SELECT s.date, s.site_id, s.sku, s.qty FROM (
               SELECT s.*, row_number() OVER (
                   PARTITION BY s.date, s.site_id, s.sku ORDER BY g.as_of DESC, s._file_id DESC) AS rk
               FROM stg_demand s JOIN gate_results g ON g.file_id = s._file_id
               WHERE g.outcome IN ('pass', 'pass_with_quarantine') AND g.as_of <= CAST(? AS TIMESTAMPTZ)
                 AND s.date < CAST(CAST(? AS TIMESTAMPTZ) AS DATE) AND {_KNOWN}
           ) s WHERE rk = 1 ORDER BY s.site_id, s.sku, s.date""",
        [as_of, as_of, *_known(known_at)],
    )


def used_lanes_known(con: duckdb.DuckDBPyConnection, known_at: datetime) -> pl.DataFrame:
    """(origin, destination) goods had moved on as known at `known_at`: live releases and TMS shipments.

    The as-of twin of `plans.used_lanes`, which a live cycle calls at its own as-of time.
    """
    return query_frame(
        con,
        f"""SELECT o.origin, o.destination FROM released_orders r
           JOIN transfer_orders o ON o.order_id = r.order_id AND o.plan_id = r.plan_id
           WHERE r.released_at < CAST(? AS TIMESTAMPTZ)
           UNION
           SELECT s.origin, s.destination FROM stg_in_transit s
           JOIN gate_results g ON g.file_id = s._file_id AND g.outcome IN ('pass', 'pass_with_quarantine')
           WHERE g.as_of <= CAST(? AS TIMESTAMPTZ) AND {_KNOWN}""",
        [known_at, known_at, *_known(known_at)],
    )


def demand_fingerprint(con: duckdb.DuckDBPyConnection, as_of: datetime, known_at: datetime | None = None) -> dict:
    """The demand files that make up the history known at `as_of` (a hash of their hashes)."""
    rows = con.execute(
        f"""SELECT f.file_name, f.sha256 FROM gate_results g JOIN ingest_files f USING (file_id)
           WHERE g.extract = 'demand' AND g.outcome IN ('pass', 'pass_with_quarantine') AND g.as_of <= ?
             AND {_KNOWN}
           ORDER BY g.as_of, g.file_id""",
        [as_of, *_known(known_at)],
    ).fetchall()
    digest = hashlib.sha256("".join(r[1] for r in rows).encode()).hexdigest()
    return {"file_name": rows[-1][0] if rows else None, "sha256": digest, "files": len(rows)}


def read_cycle_inputs(
    con: duckdb.DuckDBPyConnection,
    as_of: datetime,
    mode: str = "live",
    known_at: datetime | None = None,
    previous_plan: bool = False,
) -> CycleInputs:
    """The cycle's inputs at `as_of`; with `known_at`, only files ingested and gated by then (replays).

    With `previous_plan` (a live cycle whose policy prices release-now on changes) also what the
    previous live plan meant to ship next, fingerprinted with the rest; otherwise the plan's inputs
    are the same as a backfill's replay of this as-of."""
    frames: dict[str, pl.DataFrame] = {}
    fingerprints: dict[str, dict] = {}
    for name in SNAPSHOTS + ("book_inventory",):
        frame, meta = snapshot_known(con, name, as_of, known_at)
        if name in SNAPSHOTS:
            frames[name] = frame
        if meta is not None:
            fingerprints[name] = {"file_name": meta["file_name"], "sha256": meta["sha256"],
                                  "as_of": meta["as_of"].isoformat()}
    fingerprints["demand"] = demand_fingerprint(con, as_of, known_at)
    released = released_commitments(con, as_of)
    fingerprints["released_orders"] = {
        "file_name": None,
        "sha256": _frame_digest(released.select("order_id", "qty")),
        "as_of": as_of.isoformat(),
    }
    # what the previous live plan meant to ship next: live cycles only, whose plans are acted on (a
    # backfill's plans are replays released to no one, and its as-ofs are planned in parallel)
    previous_orders = empty_planned_orders()
    if previous_plan and mode == "live":
        planned_by, previous_orders = planned_unreleased(con, mode, as_of)
        fingerprints["previous_plan"] = {
            "file_name": planned_by,
            "sha256": _frame_digest(previous_orders),
            "as_of": as_of.isoformat(),
        }
    return CycleInputs(
        as_of=as_of,
        frames=frames,
        demand=demand_known(con, as_of, known_at),
        released=released,
        fingerprints=fingerprints,
        previous_plan_id=latest_plan_id(con, mode, as_of),
        previous_orders=previous_orders,
    )


def _frame_digest(frame: pl.DataFrame) -> str:
    return hashlib.sha256(frame.sort(frame.columns).write_csv().encode()).hexdigest()

