"""The planning cycle end to end: real Prefect API, DuckDB file, MLflow store, HiGHS."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest
import yaml

from ballast.flows.planning_cycle import CycleParams, planning_cycle
from ballast.io.landing import land_frame
from ballast.io.plans import verify_audit
from ballast.io.warehouse import open_warehouse
from ballast.settings import Settings
from ballast.tasks.cycle import CycleBlocked
from tests import factories as f

AS_OF = f.AS_OF + timedelta(minutes=5)


def _deliver_network(as_of=f.AS_OF) -> None:
    s = Settings()
    for name, frame in f.network(as_of).items():
        land_frame(frame, s.inbox_dir, name, as_of)


def _releasing_policy(home: Path) -> Path:
    """The default policy with approvals relaxed and a 7-day freeze window, so orders are released."""
    doc = yaml.safe_load(Settings().policy_path.read_text())
    doc["freeze_window_days"] = 7
    doc["approval"].update({"cross_border": False, "new_lane": False, "share_of_site_stock_above": 1.0})
    path = home / "policies" / "default.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc))
    return path


def _count(con, table: str) -> int:
    return con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]  # noqa: S608 - fixed names


@pytest.mark.slow
def test_cycle_publishes_a_plan_with_lineage_and_a_rerun_creates_nothing(prefect_harness, ballast_home):
    import mlflow

    _releasing_policy(ballast_home)
    _deliver_network()
    first = planning_cycle(CycleParams(as_of=AS_OF))
    assert first.created and first.orders > 0 and first.released > 0
    assert first.report is not None and first.report.exists()
    html = first.report.read_text()
    assert "Projected stock" in html and "data:image/png;base64" in html and first.plan_id in html
    s = Settings()
    with open_warehouse(s.db_path, read_only=True) as con:
        counts = {t: _count(con, t) for t in ("plans", "transfer_orders", "released_orders", "audit_log")}
        assert counts["plans"] == 1 and counts["transfer_orders"] == first.orders
        assert verify_audit(con) == []
    # the outbox holds each released order once, as CSV and JSON
    csv = pl.read_csv(s.outbox_dir / f"{first.plan_id}.csv")
    assert csv.height == first.released and csv.get_column("order_id").n_unique() == csv.height
    assert (s.outbox_dir / f"{first.plan_id}.json").exists()
    # MLflow: one run for the plan with its inputs, tags, metrics and artifacts
    mlflow.set_tracking_uri(s.tracking_uri)
    run = mlflow.get_run(first.mlflow_run_id)
    assert run.data.tags["plan_id"] == first.plan_id
    assert {"inventory", "demand", "lanes", "sites", "items"} <= {d.dataset.name for d in run.inputs.dataset_inputs}
    assert run.data.params["policy_version"] == "2026.12.1"
    assert 0.0 <= run.data.metrics["expected_fill_rate"] <= 1.0
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(first.mlflow_run_id)}
    assert {"plan", "policy", "report"} <= artifacts
    # Prefect UI: a markdown summary and a table of the largest orders
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    keys = [f"plan-{first.plan_id.lower()}", f"plan-{first.plan_id.lower()}-orders"]
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=keys)))
    assert sorted(a.type for a in found) == ["markdown", "table"]

    # when: the same cycle again
    second = planning_cycle(CycleParams(as_of=AS_OF))
    # then: nothing new
    assert not second.created and second.plan_id == first.plan_id
    with open_warehouse(s.db_path, read_only=True) as con:
        assert {t: _count(con, t) for t in counts} == counts
        outcomes = [r[0] for r in con.execute("SELECT outcome FROM cycle_runs ORDER BY started_at").fetchall()]
    assert outcomes == ["published", "unchanged"]


@pytest.mark.slow
def test_stale_data_blocks_the_cycle_and_keeps_the_previous_plan(prefect_harness, ballast_home):
    _deliver_network()
    planning_cycle(CycleParams(as_of=AS_OF))
    later = f.AS_OF + timedelta(hours=30)  # no new inventory snapshot for 30 h: beyond the 6 h budget
    state = planning_cycle(CycleParams(as_of=later), return_state=True)
    assert state.is_failed()
    with pytest.raises(CycleBlocked, match=r"inventory: newest good snapshot .* beyond the 6 h staleness budget"):
        state.result()
    with open_warehouse(Settings().db_path, read_only=True) as con:
        assert _count(con, "plans") == 1
        assert con.execute("SELECT outcome FROM cycle_runs ORDER BY started_at DESC LIMIT 1").fetchall() == [("blocked",)]
        actions = [r[0] for r in con.execute("SELECT action FROM audit_log ORDER BY seq").fetchall()]
    assert actions == ["publish_plan", "cycle_blocked"]


@pytest.mark.slow
def test_a_refit_over_its_budget_is_put_off_for_a_day_at_most(prefect_harness, ballast_home):
    """Every refit overruns a 0.001 s forecast budget: the cycle a day later plans on the cached run and
    says so; the cycle two days later (the run twice the 24 h maximum age) refits anyway. A cycle told
    not to defer slow refits (the twin's) refits the day after that as well."""
    doc = yaml.safe_load(Settings().policy_path.read_text())
    doc["latency_budgets_seconds"]["forecast"] = 0.001
    path = ballast_home / "policies" / "default.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc))
    runs = []
    for day in range(4):
        as_of = f.AS_OF + timedelta(days=day)
        _deliver_network(as_of)
        planning_cycle(CycleParams(as_of=as_of + timedelta(minutes=5), defer_slow_refits=day < 3))
        with open_warehouse(Settings().db_path, read_only=True) as con:
            runs.append(con.execute(
                "SELECT forecast_run_id, degraded FROM plans ORDER BY as_of DESC LIMIT 1").fetchall()[0])
    (first, _), (second, skipped), (third, refitted), (fourth, not_deferred) = runs
    assert second == first and "planned on cached run " + first in skipped
    assert third != first and f"but cached run {first} is 48 h old, over twice the 24 h maximum age" in refitted
    assert "refitted anyway" in refitted
    # day 3: the run of day 2 is 24 h old and overran the budget too, yet the cycle refits
    assert fourth != third and "cached run" not in not_deferred
    assert "over its 0 s budget" in not_deferred  # the overrun itself is still said


def _run_cycle_process(home: Path, crash_at: str | None) -> tuple[int, str]:
    """`ballast run` in its own process group; a crash leaves Prefect's API server orphaned, so
    the whole group is killed afterwards (and output goes to a file, not a pipe it would hold)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BALLAST_CRASH")}
    env["BALLAST_HOME"] = str(home)
    env["PREFECT_HOME"] = str(home / ".prefect")  # its own ephemeral API database, as a user's would be
    env["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "300"  # a busy 2-core CI machine
    if crash_at:
        env["BALLAST_CRASH_AT"] = crash_at
    log = home / f"cycle-{crash_at or 'rerun'}.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ballast.cli", "run", "--now", AS_OF.strftime("%Y-%m-%dT%H:%M:%SZ")],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            code = proc.wait(timeout=600)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
    return code, log.read_text()[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize("crash_at", ["publish_before_commit", "publish_after_commit"])
def test_killed_during_publish_then_rerun_leaves_exactly_one_copy_of_every_order(ballast_home, crash_at):
    _releasing_policy(ballast_home)
    _deliver_network()
    code, output = _run_cycle_process(ballast_home, crash_at)
    assert code == 137, output
    s = Settings()
    with open_warehouse(s.db_path, read_only=True) as con:
        plans_after_crash = _count(con, "plans")
    assert plans_after_crash == (1 if crash_at == "publish_after_commit" else 0)
    code, output = _run_cycle_process(ballast_home, None)
    assert code == 0, output
    with open_warehouse(s.db_path, read_only=True) as con:
        assert _count(con, "plans") == 1
        released = {r[0] for r in con.execute("SELECT order_id FROM released_orders").fetchall()}
        assert len(released) == _count(con, "released_orders") > 0
        assert verify_audit(con) == []
    delivered = pl.concat([pl.read_csv(p) for p in s.outbox_dir.glob("*.csv")])
    assert sorted(delivered.get_column("order_id").to_list()) == sorted(released)
