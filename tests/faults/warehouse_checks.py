"""What must hold in the warehouse and the outbox after any crash (shared by the fault tests)."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import polars as pl

from ballast.io.plans import verify_audit
from ballast.models.contract import EXTRACTS


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> list[tuple]:
    return con.execute(sql, params or []).fetchall()


def consistency_problems(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Every way a crash could leave the warehouse half-written, as sentences (empty: consistent)."""
    problems = [f"audit: {p}" for p in verify_audit(con)]
    # a plan is all or nothing: its row, all its orders, its releases and its audit entry
    published = {
        subject: json.loads(payload)
        for subject, payload in _rows(con, "SELECT subject, payload FROM audit_log WHERE action = 'publish_plan'")
    }
    plans = {r[0] for r in _rows(con, "SELECT plan_id FROM plans")}
    if set(published) != plans:
        problems.append(f"plans without audit entry or audit entries without plan: {sorted(set(published) ^ plans)}")
    orders = dict(_rows(con, "SELECT plan_id, count(*) FROM transfer_orders GROUP BY plan_id"))
    released = dict(_rows(con, "SELECT batch_id, count(*) FROM released_orders GROUP BY batch_id"))
    for plan_id, payload in published.items():
        if orders.get(plan_id, 0) != payload["orders"]:
            problems.append(f"plan {plan_id}: {orders.get(plan_id, 0)} orders stored, {payload['orders']} published")
        if released.get(plan_id, 0) != payload["released"]:
            problems.append(
                f"plan {plan_id}: {released.get(plan_id, 0)} releases stored, {payload['released']} published"
            )
    orphans = set(orders) - plans
    if orphans:
        problems.append(f"orders of unknown plans {sorted(orphans)}")
    loose = _rows(
        con,
        """SELECT r.order_id FROM released_orders r LEFT JOIN transfer_orders o
           ON o.order_id = r.order_id AND o.plan_id = r.plan_id WHERE o.order_id IS NULL""",
    )
    if loose:
        problems.append(f"released orders without an order row: {loose[:5]}")
    stray = _rows(
        con, "SELECT batch_id FROM outbox_deliveries WHERE batch_id NOT IN (SELECT batch_id FROM released_orders)"
    )
    if stray:
        problems.append(f"outbox deliveries of unknown batches: {stray}")
    # a landed file is all or nothing: its ingest row and every raw row; staged rows count only with a gate result
    landed = dict(_rows(con, "SELECT file_id, rows_read FROM ingest_files WHERE status = 'landed'"))
    gated = dict(_rows(con, "SELECT file_id, rows_staged FROM gate_results"))
    for name in EXTRACTS:  # table names come from the contract, not from data
        raw = dict(_rows(con, f"SELECT _file_id, count(*) FROM raw_{name} GROUP BY 1"))  # noqa: S608
        for file_id, n in raw.items():
            if landed.get(file_id) != n:
                problems.append(f"raw_{name}: file {file_id} has {n} raw rows, ingest_files says {landed.get(file_id)}")
        staged = dict(_rows(con, f"SELECT _file_id, count(*) FROM stg_{name} GROUP BY 1"))  # noqa: S608
        for file_id, n in staged.items():
            if file_id not in gated:
                problems.append(f"stg_{name}: {n} staged rows of file {file_id} without a gate result")
            elif gated[file_id] != n:
                problems.append(
                    f"stg_{name}: file {file_id} has {n} staged rows, its gate result says {gated[file_id]}"
                )
    return problems


def outbox_problems(con: duckdb.DuckDBPyConnection, outbox: Path) -> list[str]:
    """Every released order must be in the outbox exactly once (CSV and JSON), and every batch delivered."""
    problems: list[str] = []
    released = sorted(r[0] for r in _rows(con, "SELECT order_id FROM released_orders"))
    undelivered = _rows(
        con,
        "SELECT DISTINCT batch_id FROM released_orders WHERE batch_id NOT IN (SELECT batch_id FROM outbox_deliveries)",
    )
    if undelivered:
        problems.append(f"batches never delivered: {undelivered}")
    csv_ids = sorted(
        i for p in outbox.glob("*.csv") for i in pl.read_csv(p, schema_overrides={"order_id": pl.String})["order_id"]
    )
    json_ids = sorted(o["order_id"] for p in outbox.glob("*.json") for o in json.loads(p.read_text())["orders"])
    for kind, ids in (("csv", csv_ids), ("json", json_ids)):
        if ids != released:
            dupes = sorted({i for i in ids if ids.count(i) > 1})
            problems.append(
                f"outbox {kind}: {len(ids)} order lines for {len(released)} released orders "
                f"(duplicated: {dupes[:5]}, missing: {sorted(set(released) - set(ids))[:5]})"
            )
    return problems
