"""`ballast challenger`, `promote`, `rollback`, `champion` as a planner runs them, on a real warehouse file."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from ballast.cli import app
from ballast.io.plans import audit_entries, verify_audit
from ballast.io.warehouse import open_warehouse
from ballast.settings import Settings

runner = CliRunner()


def _challenger_file(folder: Path) -> Path:
    doc = yaml.safe_load(Settings().policy_path.read_text())
    doc.update({"version": "2026.12.1", "cooldown_days": 3})
    path = folder / "challenger.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _ok(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.output


def _refused(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert "refused" in result.output
    return result.output


def test_promote_and_rollback_switch_the_policy_in_force_with_audit_entries(ballast_home):
    assert "2026.12.1" in _ok(["champion"]) and "nothing promoted yet" in _ok(["champion"])
    assert "no challenger to promote" in _refused(["promote", "--by", "ana.planner", "--reason", "x"])

    path = _challenger_file(ballast_home)
    out = _ok(["challenger", "set", "--policy", str(path), "--by", "carla.analyst", "--reason", "shorter cooldown"])
    assert "policy 2026.12.1" in out
    assert "policy 2026.12.1" in _ok(["challenger", "show"])

    # only planners promote or roll back
    assert "does not hold the planner role" in _refused(["promote", "--by", "carla.analyst", "--reason", "mine"])
    out = _ok(["promote", "--by", "ana.planner", "--reason", "lower cost in the twin"])
    assert "promoted policy 2026.12.1" in out
    champion = _ok(["champion"])
    assert "policy in force: 2026.12.1" in champion and "lower cost in the twin" in champion
    assert "no challenger registered" in _ok(["challenger", "show"])

    assert "does not hold the planner role" in _refused(["rollback", "--by", "mallory", "--reason", "x"])
    assert "rolled back policy to 2026.12.1" in _ok(["rollback", "--by", "ben.planner", "--reason", "fill rate fell"])
    assert "policy in force: 2026.12.1" in _ok(["champion"])
    assert "no earlier policy champion" in _refused(["rollback", "--by", "ben.planner", "--reason", "again"])

    with open_warehouse(Settings().db_path, read_only=True) as con:
        actions = [(e.actor, e.action) for e in audit_entries(con)]
        assert verify_audit(con) == []
    assert actions == [
        ("carla.analyst", "rollout_set_challenger"), ("ana.planner", "rollout_baseline"),
        ("ana.planner", "rollout_promote"), ("ana.planner", "rollout_clear_challenger"),
        ("ben.planner", "rollout_rollback"),
    ]
    assert "audit log intact: 5 entries" in _ok(["audit", "verify"])


def test_bad_challengers_are_refused_with_a_reason(ballast_home):
    assert "name a challenger" in _refused(["challenger", "set", "--by", "ana.planner", "--reason", "x"])
    assert "no policy file" in _refused(
        ["challenger", "set", "--policy", str(ballast_home / "missing.yaml"), "--by", "ana.planner", "--reason", "x"]
    )
    bad = ballast_home / "bad.yaml"
    bad.write_text("version: '1'\nauthor: a\nhorizon_days: 0\n")
    args = ["challenger", "set", "--policy", str(bad), "--by", "ana.planner", "--reason", "x"]
    assert "horizon_days" in _refused(args)
    assert "not in the model registry" in _refused(
        ["challenger", "set", "--forecaster", "42", "--by", "ana.planner", "--reason", "x"]
    )
    assert "no challenger is registered" in _refused(["challenger", "clear", "--by", "ana.planner", "--reason", "x"])
