"""Plan marts: one-transaction publish, approvals with maker-checker, outbox exactly once, audit chain."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from ballast.io.plans import (
    PlanRecord,
    decide_orders,
    deliver_outbox,
    order_status,
    planned_unreleased,
    publish,
    released_commitments,
    verify_audit,
)
from ballast.io.warehouse import open_warehouse
from ballast.models.explain import order_id
from ballast.models.governance import NotAllowed, check_approver
from ballast.models.policy import Policy, load_policy
from ballast.settings import Settings

NOW = datetime(2026, 11, 23, 6, 5, tzinfo=UTC)
DAY = date(2026, 11, 23)


def _orders() -> pl.DataFrame:
    rows = [
        ("transfer", "HUB-DE-02", "HUB-DE-01", "van", "00123", DAY, 30.0, True, "auto_approved"),
        ("transfer", "DC-DE-01", "HUB-DE-02", "truck", "00456", DAY, 40.0, True, "needs_approval"),
        ("transfer", "DC-DE-01", "HUB-DE-01", "truck", "00456", DAY + timedelta(days=3), 10.0, False, "auto_approved"),
    ]
    return pl.DataFrame(
        [
            {
                "order_id": order_id(sku, o, d, m, s), "kind": k, "origin": o, "destination": d, "mode": m, "sku": sku,
                "ship_date": s, "arrive_date": s + timedelta(days=1), "qty": q, "unit_cost": 10.0,
                "transport_cost": q * 0.2, "value": q * 10.0, "round": 1, "in_freeze_window": w,
                "approval_status": st, "approval_reasons": "[]", "explanation": "why", "reason": "{}",
            }
            for k, o, d, m, sku, s, q, w, st in rows
        ]
    )


def _plan(plan_id: str = "P1", mode: str = "live") -> PlanRecord:
    return PlanRecord(
        plan_id=plan_id, as_of=NOW - timedelta(minutes=5), mode=mode, policy_version="t", policy_sha256="x",
        code_version="0", forecast_run_id=None, forecaster=None, inputs={}, solve={"rung": "mip"}, kpis={}, degraded=[],
    )


@pytest.fixture
def con(ballast_home: Path):
    with open_warehouse(Settings().db_path) as c:
        yield c


@pytest.fixture
def policy() -> Policy:
    return load_policy(Settings().policy_path)[0]


def test_publish_releases_only_approved_orders_in_the_freeze_window(con: duckdb.DuckDBPyConnection):
    released = publish(con, _plan(), _orders(), NOW)
    assert released == [_orders()["order_id"][0]]
    assert released_commitments(con).get_column("order_id").to_list() == released


def test_outbox_gets_each_released_order_once_even_after_a_crash(con, ballast_home):
    publish(con, _plan(), _orders(), NOW)
    outbox = Settings().outbox_dir
    first = deliver_outbox(con, outbox, NOW)
    assert sorted(p.name for p in first) == ["P1.csv", "P1.json"]
    assert deliver_outbox(con, outbox, NOW) == []  # nothing new: nothing written twice
    assert pl.read_csv(outbox / "P1.csv").height == 1


def test_a_later_plan_never_releases_an_order_again(con):
    publish(con, _plan("P1"), _orders(), NOW)
    again = publish(con, _plan("P2"), _orders(), NOW + timedelta(minutes=15))
    assert again == []
    assert released_commitments(con).height == 1


def test_approval_releases_and_is_audited(con, policy):
    publish(con, _plan(), _orders(), NOW)
    check_approver("ana.planner", policy)
    decided = decide_orders(con, "P1", None, "approved", "ana.planner", "ok", NOW + timedelta(minutes=1))
    assert decided == [_orders()["order_id"][1]]
    status = order_status(con, "P1")
    assert status.filter(pl.col("order_id") == decided[0])["status"].to_list() == ["approved"]
    assert released_commitments(con).height == 2
    files = deliver_outbox(con, Settings().outbox_dir, NOW)
    assert sorted(p.name for p in files) == ["P1-a2.csv", "P1-a2.json", "P1.csv", "P1.json"]
    assert verify_audit(con) == []
    actions = [r[0] for r in con.execute("SELECT action FROM audit_log ORDER BY seq").fetchall()]
    assert actions == ["publish_plan", "approved"]


def test_maker_checker(policy):
    with pytest.raises(NotAllowed, match="planner role"):
        check_approver("eve", policy)
    author_as_planner = policy.model_copy(
        update={"approval": policy.approval.model_copy(update={"planners": (policy.author,)})}
    )
    with pytest.raises(NotAllowed, match="wrote policy"):
        check_approver(policy.author, author_as_planner)


def test_rejecting_an_order_that_is_not_pending_is_refused(con):
    publish(con, _plan(), _orders(), NOW)
    with pytest.raises(ValueError, match="not awaiting approval"):
        decide_orders(con, "P1", [_orders()["order_id"][0]], "rejected", "ana.planner", "no", NOW)


def test_edited_audit_row_is_detected(con):
    publish(con, _plan(), _orders(), NOW)
    decide_orders(con, "P1", None, "rejected", "ben.planner", "too far", NOW)
    assert verify_audit(con) == []
    con.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2")
    assert verify_audit(con) == ["entry 2: content does not match its hash (edited: rejected P1)"]
    con.execute("DELETE FROM audit_log WHERE seq = 1")
    assert any("expected sequence number 1" in p for p in verify_audit(con))


def test_backfill_plans_never_release(con):
    assert publish(con, _plan("PB", mode="backfill"), _orders(), NOW) == []
    assert deliver_outbox(con, Settings().outbox_dir, NOW) == []


def test_the_next_cycle_reads_what_the_previous_plan_meant_to_ship_and_did_not_release(con):
    publish(con, _plan("P1"), _orders(), NOW)  # releases today's auto-approved order only
    tomorrow = NOW + timedelta(days=1)
    plan_id, orders = planned_unreleased(con, "live", tomorrow)
    # today's two orders are past (one released, one still awaiting approval); day 3's is still planned
    assert plan_id == "P1"
    assert orders.select("origin", "destination", "ship_date", "qty").rows() == [
        ("DC-DE-01", "HUB-DE-01", DAY + timedelta(days=3), 10.0)
    ]
    # strictly before: a cycle never reads its own as-of's plan (a rerun sees what the first run saw)
    plan_id, orders = planned_unreleased(con, "live", NOW - timedelta(minutes=5))
    assert plan_id is None and orders.is_empty()
    assert planned_unreleased(con, "backfill", tomorrow)[0] is None  # modes do not mix
