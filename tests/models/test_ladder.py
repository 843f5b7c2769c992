"""The fallback ladder: each rung is reached by a test (forced time-outs, forced infeasibility)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import polars as pl
import pytest

from ballast.models.coordinator import SolveOptions, build_model, extract_plan, solve
from ballast.models.engine import EngineOptions, ladder_options
from ballast.models.ladder import LadderOptions, greedy_plan, polish_lane_days, solve_with_ladder
from ballast.models.positions import RELEASED_ORDER_SCHEMA
from ballast.models.verify import verify_plan
from tests.models.test_coordinator import AS_OF, lane, policy, run, site, stock

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
    # the polish ran on it: with no lane-day open there is nothing to close or shift
    assert "polish: none of 0 lane-day moves" in record.attempts[-1].outcome


def _one_lane_two_days():
    """A→B takes a day at 1/u plus 5 a lane-day; B sells 10 on days 1 and 2 from nothing. Best: one
    lane-day on day 0 carrying 20 (20 + 5 = 25)."""
    return run(
        sites=[site("A"), site("B")],
        lanes=[lane("A", "B", cost=1.0, fixed=5.0)],
        inventory=[stock("A", 100), stock("B", 0)],
        demand={("B", "X"): [0, 10, 10]},
        pol=policy(horizon_days=3),
    ).inputs


@pytest.mark.parametrize(
    ("incumbent_days", "incumbent", "kept"),
    [
        ({0, 1}, 30.0, "close"),  # two lane-days a day apart, as a MIP stopped by its clock may leave
        ({1}, 65.0, "shift"),  # the one lane-day a day late: day 1's 10 units lost at 5/u
    ],
)
def test_polish_closes_or_shifts_a_wasted_lane_day_of_an_incumbent(incumbent_days, incumbent, kept):
    inputs = _one_lane_two_days()
    model = build_model(inputs)
    for (_a, t), y in model.lane_open.items():
        y.fix(1.0 if t in incumbent_days else 0.0)
    assert solve(model, SolveOptions()).objective == pytest.approx(incumbent)
    outcome, results = polish_lane_days(model, inputs, LadderOptions(), incumbent)
    assert [move.split()[0] for move in outcome.kept] == [kept]
    assert (outcome.before, outcome.after) == (incumbent, pytest.approx(25.0))
    assert outcome.tried == len(results) >= 2  # a worse move was tried and dropped before the kept one
    assert not any(y.fixed for y in model.lane_open.values())  # the model is handed back unfixed
    assert extract_plan(model).select("ship_day", "qty").rows() == [(0, 20.0)]  # the better plan is loaded
    assert f"objective {incumbent:.1f} → 25.0 (" in outcome.summary()


def test_polish_keeps_an_incumbent_no_single_move_improves():
    inputs = _one_lane_two_days()
    model = build_model(inputs)
    assert solve(model, SolveOptions()).objective == pytest.approx(25.0)  # the optimum
    outcome, results = polish_lane_days(model, inputs, LadderOptions(), 25.0)
    assert outcome.kept == () and outcome.after == 25.0 and len(results) == outcome.tried >= 2
    assert outcome.summary().startswith(f"polish: none of {outcome.tried} lane-day moves lowered the objective (")
    assert extract_plan(model).select("ship_day", "qty").rows() == [(0, 20.0)]


@pytest.mark.parametrize(("budget", "tried"), [({"polish_moves": 1}, 1), ({"polish_seconds": 0.0}, 0)])
def test_polish_stops_at_its_budget(budget, tried):
    inputs = _one_lane_two_days()
    model = build_model(inputs)
    for (_a, t), y in model.lane_open.items():
        y.fix(1.0 if t == 1 else 0.0)
    solve(model, SolveOptions())
    outcome, _ = polish_lane_days(model, inputs, LadderOptions(**budget), 65.0)
    assert outcome.tried == tried and outcome.kept == ()  # the first move (close the only lane-day) is worse
    assert extract_plan(model).select("ship_day", "qty").rows() == [(1, 10.0)]  # the incumbent is kept


def test_polish_under_a_node_limit_stops_on_its_move_count_not_its_clock():
    # `polish_seconds` 0 would allow no move (above); under a node limit no clock decides the plan
    inputs = _one_lane_two_days()
    model = build_model(inputs)
    for (_a, t), y in model.lane_open.items():
        y.fix(1.0 if t == 1 else 0.0)
    solve(model, SolveOptions())
    outcome, results = polish_lane_days(model, inputs, LadderOptions(polish_seconds=0.0, mip_max_nodes=1000), 65.0)
    assert [move.split()[0] for move in outcome.kept] == ["shift"]
    assert outcome.after == pytest.approx(25.0) and outcome.tried == len(results) >= 2
    outcome, _ = polish_lane_days(model, inputs, LadderOptions(polish_moves=0, mip_max_nodes=1000), 25.0)
    assert outcome.tried == 0  # the move count still applies


def test_the_policy_node_limit_stops_the_ladder_mip():
    options = ladder_options(policy(solver={"mip_max_nodes": 0}), EngineOptions())
    assert options.mip_max_nodes == 0
    # the policy's node limit alone (no clock, no HiGHS option of the test's) stops the MIP, with the
    # seeded do-nothing plan unproven
    options = replace(options, start="empty", highs_options=PRESOLVE_OFF + (("mip_heuristic_effort", 0.0),))
    flows, record = solve_with_ladder(_mip_network(), options)
    assert (record.rung, record.termination, record.objective) == ("incumbent", "kSolutionLimit", pytest.approx(50.0))
    assert flows.is_empty()
    assert ladder_options(policy(), EngineOptions()).mip_max_nodes is None  # off unless the policy sets it


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
