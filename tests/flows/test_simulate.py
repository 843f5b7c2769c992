"""End to end: the simulate flow runs the real planning cycle on the simulator's extracts."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
import yaml

from ballast.models.twin import scenarios
from ballast.models.twin.config import DEFAULTS_PATH


@pytest.mark.slow
def test_simulate_three_days_with_a_wms_fault_on_day_two(
    ballast_home: Path, prefect_harness: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ballast.flows.simulate import SimulateParams, simulate
    from ballast.io.twin_store import SimulationHome, load_results

    # given a tiny twin (4 SKUs) and the data_fault scenario moved to day 2 of a 3-day run
    raw = yaml.safe_load(DEFAULTS_PATH.read_text())
    raw["network"] |= {"skus": 4, "history_days": 60}
    raw["baselines"] |= {"multipliers": [1.0], "review_days": [1], "training_seeds": [1001]}
    twin = tmp_path / "twin.yaml"
    twin.write_text(yaml.safe_dump(raw))
    fault = scenarios.Scenario("data_fault", "WMS fault on day 2", (scenarios.Effect("stale_wms", 2, 3),))
    monkeypatch.setitem(scenarios.SCENARIOS, "data_fault", fault)
    # and a policy whose forecast budget every refit overruns: a live cycle would put off day 1's refit
    from ballast.settings import PACKAGED_POLICY

    doc = yaml.safe_load(PACKAGED_POLICY.read_text())
    doc["latency_budgets_seconds"]["forecast"] = 0.001
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(yaml.safe_dump(doc))

    # when
    out = simulate(
        SimulateParams(
            name="e2e",
            scenarios=("data_fault",),
            seeds=(1,),
            days=3,
            twin=twin,
            policy=policy_file,
            policies=("ballast", "no_transfers", "bound"),
            home=ballast_home,
        )
    )

    # then every policy was recorded and the report written
    sim = SimulationHome(Path(out["root"]))
    runs, daily = load_results(sim)
    assert sorted(runs["policy"].to_list()) == ["ballast", "bound", "no_transfers"]
    ballast = runs.filter(runs["policy"] == "ballast").row(0, named=True)
    assert ballast["refused_cycles"] == 1.0  # day 2: the cycle refused, the simulation went on
    assert ballast["demand_units"] > 0 and daily.filter(daily["policy"] == "ballast")["day"].max() == 2
    assert sim.report_path.exists()
    # the planner's own warehouse shows two published cycles and one blocked by the stale inventory
    run_home = sim.run_home("data_fault", 1)
    with duckdb.connect(str(run_home / "data" / "ballast.duckdb"), read_only=True) as con:
        outcomes = con.execute("SELECT outcome, reason FROM cycle_runs ORDER BY as_of").fetchall()
        forecasts = con.execute("SELECT forecast_run_id, degraded FROM plans ORDER BY as_of").fetchall()
    assert [o for o, _ in outcomes] == ["published", "published", "blocked"] and "inventory" in outcomes[-1][1]
    # day 1 refitted although day 0's refit overran the budget: no plan depends on how busy the machine was
    (day0, _), (day1, notes) = forecasts
    assert day1 != day0 and "cached run" not in notes
    # how its solves ended is a KPI: two live plans, solved with no clock or node limit stopping them
    assert ballast["planned_cycles"] == 2.0
    assert ballast["clock_stopped_cycles"] == ballast["node_limited_cycles"] == 0.0
    # isolation: nothing was written to the live home outside simulations/
    assert sorted(p.name for p in ballast_home.iterdir()) == ["simulations"]
    # the simulator acted only on the outbox: replaying the released orders reproduces the run
    from ballast.io.twin_extracts import released_orders_by_day
    from ballast.models.policy import load_policy
    from ballast.models.sample import generate_network
    from ballast.models.twin.config import load_twin_settings
    from ballast.models.twin.world import make_network, make_world, replay

    settings = load_twin_settings(twin, days=3)
    policy, _ = load_policy(PACKAGED_POLICY)
    frames = generate_network(settings.sample_spec())
    network = make_network(frames, settings, policy)
    world = make_world(frames, network, fault, 1, 3, settings, policy)
    again = replay(world, released_orders_by_day(run_home, network), [2])
    assert again.total_cost() == pytest.approx(ballast["total_cost"])
