"""Negotiation: agents reject what breaks their local rules; the coordinator solves again."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ballast.models.negotiation import LocalRules, review_flows
from tests.models.test_coordinator import AS_OF, lane, moved, policy, run, site, stock

THREE = [site("A"), site("B"), site("C")]


def _case(rules, **pol):
    # B needs 10 on day 2; A is the cheaper source (1/u), C the dearer (2/u); lead 1 from both
    return run(
        sites=THREE,
        lanes=[lane("A", "B", cost=1.0), lane("C", "B", cost=2.0, lead=2)],
        inventory=[stock("A", 100), stock("B", 0), stock("C", 100)],
        demand={("B", "X"): [0, 0, 10]},
        pol=policy(horizon_days=3, **pol),
        local_rules=rules,
    )


def test_without_rules_the_plan_settles_in_round_zero():
    result = _case(None)
    assert moved(result) == {("A", "B", 1): 10.0} or sum(moved(result).values()) == pytest.approx(10.0)
    assert result.rounds == ()
    assert set(result.orders["round"].to_list()) == {0}


def test_receiving_closed_on_a_day_moves_the_arrival_and_records_the_round():
    closed_day = AS_OF + timedelta(days=2)
    result = _case({"B": LocalRules(receiving_closed_dates=frozenset({closed_day}))})
    # nothing may arrive on day 2: A→B must ship on day 0 (arrives day 1), C→B (2 days) is out
    assert moved(result) == {("A", "B", 0): 10.0}
    assert result.record.objective == pytest.approx(10.0)
    assert len(result.rounds) >= 1
    assert result.rounds[0].rejections[0].rule == "receiving_closed"
    assert result.orders["round"].to_list() == [1]
    assert result.verification.ok


def test_a_local_reserve_caps_what_leaves_and_the_rest_comes_from_elsewhere():
    result = _case({"A": LocalRules(reserve_units=(("X", 96.0),))})
    plan = moved(result)
    from_a = sum(q for (o, _d, _t), q in plan.items() if o == "A")
    from_c = sum(q for (o, _d, _t), q in plan.items() if o == "C")
    assert from_a == pytest.approx(4.0)
    assert from_c == pytest.approx(6.0)
    assert result.record.objective == pytest.approx(4 * 1.0 + 6 * 2.0)
    assert result.rounds[0].rejections[0].rule == "reserve"


def test_rounds_are_bounded_and_leftovers_dropped():
    closed_day = AS_OF + timedelta(days=2)
    result = _case(
        {"B": LocalRules(receiving_closed_dates=frozenset({closed_day}))}, negotiation_max_rounds=0
    )
    assert moved(result) == {} or all(t + 1 != 2 for (_o, _d, t) in moved(result))
    assert any("did not settle" in a for a in result.record.alerts)


def test_review_is_deterministic():
    result = _case(None)
    rules = LocalRules(receiving_closed_weekdays=frozenset(range(7)))
    first = review_flows("B", rules, result.flows, result.inputs)
    second = review_flows("B", rules, result.flows, result.inputs)
    assert first == second
    assert first[0] and all(r.rule == "receiving_closed" for r in first[0])
