"""`ballast backfill`: registered on the command line, and bad arguments fail at once with a clear message."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from ballast.cli import app

runner = CliRunner()


def test_backfill_is_a_command_of_ballast():
    result = runner.invoke(app, ["backfill", "--help"])
    assert result.exit_code == 0
    for option in ("--start", "--end", "--every", "--policy", "--force", "--dask", "--workers"):
        assert option in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--start", "2026-11-16T00:00Z", "--end", "2026-11-17T00:00Z", "--every", "1w"], "15m, 1h or 1d"),
        (["--start", "2026-11-16T00:00", "--end", "2026-11-17T00:00Z"], "no time zone"),
        (["--start", "yesterday", "--end", "2026-11-17T00:00Z"], "not an ISO-8601 time"),
        (["--start", "2026-11-17T00:00Z", "--end", "2026-11-16T00:00Z"], "before start"),
        (["--start", "2026-11-16T00:00Z", "--end", "2026-11-17T00:00Z", "--policy", "nope.yaml"], "does not exist"),
        (["--start", "2026-11-16T00:00Z", "--end", "2026-11-17T00:00Z", "--workers", "0"], "--workers"),
    ],
)
def test_bad_arguments_exit_2_naming_the_problem(args, message, ballast_home):
    result = runner.invoke(app, ["backfill", *args])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
    assert not (ballast_home / "data").exists()  # nothing was opened or written
