"""Approval roles: only a planner named in the policy decides, never the policy's author, and a
refused decision changes nothing (no decision row, no release, no outbox file, no audit entry)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from ballast.cli import app
from ballast.io.plans import ORDER_COLUMNS, PlanRecord, publish, verify_audit
from ballast.io.warehouse import open_warehouse
from ballast.settings import Settings

NOW = datetime(2026, 11, 23, 6, 5, tzinfo=UTC)
PLAN = "Psecurity000001"


def _policy(home, planners: list[str]) -> None:
    doc = yaml.safe_load(Settings().policy_path.read_text())
    doc["approval"]["planners"] = planners
    path = home / "policies" / "default.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc))


def _publish_plan_awaiting_approval() -> list[str]:
    day = date(2026, 11, 23)
    rows = [
        {
            "order_id": f"O{i}",
            "kind": "transfer",
            "origin": "DC-DE-01",
            "destination": f"HUB-DE-0{i}",
            "mode": "truck",
            "sku": "00123",
            "ship_date": day,
            "arrive_date": day + timedelta(days=1),
            "qty": 30.0,
            "unit_cost": 10.0,
            "transport_cost": 6.0,
            "value": 300.0,
            "round": 1,
            "in_freeze_window": True,
            "approval_status": "needs_approval",
            "approval_reasons": '["first transfer ever"]',
            "explanation": "covers a deficit",
            "reason": "{}",
        }
        for i in (1, 2)
    ]
    orders = pl.DataFrame(rows).with_columns(pl.lit(PLAN).alias("plan_id")).select(ORDER_COLUMNS)
    record = PlanRecord(PLAN, NOW, "live", "2026.11.1", "0" * 64, "test", None, None, {}, {"rung": "mip"}, {}, [])
    with open_warehouse(Settings().db_path) as con:
        assert publish(con, record, orders, NOW) == []
    return ["O1", "O2"]


def _marts() -> dict:
    with open_warehouse(Settings().db_path, read_only=True) as con:
        return {
            t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0]  # noqa: S608 - fixed names
            for t in ("decisions", "released_orders", "outbox_deliveries", "audit_log")
        }


def _decide(command: str, by: str, *extra: str):
    return CliRunner().invoke(app, [command, PLAN, "--by", by, "--reason", "looks right", *extra])


@pytest.mark.parametrize(
    ("by", "why"),
    [
        ("mallory", "does not hold the planner role"),
        ("Ana.Planner", "does not hold the planner role"),  # names match exactly, not case-folded
        ("ana.planner ", "does not hold the planner role"),
        ("policy-office", "wrote policy 2026.12.1 and may not approve"),  # the maker is a planner too
    ],
)
@pytest.mark.parametrize("command", ["approve", "reject"])
def test_refused_decisions_change_nothing(ballast_home, by, why, command):
    _policy(ballast_home, ["ana.planner", "policy-office"])
    _publish_plan_awaiting_approval()
    before = _marts()
    result = _decide(command, by)
    assert result.exit_code == 1, result.output
    assert "refused" in result.output and why in " ".join(result.output.split())
    assert _marts() == before
    assert not list(Settings().outbox_dir.glob("*"))


def test_a_planner_approves_once_and_the_decision_is_audited(ballast_home):
    _policy(ballast_home, ["ana.planner", "ben.planner"])
    _publish_plan_awaiting_approval()
    result = _decide("approve", "ana.planner", "--order", "O1")
    assert result.exit_code == 0, result.output
    # the same order cannot be decided again, by anyone
    again = _decide("reject", "ben.planner", "--order", "O1")
    assert again.exit_code == 1 and "not awaiting approval" in again.output
    with open_warehouse(Settings().db_path, read_only=True) as con:
        assert con.execute("SELECT order_id, decision, decided_by FROM decisions").fetchall() == [
            ("O1", "approved", "ana.planner")
        ]
        assert con.execute("SELECT order_id FROM released_orders").fetchall() == [("O1",)]
        actions = con.execute("SELECT actor, action FROM audit_log ORDER BY seq").fetchall()
        assert actions == [("ballast", "publish_plan"), ("ana.planner", "approved")]
        assert verify_audit(con) == []
    assert len(list(Settings().outbox_dir.glob("*.csv"))) == 1


def test_no_planners_means_nobody_may_approve(ballast_home):
    _policy(ballast_home, [])
    _publish_plan_awaiting_approval()
    result = _decide("approve", "ana.planner")
    assert result.exit_code == 1 and "planners: none" in result.output
