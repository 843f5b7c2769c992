"""A challenger in shadow beside the champion in real planning cycles (Prefect, DuckDB, MLflow, HiGHS)."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from ballast.flows.planning_cycle import CycleParams, planning_cycle
from ballast.io import rollout
from ballast.io.landing import land_frame
from ballast.io.plans import verify_audit
from ballast.io.warehouse import open_warehouse, query_frame
from ballast.settings import Settings
from tests import factories as f

AS_OF = f.AS_OF + timedelta(minutes=5)


def _deliver_network(as_of=f.AS_OF) -> None:
    s = Settings()
    for name, frame in f.network(as_of).items():
        land_frame(frame, s.inbox_dir, name, as_of)


def _policy(path: Path, **changes: object) -> Path:
    """The default policy with approvals relaxed and a 7-day freeze window (orders get released), plus changes."""
    doc = yaml.safe_load(Settings().policy_path.read_text())
    doc["freeze_window_days"] = 7
    doc["approval"].update({"cross_border": False, "new_lane": False, "share_of_site_stock_above": 1.0})
    doc.update(changes)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc))
    return path


def _rows(con, sql: str, params: list | None = None) -> list[tuple]:
    return con.execute(sql, params or []).fetchall()


@pytest.mark.slow
def test_challenger_plans_in_shadow_beside_the_champion_and_is_compared_in_its_report(prefect_harness, ballast_home):
    import mlflow

    from ballast.io import tracking
    from ballast.models.forecast import ForecastConfig

    # given: a champion policy that releases orders and a challenger that wants approval for every order
    _policy(ballast_home / "policies" / "default.yaml")
    challenger_file = _policy(
        ballast_home / "challenger.yaml", version="2026.12.1-strict",
        approval={"order_value_above": 0.0, "cross_border": True, "new_lane": True, "share_of_site_stock_above": 0.5,
                  "planners": ["ana.planner", "ben.planner"]},
    )
    _deliver_network()
    s = Settings()
    with open_warehouse(s.db_path) as con:
        rollout.set_challenger(con, by="ana.planner", reason="stricter approvals", policy_path=challenger_file)

    # when: a live cycle
    champion = planning_cycle(CycleParams(as_of=AS_OF))

    # then: the champion is published and released as usual ...
    assert champion.created and champion.released > 0
    with open_warehouse(s.db_path, read_only=True) as con:
        links = query_frame(con, "SELECT * FROM challenger_plans")
        assert links.height == 1
        link = links.row(0, named=True)
        assert link["champion_plan_id"] == champion.plan_id and link["status"] == "published"
        shadow_id = link["plan_id"]
        plan = query_frame(con, "SELECT * FROM plans WHERE plan_id = ?", [shadow_id]).row(0, named=True)
        # ... the challenger's plan is recorded in shadow, linked to the champion, never released
        assert plan["mode"] == "shadow" and plan["previous_plan_id"] == champion.plan_id
        assert plan["policy_version"] == "2026.12.1-strict"
        assert json.loads(plan["solve"])["challenger_of"] == champion.plan_id
        shadow_orders = _rows(con, "SELECT count(*), count(*) FILTER (approval_status = 'needs_approval') "
                                   "FROM transfer_orders WHERE plan_id = ?", [shadow_id])[0]
        assert shadow_orders[0] > 0 and shadow_orders[1] == shadow_orders[0]  # its policy wants approval for all
        assert _rows(con, "SELECT count(*) FROM released_orders WHERE plan_id = ?", [shadow_id]) == [(0,)]
        assert verify_audit(con) == []
    # never in the outbox: only the champion's batch is there
    assert sorted(p.name for p in s.outbox_dir.iterdir()) == [f"{champion.plan_id}.csv", f"{champion.plan_id}.json"]
    assert shadow_id not in (s.outbox_dir / f"{champion.plan_id}.csv").read_text()
    # the champion's report compares the two side by side
    html = champion.report.read_text()
    assert f"Challenger in shadow: plan {shadow_id}" in html
    for label in ("expected fill rate", "transport cost", "objective", "transfers", "orders needing approval"):
        assert f"<td>{label}</td>" in html
    assert f"{shadow_orders[0]}</td>" in html  # the challenger's orders needing approval appear in its column
    # lineage: its own MLflow run, tagged as a challenger of the champion plan
    mlflow.set_tracking_uri(s.tracking_uri)
    run = mlflow.get_run(plan["mlflow_run_id"])
    assert run.data.tags["challenger"] == "true" and run.data.tags["challenger_of"] == champion.plan_id
    assert run.data.tags["mode"] == "shadow"
    assert mlflow.get_run(champion.mlflow_run_id).data.tags["challenger_plan_id"] == shadow_id

    # given: a challenger forecaster version as well (another fit window), registered in the model registry
    with tracking.start_run(s, kind="forecast", run_name="challenger forecaster"):
        name, version = tracking.register_forecaster(s, asdict(ForecastConfig(fit_window_days=21)), "window-21",
                                                     promote=False)
    with open_warehouse(s.db_path) as con:
        rollout.set_challenger(con, by="ana.planner", reason="shorter fit window", forecaster=(name, version))
    # when: the next cycle (the released orders are new inputs)
    later = planning_cycle(CycleParams(as_of=AS_OF + timedelta(minutes=15)))
    assert later.created
    with open_warehouse(s.db_path, read_only=True) as con:
        link = query_frame(con, "SELECT * FROM challenger_plans WHERE champion_plan_id = ?", [later.plan_id])
        assert link.get_column("status").to_list() == ["published"]
        plan = query_frame(con, "SELECT * FROM plans WHERE plan_id = ?", [link["plan_id"][0]]).row(0, named=True)
        assert plan["forecaster"] == f"{name}/{version}" and plan["policy_version"] == "2026.12.1-strict"
        assert _rows(con, "SELECT count(*) FROM released_orders WHERE plan_id = ?", [plan["plan_id"]]) == [(0,)]
        # the champion still plans on the champion's forecasts
        champion_plan = query_frame(con, "SELECT forecaster FROM plans WHERE plan_id = ?", [later.plan_id])
        assert champion_plan["forecaster"][0] != plan["forecaster"]
    assert f"forecaster {name}/{version}" in later.report.read_text()


@pytest.mark.slow
def test_a_failing_challenger_leaves_the_champion_published(prefect_harness, ballast_home):
    _policy(ballast_home / "policies" / "default.yaml")
    _deliver_network()
    s = Settings()
    with open_warehouse(s.db_path) as con:
        # a forecaster version the model registry does not have: the challenger cannot forecast
        rollout.set_challenger(con, by="ana.planner", reason="typo", forecaster=("ballast-forecaster", "999"))

    state = planning_cycle(CycleParams(as_of=AS_OF), return_state=True)

    assert state.is_completed()
    champion = state.result()
    assert champion.created and champion.released > 0
    with open_warehouse(s.db_path, read_only=True) as con:
        link = query_frame(con, "SELECT * FROM challenger_plans").row(0, named=True)
        assert link["champion_plan_id"] == champion.plan_id and link["status"] == "failed" and link["plan_id"] is None
        assert "999" in link["note"]
        assert _rows(con, "SELECT mode FROM plans") == [("live",)]
        assert _rows(con, "SELECT outcome FROM cycle_runs") == [("published",)]
    assert (s.outbox_dir / f"{champion.plan_id}.csv").exists()
    assert "The challenger did not produce a plan" in champion.report.read_text()


@pytest.mark.slow
def test_a_promoted_policy_is_what_the_live_cycle_plans_with(prefect_harness, ballast_home):
    from ballast.models.policy import load_policy

    _policy(ballast_home / "policies" / "default.yaml")
    promoted = _policy(ballast_home / "promoted.yaml", version="2026.12.9", cooldown_days=2)
    promoted_sha = load_policy(promoted)[1]
    _deliver_network()
    s = Settings()
    with open_warehouse(s.db_path) as con:
        rollout.set_challenger(con, by="ana.planner", reason="shorter cooldown", policy_path=promoted)
        rollout.promote(con, s, by="ben.planner", reason="won in the twin")
    promoted.unlink()  # the registry, not the file, is what the cycle plans with

    outcome = planning_cycle(CycleParams(as_of=AS_OF))

    with open_warehouse(s.db_path, read_only=True) as con:
        plan = query_frame(con, "SELECT policy_version, policy_sha256 FROM plans WHERE plan_id = ?", [outcome.plan_id])
        assert plan.row(0) == ("2026.12.9", promoted_sha)
        assert query_frame(con, "SELECT * FROM challenger_plans").is_empty()  # promoted: no challenger left
