"""No secret reaches logs or artifacts. The secret that flows through ballast's own code is the
password in an MLflow server URI (`BALLAST_MLFLOW_TRACKING_URI=http://user:password@host`): MLflow
puts the whole URI in its error messages, and the CLI prints the store it used."""

from __future__ import annotations

import socket
import time

import pytest
from typer.testing import CliRunner

from ballast.cli import app
from ballast.io.tracking import redact
from ballast.settings import Settings
from tests.faults.scenario import T0, deliver_network, stamp

SECRET = "pw-7f3a9c-do-not-log"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _prefect_logs_since(started: float) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.sorting import LogSort
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()  # run logs reach the API in batches
    messages: list[str] = []
    for _ in range(20):
        with get_client(sync_client=True) as client:
            logs = client.read_logs(limit=200, sort=LogSort.TIMESTAMP_DESC)
        messages = [log.message for log in logs if log.timestamp.timestamp() >= started - 1]
        if messages:
            break
        time.sleep(0.5)
    return messages


def test_redact_masks_credentials_of_any_url():
    text = f"API request to http://ballast:{SECRET}@10.0.0.5:5000/api/2.0/x failed; see https://token@h/y and sqlite:///a.db"
    assert (
        redact(text)
        == "API request to http://***@10.0.0.5:5000/api/2.0/x failed; see https://***@h/y and sqlite:///a.db"
    )


@pytest.mark.slow
def test_a_credentialed_tracking_uri_never_reaches_output_logs_or_files(
    prefect_harness, ballast_home, monkeypatch, capfd
):
    # given: an MLflow server URI with a password, the server down
    monkeypatch.setenv("BALLAST_MLFLOW_TRACKING_URI", f"http://ballast:{SECRET}@127.0.0.1:{_closed_port()}")
    deliver_network(Settings().inbox_dir)
    started = time.time()
    # when: a cycle runs and fails on the store
    result = CliRunner().invoke(app, ["run", "--now", stamp(T0)])
    # then: the operator is told which store failed, without its password...
    assert result.exit_code == 1, result.output
    assert "not published" in result.output and "http://***@127.0.0.1" in result.output
    assert SECRET not in result.output
    # ...and the password is nowhere: console, Prefect's stored logs, or any file the cycle wrote
    captured = capfd.readouterr()
    assert SECRET not in captured.out and SECRET not in captured.err
    logs = _prefect_logs_since(started)
    assert logs and not [m for m in logs if SECRET in m]
    assert any("cannot start an MLflow run" in m for m in logs)
    files = [p for p in ballast_home.rglob("*") if p.is_file()]
    assert files and not [p for p in files if SECRET.encode() in p.read_bytes()]
