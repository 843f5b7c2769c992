"""`ballast simulate` is registered and checks its arguments before simulating anything."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from ballast.cli import app

runner = CliRunner()


def test_simulate_is_a_command() -> None:
    result = runner.invoke(app, ["simulate", "--help"])
    assert result.exit_code == 0
    assert "--scenario" in result.output and "--seeds" in result.output


def test_unknown_scenario_and_seed_conflict_are_refused(ballast_home: Path) -> None:
    result = runner.invoke(app, ["simulate", "--scenario", "meteor"])
    assert result.exit_code == 2 and "unknown scenario 'meteor'" in result.output
    result = runner.invoke(app, ["simulate", "--seed", "3", "--seeds", "2"])
    assert result.exit_code == 2 and "not both" in result.output
    assert not (ballast_home / "simulations").exists()
