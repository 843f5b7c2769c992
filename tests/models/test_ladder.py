"""The fallback ladder: each rung is reached by a test (forced time-outs, forced infeasibility)."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import pytest

from ballast.models.ladder import LadderOptions, greedy_plan, solve_with_ladder
from ballast.models.positions import RELEASED_ORDER_SCHEMA
from ballast.models.verify import verify_plan
from tests.models.test_coordinator import AS_OF, lane, run, site, stock

PRESOLVE_OFF = (("presolve", "off"),)  # presolve alone solves these tiny MIPs before any time check


def _mip_network():
    """Two sources, a fixed cost on the cheap lane: a MIP with lane-day binaries."""
    sites = [site("A"), site("B"), site("C")]
    result = run(
        sites=sites,
        lanes=[lane("A", "B", cost=1.0, fixed=5.0), lane("C", "B", cost=2.0, fixed=1.0)],
        inventory=[stock("A", 100), stock("B", 0), stock("C", 100)],
        demand={("B", "X"): [0, 10]},
    )
    return result.inputs


def test_rung_mip():
    flows, record = solve_with_ladder(_mip_network(), LadderOptions())
    assert record.rung == "mip"
    assert record.status == "optimal"
    assert record.mip_gap == pytest.approx(0.0, abs=1e-9)
    assert record.integers > 0
    assert flows.select("origin", "qty").rows() == [("A", 10.0)]  # 5 + 10 < 1 + 20
    assert record.objective == pytest.approx(15.0)
    assert record.build_seconds > 0 and record.solve_seconds >= 0 and record.handoff_seconds > 0


def test_rung_incumbent_when_the_mip_stops_early_with_a_solution():
    # seed the do-nothing plan and allow no branching: HiGHS stops with that unproven incumbent
    options = LadderOptions(
        start="empty", highs_options=PRESOLVE_OFF + (("mip_max_nodes", 0), ("mip_heuristic_effort", 0.0))
    )
    flows, record = solve_with_ladder(_mip_network(), options)
    assert record.rung == "incumbent"
    assert record.termination == "kSolutionLimit"
    assert record.verification.ok
    assert flows.is_empty()  # the seeded do-nothing plan: 10 units lost at 5/u
    assert record.objective == pytest.approx(50.0)


def test_rung_lp_rounded_after_a_forced_time_out():
    options = LadderOptions(
        time_limit_seconds=0.0, fallback_time_limit_seconds=30.0, highs_options=PRESOLVE_OFF, start="none"
    )
    flows, record = solve_with_ladder(_mip_network(), options)
    assert record.rung == "lp_rounded"
    assert [a.rung for a in record.attempts] == ["mip", "lp_rounded"]
    assert record.verification.ok
    # the LP relaxation shares the fixed cost out; rounding opens A→B and the repair ships 10 there
    assert flows["qty"].sum() == pytest.approx(10.0)


def test_rung_greedy_when_every_solve_times_out():
    options = LadderOptions(
        time_limit_seconds=0.0, fallback_time_limit_seconds=0.0, highs_options=PRESOLVE_OFF, start="none"
    )
    flows, record = solve_with_ladder(_mip_network(), options)
    assert record.rung == "greedy"
    assert record.verification.ok
    assert flows.select("origin", "destination", "qty").rows() == [("A", "B", 10.0)]


def test_rung_empty_under_forced_infeasibility():
    # an earlier cycle released 50 units out of A, which holds 5: no plan can keep A's stock ≥ 0
    released = pl.DataFrame(
        [
            dict(
                order_id="o-1",
                origin="A",
                destination="B",
                mode="road",
                sku="X",
                ship_date=AS_OF,
                arrive_date=AS_OF + timedelta(days=1),
                qty=50.0,
            )
        ],
        schema=RELEASED_ORDER_SCHEMA,
    )
    result = run(
        sites=[site("A", kind="plant", echelon=0), site("B"), site("C")],
        lanes=[lane("A", "B"), lane("C", "B")],
        inventory=[stock("A", 5), stock("B", 0), stock("C", 100)],
        demand={("B", "X"): [0, 80]},
        released=released,
    )
    assert result.record.rung == "empty"
    assert result.orders.is_empty()
    assert any("no rung produced a verified plan" in a for a in result.record.alerts)
    attempts = [a.rung for a in result.record.attempts]
    assert attempts == ["mip", "lp_rounded", "greedy", "empty"]
    assert "infeasible" in result.record.attempts[0].outcome
    assert result.publishable  # an empty plan is publishable (no new orders) with its alert


def test_ladder_respects_the_policy_rung_list():
    options = LadderOptions(ladder=("greedy", "empty"))
    _flows, record = solve_with_ladder(_mip_network(), options)
    assert record.rung == "greedy"
    assert record.columns == 0  # no model was built


def test_greedy_plan_verifies_and_skips_moves_not_worth_it():
    inputs = _mip_network()
    flows = greedy_plan(inputs)
    assert verify_plan(inputs, flows).ok
    small = run(
        sites=[site("A"), site("B")],
        lanes=[lane("A", "B", cost=1.0, fixed=20.0)],
        inventory=[stock("A", 100), stock("B", 0)],
        demand={("B", "X"): [0, 2]},
    ).inputs
    assert greedy_plan(small).is_empty()
