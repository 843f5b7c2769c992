"""Rollout logic without I/O: the champion stack, the comparison, and the report section."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import polars as pl

from ballast.io.rollout_report import add_comparison, comparison_html
from ballast.models.rollout import VersionEvent, champion_stack, compare_plans, current_challenger

T0 = datetime(2026, 11, 23, tzinfo=UTC)


def _event(seq: int, role: str, action: str, ref: str | None, kind: str = "policy") -> VersionEvent:
    since = T0 + timedelta(hours=seq)
    return VersionEvent(seq, kind, role, action, ref, ref, f"version: {ref}", since, "ana", "r", seq)


def test_champion_stack_replays_promotions_and_rollbacks_up_to_a_time():
    history = [
        _event(1, "challenger", "set_challenger", "B"),
        _event(2, "champion", "baseline", "A"),
        _event(3, "champion", "promote", "B"),
        _event(4, "challenger", "clear_challenger", None),
        _event(5, "champion", "promote", "C"),
        _event(6, "champion", "rollback", "B"),
        _event(7, "champion", "promote", "X", kind="forecaster"),
    ]
    assert [e.ref for e in champion_stack(history, "policy")] == ["A", "B"]
    assert champion_stack(history, "policy", T0 + timedelta(hours=5, minutes=30))[-1].ref == "C"
    assert champion_stack(history, "policy", T0 + timedelta(hours=1)) == []
    assert [e.ref for e in champion_stack(history, "forecaster")] == ["X"]
    assert current_challenger(history, "policy") is None
    assert current_challenger(history[:3], "policy").ref == "B"


def _orders(qtys: dict[str, float]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "order_id": list(qtys), "kind": ["transfer"] * len(qtys), "origin": ["DC"] * len(qtys),
            "destination": list(qtys), "mode": ["truck"] * len(qtys), "sku": ["S1"] * len(qtys),
            "ship_date": [date(2026, 11, 23)] * len(qtys), "qty": list(qtys.values()),
        }
    )


def test_comparison_counts_orders_and_says_which_side_is_better():
    champion = _orders({"H1": 10.0, "H2": 5.0, "H3": 1.0})
    challenger = _orders({"H1": 10.0, "H2": 7.0, "H4": 2.0})
    c = compare_plans(
        {"expected_fill_rate": 0.95, "transport_cost": 100.0, "plan_objective": 500.0, "transfers": 3,
         "orders_needing_approval": 1},
        {"expected_fill_rate": 0.97, "transport_cost": 120.0, "plan_objective": 500.0, "transfers": 3,
         "orders_needing_approval": 0},
        champion, challenger,
    )
    assert c.counts == {"added": 1, "removed": 1, "changed": 1, "same": 1}
    verdicts = {label: verdict for label, _, _, verdict in c.kpis}
    assert verdicts["expected fill rate"] == "challenger better"
    assert verdicts["transport cost"] == "champion better"
    assert verdicts["objective"] == "same"
    assert verdicts["orders needing approval"] == "challenger better"


def test_report_section_is_replaced_not_repeated(tmp_path):
    report = tmp_path / "P1.html"
    report.write_text("<html><body><h1>plan</h1>\n<h2>Lineage</h2></body></html>")
    c = compare_plans({}, {}, _orders({"H1": 1.0}), _orders({"H1": 2.0}))
    add_comparison(report, comparison_html("policy v2", "P2", None, c, None))
    add_comparison(report, comparison_html("policy v3", "P3", None, c, None))
    html = report.read_text()
    assert html.count("Challenger in shadow") == 1 and "P3" in html and "P2" not in html
    assert html.index("Challenger in shadow") < html.index("<h2>Lineage</h2>")
    failed = comparison_html("policy <v4>", None, None, None, "KeyError: 'x'")
    add_comparison(report, failed)
    html = report.read_text()
    assert "did not produce a plan: KeyError: &#39;x&#39;" in html and "policy &lt;v4&gt;" in html
