"""The MLflow store unavailable: the cycle fails before it writes a plan, quickly and clearly.

The documented choice (README, "Plans, approvals and the outbox"): lineage is never recorded
after the fact, so a cycle that cannot open its MLflow run publishes nothing — no plan, order,
release, audit entry, report or outbox file — and the next cycle with the store back publishes.
"""

from __future__ import annotations

import socket
import time

import mlflow
import pytest

from ballast.flows.planning_cycle import CycleParams, planning_cycle
from ballast.io.tracking import TrackingUnavailable
from ballast.io.warehouse import open_warehouse
from ballast.settings import Settings
from tests.faults.scenario import T0, deliver_inventory, deliver_network, write_policy
from tests.faults.warehouse_checks import consistency_problems, outbox_problems

MARTS = ("plans", "transfer_orders", "released_orders", "outbox_deliveries", "decisions", "audit_log")
SECRET = "s3cret-token-8e41"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _state(settings: Settings) -> dict:
    with open_warehouse(settings.db_path, read_only=True) as con:
        counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in MARTS}  # noqa: S608
    files = sorted(
        p.relative_to(settings.home) for d in (settings.outbox_dir, settings.reports_dir) for p in d.rglob("*")
    )
    return {"counts": counts, "files": files}


@pytest.mark.slow
@pytest.mark.parametrize("store", ["http_closed_port", "sqlite_unwritable"])
def test_cycle_without_its_mlflow_store_publishes_nothing_then_recovers(
    prefect_harness, ballast_home, monkeypatch, store
):
    # given: a published first plan (forecasts fitted and cached) and a new WMS snapshot
    write_policy(ballast_home)
    settings = Settings()
    deliver_network(settings.inbox_dir)
    first = planning_cycle(CycleParams(as_of=T0))
    assert first.created and first.released > 0
    before = _state(settings)
    as_of = deliver_inventory(settings.inbox_dir, 1)

    # when: the tracking store cannot be reached (a server that is down) or written (a bad path)
    uri = (
        f"http://ballast:{SECRET}@127.0.0.1:{closed_port()}"
        if store == "http_closed_port"
        else "sqlite:////proc/ballast-no-such-dir/mlflow.db"
    )
    monkeypatch.setenv("BALLAST_MLFLOW_TRACKING_URI", uri)
    started = time.monotonic()
    state = planning_cycle(CycleParams(as_of=as_of), return_state=True)
    seconds = time.monotonic() - started

    # then: it fails fast, says why, and the plan marts, reports and outbox are exactly as before
    assert state.is_failed()
    with pytest.raises(TrackingUnavailable, match=r"cannot start an MLflow run in .*nothing was written") as err:
        state.result()
    assert SECRET not in str(err.value) and (store != "http_closed_port" or "http://***@127.0.0.1" in str(err.value))
    assert seconds < 60, f"the cycle took {seconds:.0f} s to give up on MLflow"
    assert _state(settings) == before

    # and: with the store back, the next cycle publishes the plan and its lineage
    monkeypatch.delenv("BALLAST_MLFLOW_TRACKING_URI")
    second = planning_cycle(CycleParams(as_of=as_of))
    assert second.created and second.plan_id != first.plan_id
    mlflow.set_tracking_uri(settings.tracking_uri)
    assert mlflow.get_run(second.mlflow_run_id).data.tags["plan_id"] == second.plan_id
    with open_warehouse(settings.db_path, read_only=True) as con:
        assert consistency_problems(con) == [] and outbox_problems(con, settings.outbox_dir) == []
    print(f"{store}: failed after {seconds:.1f} s")  # noqa: T201
