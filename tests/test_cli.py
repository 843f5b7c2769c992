"""The planner's commands, run as a user runs them (typer's runner) on a real warehouse file."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from ballast.cli import app
from ballast.io.plans import publish
from ballast.io.warehouse import open_warehouse
from ballast.settings import Settings
from tests.io.test_plans import _orders, _plan

runner = CliRunner()


@pytest.fixture
def published(ballast_home):
    with open_warehouse(Settings().db_path) as con:
        publish(con, _plan("P1"), _orders(), datetime(2026, 11, 23, 6, 5, tzinfo=UTC))
        publish(con, _plan("P2"), _orders().head(2), datetime(2026, 11, 23, 6, 20, tzinfo=UTC))
    return _orders()


def test_plans_list_show_and_diff(published):
    listed = runner.invoke(app, ["plans", "list"])
    assert listed.exit_code == 0, listed.output
    assert "P1" in listed.output and "P2" in listed.output
    shown = runner.invoke(app, ["plans", "show", "P1"])
    assert shown.exit_code == 0, shown.output
    assert "needs_approval" in shown.output and "auto_approved · released" in shown.output
    diff = runner.invoke(app, ["plans", "diff", "P1", "P2"])
    assert diff.exit_code == 0, diff.output
    assert "removed" in diff.output and "00456" in diff.output


def test_approval_is_maker_checker_and_audited(published):
    refused = runner.invoke(app, ["approve", "P1", "--by", "eve", "--reason", "x"])
    assert refused.exit_code == 1 and "does not hold the planner role" in refused.output
    order = published["order_id"][1]
    ok = runner.invoke(app, ["approve", "P1", "--by", "ana.planner", "--reason", "checked", "--order", order])
    assert ok.exit_code == 0, ok.output
    assert "approved 1 order(s) of plan P1 by ana.planner" in ok.output and "outbox" in ok.output
    again = runner.invoke(app, ["reject", "P1", "--by", "ben.planner", "--reason", "late", "--order", order])
    assert again.exit_code == 1 and "not awaiting approval" in again.output
    verified = runner.invoke(app, ["audit", "verify"])
    assert verified.exit_code == 0 and "audit log intact: 3 entries" in verified.output


def test_audit_verify_fails_on_a_tampered_log(published):
    with open_warehouse(Settings().db_path) as con:
        con.execute("UPDATE audit_log SET payload = '{}' WHERE seq = 1")
    result = runner.invoke(app, ["audit", "verify"])
    assert result.exit_code == 1 and "entry 1: content does not match its hash" in result.output


def test_lineage_names_the_plan_and_the_order(published):
    order = published["order_id"][0]
    result = runner.invoke(app, ["lineage", "P1", "--order", order])
    assert result.exit_code == 0, result.output
    assert f"order {order}" in result.output and "plan P1" in result.output and "policy t" in result.output
    missing = runner.invoke(app, ["lineage", "NOPE"])
    assert missing.exit_code == 1 and "no plan 'NOPE'" in missing.output
