"""Explanations: each order carries structured reasons and one sentence a planner can read."""

from __future__ import annotations

import json
from datetime import timedelta

from ballast.models.explain import ORDER_SCHEMA, order_id
from tests.models.test_coordinator import AS_OF, lane, policy, run, site, stock


def _result():
    sites = [site("A"), site("B"), site("C"), site("D")]
    return run(
        sites=sites,
        lanes=[lane("A", "B", cost=1.0), lane("C", "B", cost=3.0), lane("D", "B", cost=0.5)],
        inventory=[stock("A", 100), stock("B", 0), stock("C", 100), stock("D", 0)],
        demand={("B", "X"): [0, 10]},
        pol=policy(forbidden_lanes=[{"origin": "D", "destination": "B"}]),
    )


def test_orders_frame_has_the_agreed_columns():
    orders = _result().orders
    assert list(orders.columns)[:15] == [
        "order_id",
        "kind",
        "origin",
        "destination",
        "mode",
        "sku",
        "ship_date",
        "arrive_date",
        "qty",
        "unit_cost",
        "transport_cost",
        "value",
        "round",
        "explanation",
        "reason",
    ]
    assert dict(orders.schema) == ORDER_SCHEMA


def test_order_id_is_deterministic_and_plan_independent():
    orders = _result().orders
    row = orders.row(0, named=True)
    assert row["order_id"] == order_id("X", "A", "B", "road", AS_OF)
    assert _result().orders["order_id"].to_list() == orders["order_id"].to_list()


def test_reason_holds_deficit_surplus_forecast_economics_and_alternatives():
    row = _result().orders.row(0, named=True)
    reason = json.loads(row["reason"])
    assert reason["destination"]["deficit_units"] == 10.0
    assert reason["destination"]["bite_date"] == (AS_OF + timedelta(days=1)).isoformat()
    assert reason["source"]["surplus_units"] > 0
    assert reason["forecast"]["mean_units"] == 10.0
    assert reason["economics"]["move_cost"] == 10.0
    assert reason["economics"]["shortage_cost_avoided"] == 50.0
    why = {a["origin"]: a["why_not"] for a in reason["alternatives"]}
    assert why["C"].startswith("dearer")
    assert why["D"] == "forbidden by policy"


def test_sentence_reads_for_a_planner():
    text = _result().orders["explanation"][0]
    assert text.startswith("Move 10 u of X A → B by road on 2026-11-02 (arrives 2026-11-03)")
    assert "B falls 10 u below safety stock from 2026-11-03" in text
    assert "the move costs 10 against 50 of shortage avoided" in text
    assert "C (road) not chosen: dearer" in text
    assert "\n" not in text
