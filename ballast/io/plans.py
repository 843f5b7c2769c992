"""The plan marts: plans, transfer orders, approval decisions, the audit log and the outbox.

Publishing is one DuckDB transaction (plan, orders, audit entry, outbox rows); the outbox files
for ERP/WMS adapters are written afterwards, atomically (temp file + rename), and their delivery
is recorded. A crash between commit and files is completed by `deliver_outbox` on the next run,
so every released order reaches the outbox exactly once.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import polars as pl

from ballast.faults import crash_point
from ballast.io.landing import atomic_write_bytes
from ballast.io.warehouse import insert_frame, one, query_frame, transaction
from ballast.models.audit import AuditEntry, next_entry, verify_chain
from ballast.models.governance import APPROVED, NEEDS_APPROVAL, REJECTED, RELEASABLE

ORDER_COLUMNS = (
    "order_id", "plan_id", "kind", "origin", "destination", "mode", "sku", "ship_date", "arrive_date", "qty",
    "unit_cost", "transport_cost", "value", "round", "in_freeze_window", "approval_status", "approval_reasons",
    "explanation", "reason",
)
OUTBOX_COLUMNS = (
    "order_id", "plan_id", "kind", "origin", "destination", "mode", "sku", "ship_date", "arrive_date", "qty", "value",
)


@dataclass(frozen=True, slots=True)
class PlanRecord:
    plan_id: str
    as_of: datetime
    mode: str
    policy_version: str
    policy_sha256: str
    code_version: str
    forecast_run_id: str | None
    forecaster: str | None
    inputs: dict
    solve: dict
    kpis: dict
    degraded: list[str]
    mlflow_run_id: str | None = None
    report_path: str | None = None
    previous_plan_id: str | None = None


def _last_audit(con: duckdb.DuckDBPyConnection) -> AuditEntry | None:
    row = one(con, "SELECT * FROM audit_log ORDER BY seq DESC LIMIT 1")
    return None if row is None else AuditEntry(*row)


def append_audit(
    con: duckdb.DuckDBPyConnection, actor: str, action: str, subject: str, payload: dict, at: datetime | None = None
) -> AuditEntry:
    """Append one chained entry (call inside the transaction that makes the change it records)."""
    entry = next_entry(_last_audit(con), at or datetime.now(UTC), actor, action, subject, payload)
    con.execute("INSERT INTO audit_log VALUES (?, ?, ?, ?, ?, ?, ?, ?)", list(asdict(entry).values()))
    return entry


def audit_entries(con: duckdb.DuckDBPyConnection) -> list[AuditEntry]:
    rows = con.execute("SELECT * FROM audit_log ORDER BY seq").fetchall()
    return [AuditEntry(*r) for r in rows]


def verify_audit(con: duckdb.DuckDBPyConnection) -> list[str]:
    return verify_chain(audit_entries(con))


def plan_exists(con: duckdb.DuckDBPyConnection, plan_id: str) -> bool:
    return one(con, "SELECT count(*) FROM plans WHERE plan_id = ?", [plan_id])[0] > 0  # type: ignore[index]


def latest_plan_id(
    con: duckdb.DuckDBPyConnection, mode: str = "live", before: datetime | None = None, strictly: bool = False
) -> str | None:
    """The newest `mode` plan with as-of at or before `before` (strictly before with `strictly`)."""
    row = one(
        con,
        """SELECT plan_id FROM plans WHERE mode = ?
               AND (CAST(? AS TIMESTAMPTZ) IS NULL
                    OR as_of < CAST(? AS TIMESTAMPTZ) OR (NOT ? AND as_of = CAST(? AS TIMESTAMPTZ)))
           ORDER BY as_of DESC, created_at DESC LIMIT 1""",
        [mode, before, before, strictly, before],
    )
    return None if row is None else row[0]


def released_commitments(con: duckdb.DuckDBPyConnection, as_of: datetime | None = None) -> pl.DataFrame:
    """Released transfer and purchase orders of live plans released before `as_of`: the cycle's commitments.

    Strictly before: a cycle's own releases carry its as-of, so rerunning that as-of plans on the same inputs.
    """
    return query_frame(
        con,
        """SELECT o.order_id, o.kind, o.origin, o.destination, o.mode, o.sku, o.ship_date, o.arrive_date, o.qty
           FROM released_orders r JOIN transfer_orders o ON o.order_id = r.order_id AND o.plan_id = r.plan_id
           JOIN plans p ON p.plan_id = r.plan_id
           WHERE p.mode = 'live' AND (CAST(? AS TIMESTAMPTZ) IS NULL OR r.released_at < CAST(? AS TIMESTAMPTZ))
             AND o.order_id NOT IN (
                 SELECT order_id FROM decisions WHERE decision = 'cancelled'
                   AND (CAST(? AS TIMESTAMPTZ) IS NULL OR decided_at < CAST(? AS TIMESTAMPTZ)))
           ORDER BY o.ship_date, o.order_id""",
        [as_of, as_of, as_of, as_of],
    )


def planned_unreleased(con: duckdb.DuckDBPyConnection, mode: str, as_of: datetime) -> tuple[str | None, pl.DataFrame]:
    """(plan id, orders) of the newest `mode` plan made strictly before `as_of` (the previous
    cycle's): its orders due to ship on or after `as_of`'s date that were neither released nor
    cancelled before `as_of`, i.e. what that cycle meant to do next. Strictly before, so rerunning
    an as-of reads the same rows (a cycle's own plan never feeds itself).

    The coordinator prices changing what was planned for its freeze window (`NetworkInputs.planned_now`)."""
    plan_id = latest_plan_id(con, mode, as_of, strictly=True)
    if plan_id is None:
        return None, empty_planned_orders()
    orders = query_frame(
        con,
        """SELECT o.origin, o.destination, o.mode, o.sku, o.ship_date, o.qty FROM transfer_orders o
           WHERE o.plan_id = ? AND o.ship_date >= CAST(CAST(? AS TIMESTAMPTZ) AS DATE)
             AND o.order_id NOT IN (SELECT order_id FROM released_orders WHERE released_at < CAST(? AS TIMESTAMPTZ))
             AND o.order_id NOT IN (SELECT order_id FROM decisions WHERE decision = 'cancelled'
                                    AND decided_at < CAST(? AS TIMESTAMPTZ))
           ORDER BY o.ship_date, o.origin, o.destination, o.mode, o.sku""",
        [plan_id, as_of, as_of, as_of],
    )
    return plan_id, orders


def empty_planned_orders() -> pl.DataFrame:
    return pl.DataFrame(
        schema={
            "origin": pl.String, "destination": pl.String, "mode": pl.String, "sku": pl.String,
            "ship_date": pl.Date, "qty": pl.Float64,
        }
    )


def used_lanes(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    """(origin, destination) pairs goods have moved on: released orders and TMS shipments seen."""
    return query_frame(
        con,
        """SELECT o.origin, o.destination FROM released_orders r
           JOIN transfer_orders o ON o.order_id = r.order_id AND o.plan_id = r.plan_id
           UNION
           SELECT s.origin, s.destination FROM stg_in_transit s
           JOIN gate_results g ON g.file_id = s._file_id AND g.outcome IN ('pass', 'pass_with_quarantine')""",
    )


def publish(
    con: duckdb.DuckDBPyConnection, plan: PlanRecord, orders: pl.DataFrame, now: datetime, actor: str = "ballast"
) -> list[str]:
    """Write the plan, its orders, its audit entry and its releases in ONE transaction.

    Returns the ids of orders released now. Orders already released by an earlier plan are
    never released again (the `released_orders` key is the order id).
    """
    frame = orders.with_columns(pl.lit(plan.plan_id).alias("plan_id")).select(ORDER_COLUMNS)
    releasable = frame.filter(
        pl.col("in_freeze_window") & pl.col("approval_status").is_in(list(RELEASABLE))
    ).get_column("order_id")
    with transaction(con):
        con.execute(
            "INSERT INTO plans VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                plan.plan_id, plan.as_of, now, plan.mode, plan.policy_version, plan.policy_sha256,
                plan.code_version, plan.forecast_run_id, plan.forecaster, json.dumps(plan.inputs, default=str),
                json.dumps(plan.solve, default=str), json.dumps(plan.kpis, default=str), json.dumps(plan.degraded),
                plan.mlflow_run_id, plan.report_path, plan.previous_plan_id,
            ],
        )
        insert_frame(con, "transfer_orders", frame)
        released: list[str] = []
        if plan.mode == "live":
            # Stamped with the plan's as-of (its logical time), not the wall clock: the next cycle, and a
            # replay of any later as-of, see these commitments; a rerun of this same as-of does not.
            released = _release(con, plan.plan_id, plan.plan_id, releasable.to_list(), plan.as_of)
        append_audit(
            con, actor, "publish_plan", plan.plan_id,
            {"mode": plan.mode, "as_of": plan.as_of.isoformat(), "orders": frame.height, "released": len(released),
             "policy": plan.policy_version, "rung": plan.solve.get("rung")},
            now,
        )
        crash_point("publish_before_commit")
    crash_point("publish_after_commit")
    return released


def _release(con: duckdb.DuckDBPyConnection, plan_id: str, batch_id: str, order_ids: list[str], now: datetime) -> list[str]:
    if not order_ids:
        return []
    already = {
        r[0]
        for r in con.execute(
            "SELECT order_id FROM released_orders WHERE list_contains(CAST(? AS VARCHAR[]), order_id)", [order_ids]
        ).fetchall()
    }
    fresh = [o for o in order_ids if o not in already]
    if fresh:
        insert_frame(
            con,
            "released_orders",
            pl.DataFrame({"order_id": fresh}).with_columns(
                pl.lit(plan_id).alias("plan_id"), pl.lit(batch_id).alias("batch_id"),
                pl.lit(now).cast(pl.Datetime("us", "UTC")).alias("released_at"),
            ),
        )
    return fresh


def order_status(con: duckdb.DuckDBPyConnection, plan_id: str) -> pl.DataFrame:
    """Orders of a plan with their current approval status (latest decision wins) and release."""
    return query_frame(
        con,
        """SELECT o.*, coalesce(d.decision, o.approval_status) AS status, d.decided_by, d.decided_at,
                  r.order_id IS NOT NULL AS released
           FROM transfer_orders o
           LEFT JOIN (SELECT * FROM decisions QUALIFY row_number() OVER (
                        PARTITION BY plan_id, order_id ORDER BY decided_at DESC) = 1) d
             ON d.plan_id = o.plan_id AND d.order_id = o.order_id
           LEFT JOIN released_orders r ON r.order_id = o.order_id AND r.plan_id = o.plan_id
           WHERE o.plan_id = ? ORDER BY o.ship_date, o.origin, o.destination, o.sku""",
        [plan_id],
    )


def decide_orders(
    con: duckdb.DuckDBPyConnection,
    plan_id: str,
    order_ids: list[str] | None,
    decision: str,
    by: str,
    reason: str,
    now: datetime,
) -> list[str]:
    """Approve or reject orders awaiting approval (all of the plan's if `order_ids` is None).

    Approved orders inside the freeze window are released in the same transaction.
    Returns the ids of orders decided.
    """
    assert decision in (APPROVED, REJECTED)
    status = order_status(con, plan_id)
    if status.is_empty():
        raise KeyError(f"no plan {plan_id!r} (see `ballast plans list`)")
    if one(con, "SELECT mode FROM plans WHERE plan_id = ?", [plan_id]) == ("backfill",):
        raise ValueError(f"plan {plan_id} is a backfilled replay of the past: it is for comparison, not for approval")
    pending = status.filter(pl.col("status") == NEEDS_APPROVAL)
    if order_ids is not None:
        unknown = sorted(set(order_ids) - set(status.get_column("order_id").to_list()))
        if unknown:
            raise KeyError(f"plan {plan_id} has no order(s) {', '.join(unknown)}")
        not_pending = sorted(set(order_ids) - set(pending.get_column("order_id").to_list()))
        if not_pending:
            raise ValueError(f"order(s) {', '.join(not_pending)} are not awaiting approval")
        pending = pending.filter(pl.col("order_id").is_in(order_ids))
    ids = pending.get_column("order_id").to_list()
    if not ids:
        return []
    with transaction(con):
        insert_frame(
            con,
            "decisions",
            pl.DataFrame({"order_id": ids}).with_columns(
                pl.lit(plan_id).alias("plan_id"), pl.lit(decision).alias("decision"),
                pl.lit(by).alias("decided_by"), pl.lit(reason).alias("reason"),
                pl.lit(now).cast(pl.Datetime("us", "UTC")).alias("decided_at"),
            ),
        )
        entry = append_audit(con, by, decision, plan_id, {"orders": ids, "reason": reason}, now)
        mode = one(con, "SELECT mode FROM plans WHERE plan_id = ?", [plan_id])[0]  # type: ignore[index]
        if decision == APPROVED and mode == "live":
            in_window = pending.filter(pl.col("in_freeze_window")).get_column("order_id").to_list()
            _release(con, plan_id, f"{plan_id}-a{entry.seq}", in_window, now)
    return ids


def pending_batches(con: duckdb.DuckDBPyConnection) -> list[str]:
    rows = con.execute(
        """SELECT DISTINCT batch_id FROM released_orders
           WHERE batch_id NOT IN (SELECT batch_id FROM outbox_deliveries) ORDER BY batch_id"""
    ).fetchall()
    return [r[0] for r in rows]


def _json_default(value: object) -> str:
    if isinstance(value, date | datetime):
        return value.isoformat()
    raise TypeError(type(value).__name__)


def deliver_outbox(con: duckdb.DuckDBPyConnection, outbox: Path, now: datetime) -> list[Path]:
    """Write every released-but-undelivered batch as CSV and JSON, then record the delivery.

    Files are named by batch, so a rerun after a crash rewrites the same names with the same
    content: an adapter reading the outbox sees each order once.
    """
    outbox.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for batch in pending_batches(con):
        orders = query_frame(
            con,
            f"""SELECT {', '.join('o.' + c for c in OUTBOX_COLUMNS)} FROM released_orders r
                JOIN transfer_orders o ON o.order_id = r.order_id AND o.plan_id = r.plan_id
                WHERE r.batch_id = ? ORDER BY o.ship_date, o.order_id""",
            [batch],
        )
        csv_path, json_path = outbox / f"{batch}.csv", outbox / f"{batch}.json"
        atomic_write_bytes(csv_path, orders.write_csv().encode())
        atomic_write_bytes(
            json_path,
            json.dumps({"batch_id": batch, "orders": orders.to_dicts()}, default=_json_default, indent=1).encode(),
        )
        crash_point("outbox_after_files")
        with transaction(con):
            con.execute(
                "INSERT INTO outbox_deliveries VALUES (?, ?, ?)",
                [batch, json.dumps([csv_path.name, json_path.name]), now],
            )
        written += [csv_path, json_path]
    return written


def record_cycle(
    con: duckdb.DuckDBPyConnection, run_id: str, as_of: datetime, started: datetime, finished: datetime,
    outcome: str, plan_id: str | None, reason: str | None,
) -> None:
    con.execute(
        "INSERT INTO cycle_runs VALUES (?, ?, ?, ?, ?, ?, ?)",
        [run_id, as_of, started, finished, outcome, plan_id, reason],
    )
