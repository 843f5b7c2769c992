"""Trust: every verified plan respects every constraint (hypothesis), and broken plans are caught."""

from __future__ import annotations

from collections import defaultdict

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ballast.models.verify import verify_plan
from tests.models.test_coordinator import item, lane, moved, policy, run, site, stock


@st.composite
def networks(draw):
    n = draw(st.integers(2, 4))
    kinds = draw(st.lists(st.sampled_from(["dc", "hub"]), min_size=n, max_size=n))
    sites = [
        site(
            f"S{i}",
            kind=k,
            echelon=1 if k == "dc" else 2,
            country=draw(st.sampled_from(["DE", "FR"])),
            storage_capacity=draw(st.none() | st.floats(20, 200)),
            outbound_capacity_per_day=draw(st.none() | st.floats(5, 50)),
        )
        for i, k in enumerate(kinds)
    ]
    with_supplier = draw(st.booleans())
    if with_supplier:
        sites.append(site("SUP", kind="supplier", echelon=0))
    skus = ["X", "Y"][: draw(st.integers(1, 2))]
    items = [
        item(
            k,
            unit_cost=draw(st.floats(1, 20)),
            volume=draw(st.floats(0.5, 2.0)),
            holding=draw(st.sampled_from([0.0, 0.05])),
        )
        for k in skus
    ]
    lanes = []
    for a in range(n):
        for b in range(n):
            if a != b and draw(st.booleans()):
                lanes.append(
                    lane(
                        f"S{a}",
                        f"S{b}",
                        lead=draw(st.integers(0, 2)),
                        cost=draw(st.floats(0.1, 3)),
                        fixed=draw(st.sampled_from([0.0, 0.0, 15.0])),
                        capacity_per_day=draw(st.none() | st.floats(5, 60)),
                        min_units=draw(st.none() | st.sampled_from([3.0, 8.0])),
                    )
                )
        if with_supplier and draw(st.booleans()):
            lanes.append(lane("SUP", f"S{a}", lead=draw(st.integers(1, 2)), cost=draw(st.floats(2, 8))))
    inventory = [stock(f"S{i}", draw(st.floats(0, 60)), sku=k) for i in range(n) for k in skus]
    demand = {
        (f"S{i}", k): [draw(st.sampled_from([0.0, 2.0, 5.0, 12.0])) for _ in range(4)]
        for i in range(n)
        for k in skus
    }
    pol = policy(
        horizon_days=4,
        unmet_demand=draw(st.sampled_from(["lost_sales", "backorders"])),
        minimum_transfer={"units": draw(st.sampled_from([0.0, 4.0])), "value": 0.0},
        possession_limits=[{"country": "FR", "max_units": draw(st.floats(20, 200))}]
        if draw(st.booleans())
        else [],
        forbidden_lanes=[{"origin": "S0", "destination": "S1"}],
    )
    return dict(sites=sites, items=items, lanes=lanes, inventory=inventory, demand=demand, pol=pol)


def independent_check(result) -> list[str]:
    """A second, deliberately naive check of the core rules (not sharing code with verify_plan)."""
    inputs, flows = result.inputs, result.flows
    bad = []
    out = defaultdict(float)
    inn = defaultdict(float)
    lane_vol = defaultdict(float)
    site_out = defaultdict(float)
    for a, o, d, k, t, arr, q, sd in flows.select(
        "arc_id", "origin", "destination", "sku", "ship_day", "arrive_day", "qty", "short_dated_qty"
    ).iter_rows():
        arc = inputs.arcs[a]
        if a in inputs.forbidden_arcs or (o, d) == ("S0", "S1"):
            bad.append(f"forbidden {a}")
        if arr != t + arc.lead_days or arr >= inputs.horizon or q <= 0:
            bad.append(f"timing {a}")
        if inputs.sites[o].kind != "supplier":
            out[(o, k, t)] += q - sd
        inn[(d, k, arr)] += q
        lane_vol[(a, t)] += q * inputs.items[k].unit_volume
        site_out[(o, t)] += q
    for (s, k), s0 in inputs.initial_units.items():
        have = s0
        for t in range(inputs.horizon):
            have += (
                inputs.receipt_units.get((s, k, t), 0)
                + inn[(s, k, t)]
                - inputs.issue_units.get((s, k, t), 0)
                - out[(s, k, t)]
            )
            if have < -1e-6:
                bad.append(f"negative {s} {k} {t}")
    for (a, t), v in lane_vol.items():
        room = inputs.lane_room.get((a, t))
        if room is not None and v > room + 1e-6:
            bad.append(f"lane {a} {t}")
    for (s, t), u in site_out.items():
        room = inputs.outbound_room.get((s, t))
        if room is not None and u > room + 1e-6:
            bad.append(f"outbound {s} {t}")
    return bad


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(networks())
def test_every_verified_plan_respects_every_constraint(net):
    result = run(**net)
    assert result.verification.ok or result.record.rung == "empty"
    if result.verification.ok:
        assert independent_check(result) == []
        assert verify_plan(result.inputs, result.flows).ok
    if result.record.rung in ("mip", "incumbent", "lp_rounded"):
        assert result.record.objective is not None


def _plan():
    return run(
        sites=[site("A"), site("B"), site("C")],
        lanes=[lane("A", "B", capacity_per_day=20.0), lane("C", "B")],
        inventory=[stock("A", 30), stock("B", 0), stock("C", 30)],
        demand={("B", "X"): [0, 15]},
    )


def test_a_plan_that_ships_more_than_the_origin_holds_is_caught():
    result = _plan()
    assert result.verification.ok and moved(result)
    broken = result.flows.with_columns(qty=pl.col("qty") * 10)
    report = verify_plan(result.inputs, broken)
    assert not report.ok
    assert any("stock" in p and "< 0" in p for p in report.problems)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"arrive_day": 0}, "does not match lead time"),
        ({"arc_id": "A>C:road"}, "not a candidate arc"),
        ({"ship_day": 5, "arrive_day": 6}, "does not match lead time"),
    ],
)
def test_malformed_flows_are_caught(change, expected):
    result = _plan()
    broken = result.flows.head(1).with_columns(**{k: pl.lit(v) for k, v in change.items()})
    report = verify_plan(result.inputs, broken)
    assert any(expected in p for p in report.problems)


def test_lane_capacity_breach_is_caught():
    result = _plan()
    flows = result.flows
    # put 25 on A→B (capacity 20): stock is there, the lane is not wide enough
    row = flows.filter(pl.col("origin") == "A").head(1).with_columns(qty=pl.lit(25.0))
    report = verify_plan(result.inputs, row)
    assert any("above lane capacity" in p for p in report.problems)


def test_forbidden_lane_is_caught():
    result = run(
        sites=[site("A"), site("B"), site("C")],
        lanes=[lane("A", "B"), lane("C", "B")],
        inventory=[stock("A", 30), stock("B", 0), stock("C", 30)],
        demand={("B", "X"): [0, 15]},
        pol=policy(forbidden_lanes=[{"origin": "A", "destination": "B"}]),
    )
    fake = result.flows.with_columns(arc_id=pl.lit("A>B:road"), origin=pl.lit("A"))
    assert any("forbidden" in p for p in verify_plan(result.inputs, fake).problems)
