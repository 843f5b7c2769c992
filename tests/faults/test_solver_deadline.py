"""A solver that runs out of time: the cycle ends at its deadline and says how it planned.

The cycle gives the solver `min(policy.solver.time_limit_seconds, latency_budgets_seconds.solve)`
(flows/planning_cycle.py). Past it, HiGHS stops and the fallback ladder takes over; with a
ladder of only `mip` and `empty`, the plan is published with no orders and an alert, and the
previous commitments stay as they are.
"""

from __future__ import annotations

import json
import time

import pytest

from ballast.flows.planning_cycle import CycleParams, planning_cycle
from ballast.io.warehouse import open_warehouse
from ballast.settings import Settings
from tests.faults.scenario import T0, deliver_network, write_policy
from tests.faults.warehouse_checks import consistency_problems


@pytest.mark.slow
def test_solver_out_of_time_publishes_no_orders_with_an_alert(prefect_harness, ballast_home):
    write_policy(ballast_home, **{"solver.time_limit_seconds": 1e-6, "fallback.ladder": ["mip", "empty"]})
    deliver_network(Settings().inbox_dir)
    started = time.monotonic()
    outcome = planning_cycle(CycleParams(as_of=T0))
    seconds = time.monotonic() - started
    assert outcome.created and outcome.orders == 0 and outcome.released == 0
    with open_warehouse(Settings().db_path, read_only=True) as con:
        solve, degraded = con.execute(
            "SELECT solve, degraded FROM plans WHERE plan_id = ?", [outcome.plan_id]
        ).fetchall()[0]
        assert consistency_problems(con) == []
    solve, degraded = json.loads(solve), json.loads(degraded)
    assert solve["rung"] == "empty" and "time" in solve["termination"].lower(), solve
    assert any("fallback rung 'empty'" in d for d in degraded) and any(
        "publishing no new orders" in d for d in degraded
    )
    assert outcome.steps["coordinate"] < 30, outcome.steps
    print(f"cycle {seconds:.1f} s, steps {outcome.steps}, termination {solve['termination']}")  # noqa: T201
