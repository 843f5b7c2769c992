"""Everything a planning cycle reads from the warehouse, as known at its as-of time."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

import duckdb
import polars as pl

from ballast.io.plans import latest_plan_id, released_commitments
from ballast.io.warehouse import demand_history, snapshot_as_of, snapshot_meta
from ballast.models.readiness import LatestFile

SNAPSHOTS = ("sites", "items", "lanes", "inventory", "in_transit", "purchase_orders")


@dataclass(frozen=True)
class CycleInputs:
    """The staged state at `as_of`: snapshot frames, demand history, released commitments and
    the fingerprints (file name, sha256, as_of) a plan id is computed from."""

    as_of: datetime
    frames: dict[str, pl.DataFrame]
    demand: pl.DataFrame
    released: pl.DataFrame
    fingerprints: dict[str, dict]
    previous_plan_id: str | None


def latest_files(con: duckdb.DuckDBPyConnection, as_of: datetime) -> list[LatestFile]:
    """Each extract's newest gated file delivered as of `as_of`."""
    rows = con.execute(
        """SELECT extract, file_name, as_of, outcome FROM gate_results WHERE as_of <= ?
           QUALIFY row_number() OVER (PARTITION BY extract ORDER BY as_of DESC, file_id DESC) = 1""",
        [as_of],
    ).fetchall()
    return [LatestFile(*r) for r in rows]


def passing_as_of(con: duckdb.DuckDBPyConnection, as_of: datetime) -> dict[str, datetime]:
    rows = con.execute(
        """SELECT extract, max(as_of) FROM gate_results
           WHERE as_of <= ? AND outcome IN ('pass', 'pass_with_quarantine') GROUP BY extract""",
        [as_of],
    ).fetchall()
    return {r[0]: r[1] for r in rows}


def demand_fingerprint(con: duckdb.DuckDBPyConnection, as_of: datetime) -> dict:
    """The demand files that make up the history known at `as_of` (a hash of their hashes)."""
    rows = con.execute(
        """SELECT f.file_name, f.sha256 FROM gate_results g JOIN ingest_files f USING (file_id)
           WHERE g.extract = 'demand' AND g.outcome IN ('pass', 'pass_with_quarantine') AND g.as_of <= ?
           ORDER BY g.as_of, g.file_id""",
        [as_of],
    ).fetchall()
    digest = hashlib.sha256("".join(r[1] for r in rows).encode()).hexdigest()
    return {"file_name": rows[-1][0] if rows else None, "sha256": digest, "files": len(rows)}


def read_cycle_inputs(con: duckdb.DuckDBPyConnection, as_of: datetime, mode: str = "live") -> CycleInputs:
    frames = {name: snapshot_as_of(con, name, as_of) for name in SNAPSHOTS}
    fingerprints: dict[str, dict] = {}
    for name in SNAPSHOTS + ("book_inventory",):
        meta = snapshot_meta(con, name, as_of)
        if meta is not None:
            fingerprints[name] = {"file_name": meta["file_name"], "sha256": meta["sha256"],
                                  "as_of": meta["as_of"].isoformat()}
    fingerprints["demand"] = demand_fingerprint(con, as_of)
    released = released_commitments(con, as_of)
    fingerprints["released_orders"] = {
        "file_name": None,
        "sha256": _frame_digest(released.select("order_id", "qty")),
        "as_of": as_of.isoformat(),
    }
    return CycleInputs(
        as_of=as_of,
        frames=frames,
        demand=demand_history(con, as_of),
        released=released,
        fingerprints=fingerprints,
        previous_plan_id=latest_plan_id(con, mode, as_of),
    )


def _frame_digest(frame: pl.DataFrame) -> str:
    return hashlib.sha256(frame.sort(frame.columns).write_csv().encode()).hexdigest()

