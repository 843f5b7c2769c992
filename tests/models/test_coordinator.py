"""Tiny networks solvable by hand: exact plans and exact objective values.

Conventions of these cases unless a test says otherwise: shortage penalty 5 per unit (flat),
no holding cost, no safety stock, no minimum transfer, no cooldown. Horizons are short so that a
lane has a single ship day and the optimal plan is unique.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import polars as pl
import pyomo.environ as pyo
import pytest
from scipy.stats import norm

from ballast.models.coordinator import SolveOptions, SolverError, build_model, extract_plan, solve
from ballast.models.engine import EngineResult, contract_frames, plan_network
from ballast.models.network import expected_shortage_slopes
from ballast.models.policy import Policy
from ballast.models.positions import RELEASED_ORDER_SCHEMA

AS_OF = date(2026, 11, 2)
STAMP = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)


def policy(**over) -> Policy:
    base = dict(
        version="test",
        author="tests",
        horizon_days=2,
        cooldown_days=0,
        minimum_transfer={"units": 0.0, "value": 0.0},
        shortage_penalty_per_unit=5.0,
        shortage_penalty_price_multiple=0.0,
        safety_stock_shortfall_penalty_per_unit=1.0,
        negotiation_max_rounds=3,
    )
    base.update(over)
    return Policy.model_validate_json(json.dumps(base))


def site(site_id: str, kind: str = "dc", echelon: int = 1, country: str = "DE", **kw) -> dict:
    return dict(site_id=site_id, kind=kind, echelon=echelon, country=country, **kw)


def lane(origin: str, destination: str, lead: int = 1, cost: float = 1.0, mode: str = "road", **kw) -> dict:
    return dict(
        origin=origin,
        destination=destination,
        mode=mode,
        lead_time_days=lead,
        cost_per_unit=cost,
        fixed_cost=kw.pop("fixed", 0.0),
        **kw,
    )


def stock(site_id: str, qty: float, sku: str = "X", **kw) -> dict:
    return dict(
        as_of=STAMP,
        site_id=site_id,
        sku=sku,
        on_hand=qty,
        allocated=kw.pop("allocated", 0.0),
        reserved=kw.pop("reserved", 0.0),
        **kw,
    )


def item(sku: str = "X", unit_cost: float = 10.0, **kw) -> dict:
    return dict(
        sku=sku,
        unit_cost=unit_cost,
        unit_price=None,
        holding_cost_per_day=kw.pop("holding", 0.0),
        unit_volume=kw.pop("volume", 1.0),
        **kw,
    )


def forecast(demand: dict[tuple[str, str], list[float]]) -> pl.DataFrame:
    rows = [
        dict(
            site_id=s,
            sku=k,
            day=AS_OF + timedelta(days=t),
            mean=float(q),
            q50=float(q),
            q80=float(q) * 1.2,
            q95=float(q) * 1.5,
        )
        for (s, k), series in demand.items()
        for t, q in enumerate(series)
    ]
    return pl.DataFrame(
        rows,
        schema={
            "site_id": pl.String,
            "sku": pl.String,
            "day": pl.Date,
            "mean": pl.Float64,
            "q50": pl.Float64,
            "q80": pl.Float64,
            "q95": pl.Float64,
        },
    )


def targets(safety: dict[tuple[str, str], float]) -> pl.DataFrame:
    rows = [
        dict(
            site_id=s,
            sku=k,
            lead_time_days=1,
            review_days=1,
            service_level=0.95,
            mean_daily=0.0,
            lt_demand_mean=0.0,
            safety_stock=float(v),
            reorder_point=float(v),
            target_stock=float(v),
        )
        for (s, k), v in safety.items()
    ]
    return pl.DataFrame(
        rows,
        schema={
            "site_id": pl.String,
            "sku": pl.String,
            "lead_time_days": pl.Int64,
            "review_days": pl.Int64,
            "service_level": pl.Float64,
            "mean_daily": pl.Float64,
            "lt_demand_mean": pl.Float64,
            "safety_stock": pl.Float64,
            "reorder_point": pl.Float64,
            "target_stock": pl.Float64,
        },
    )


def run(
    *,
    sites: list[dict],
    lanes: list[dict],
    inventory: list[dict],
    demand: dict[tuple[str, str], list[float]],
    items: list[dict] | None = None,
    safety: dict[tuple[str, str], float] | None = None,
    pol: Policy | None = None,
    released: pl.DataFrame | None = None,
    in_transit: list[dict] | None = None,
    purchase_orders: list[dict] | None = None,
    **kw,
) -> EngineResult:
    frames = contract_frames(
        sites=sites,
        items=items or [item()],
        lanes=lanes,
        inventory=inventory,
        in_transit=in_transit or [],
        purchase_orders=purchase_orders or [],
    )
    pol = pol or policy()
    demand = {
        **{(s["site_id"], "X"): [0.0] * pol.horizon_days for s in sites if s["kind"] != "supplier"},
        **demand,
    }
    return plan_network(frames, forecast(demand), targets(safety or {}), pol, AS_OF, released_orders=released, **kw)


def moved(result: EngineResult) -> dict[tuple[str, str, int], float]:
    """{(origin, destination, ship_day): units} of a plan."""
    return {(o, d, t): q for o, d, t, q in result.flows.select("origin", "destination", "ship_day", "qty").iter_rows()}


def per_lane(result: EngineResult) -> dict[tuple[str, str, str], float]:
    out: dict[tuple[str, str, str], float] = {}
    for o, d, m, q in result.flows.select("origin", "destination", "mode", "qty").iter_rows():
        out[(o, d, m)] = out.get((o, d, m), 0.0) + q
    return out


TWO = [site("A"), site("B")]


# ---------------------------------------------------------------------------------------------


def test_two_sites_one_sku():
    # given: A holds 100, B holds nothing and sells 10 a day for 2 days; the lane takes 1 day at 1/u
    # when
    result = run(
        sites=TWO,
        lanes=[lane("A", "B")],
        inventory=[stock("A", 100), stock("B", 0)],
        demand={("B", "X"): [10, 10]},
    )
    # then: day 0 is lost whatever we do (5 × 10); day 1 is covered by 10 units shipped on day 0 (1 × 10)
    assert result.record.rung == "mip"
    assert moved(result) == {("A", "B", 0): 10.0}
    assert result.record.objective == pytest.approx(60.0)
    assert result.verification.ok


def test_a_dc_offering_a_sku_sideways_still_replenishes_its_own_hub():
    # given: DC-A holds 100 and feeds HUB-A; DC-B, beside it, sells 10 a day and has nothing, so
    # DC-A offers X sideways to DC-B. HUB-A sells 10 a day from nothing too.
    sites = [site("DC-A"), site("DC-B"), site("HUB-A", kind="hub", echelon=2)]
    # when
    result = run(
        sites=sites,
        lanes=[lane("DC-A", "DC-B"), lane("DC-A", "HUB-A")],
        inventory=[stock("DC-A", 100), stock("DC-B", 0), stock("HUB-A", 0)],
        demand={("DC-B", "X"): [10, 10, 10], ("HUB-A", "X"): [10, 10, 10]},
        pol=policy(horizon_days=3),
    )
    # then: the sideways offer does not take DC-A out of its hub's supply (it used to: HUB-A got nothing)
    lanes = per_lane(result)
    assert lanes[("DC-A", "HUB-A", "road")] == pytest.approx(20.0)
    assert lanes[("DC-A", "DC-B", "road")] == pytest.approx(20.0)
    assert result.verification.ok


def test_an_empty_dc_relays_its_plants_stock_to_a_hub_in_deficit():
    # given: the plant holds 100; its DC holds nothing and has nothing coming; the DC's hub sells
    # 10 a day from 10 units. Plant -> DC and DC -> hub take a day each.
    sites = [site("PLANT", kind="plant", echelon=0), site("DC"), site("HUB", kind="hub", echelon=2)]
    # when
    result = run(
        sites=sites,
        lanes=[lane("PLANT", "DC"), lane("DC", "HUB")],
        inventory=[stock("PLANT", 100), stock("DC", 0), stock("HUB", 10)],
        demand={("HUB", "X"): [10] * 5},
        pol=policy(horizon_days=5),
    )
    # then: the plant ships through the DC (it used to stop at the empty DC: the hub ran out on day 1)
    # day 1 onwards at the hub: 40 units, the earliest of them leaving the plant on day 0
    lanes = per_lane(result)
    assert lanes[("PLANT", "DC", "road")] == pytest.approx(30.0)
    assert lanes[("DC", "HUB", "road")] == pytest.approx(30.0)
    assert result.verification.ok


def test_lane_too_slow_to_help():
    # rail is cheap but takes 2 days: with a 2-day horizon it cannot arrive; road does
    result = run(
        sites=TWO,
        lanes=[lane("A", "B", lead=2, cost=0.5, mode="rail"), lane("A", "B", lead=1, cost=2.0, mode="road")],
        inventory=[stock("A", 100), stock("B", 0)],
        demand={("B", "X"): [10, 10]},
    )
    assert per_lane(result) == {("A", "B", "road"): 10.0}
    assert result.record.objective == pytest.approx(50.0 + 20.0)


def test_lane_too_slow_to_help_the_deficit_even_if_it_arrives():
    # 3-day horizon, demand only on day 1: rail (2 days) arrives on day 2, too late; road is used
    result = run(
        sites=TWO,
        lanes=[lane("A", "B", lead=2, cost=0.5, mode="rail"), lane("A", "B", lead=1, cost=2.0, mode="road")],
        inventory=[stock("A", 100), stock("B", 0)],
        demand={("B", "X"): [0, 10, 0]},
        pol=policy(horizon_days=3),
    )
    assert per_lane(result) == {("A", "B", "road"): 10.0}
    assert moved(result) == {("A", "B", 0): 10.0}
    assert result.record.objective == pytest.approx(20.0)


def test_forbidden_lane_is_never_used():
    sites = [site("A"), site("B"), site("C")]
    pol = policy(forbidden_lanes=[{"origin": "A", "destination": "B"}])
    result = run(
        sites=sites,
        lanes=[lane("A", "B", cost=0.5), lane("C", "B", cost=2.0)],
        inventory=[stock("A", 100), stock("B", 0), stock("C", 100)],
        demand={("B", "X"): [0, 10]},
        pol=pol,
    )
    assert moved(result) == {("C", "B", 0): 10.0}
    assert result.record.objective == pytest.approx(20.0)
    assert "A>B:road" in result.inputs.forbidden_arcs


def test_embargoed_country_pair_is_never_used():
    sites = [site("A", country="FR"), site("B", country="CH"), site("C", country="DE")]
    pol = policy(embargoed_country_pairs=[{"origin_country": "FR", "destination_country": "CH"}])
    result = run(
        sites=sites,
        lanes=[lane("A", "B", cost=0.5), lane("C", "B", cost=2.0)],
        inventory=[stock("A", 100), stock("B", 0), stock("C", 100)],
        demand={("B", "X"): [0, 10]},
        pol=pol,
    )
    assert moved(result) == {("C", "B", 0): 10.0}


def test_capacity_forces_a_split():
    # A→B carries 6 volume units a day (unit volume 1); the other 4 come from C at 2/u
    sites = [site("A"), site("B"), site("C")]
    result = run(
        sites=sites,
        lanes=[lane("A", "B", cost=1.0, capacity_per_day=6.0), lane("C", "B", cost=2.0)],
        inventory=[stock("A", 100), stock("B", 0), stock("C", 100)],
        demand={("B", "X"): [0, 10]},
    )
    assert moved(result) == {("A", "B", 0): 6.0, ("C", "B", 0): 4.0}
    assert result.record.objective == pytest.approx(6 * 1.0 + 4 * 2.0)


@pytest.mark.parametrize(
    ("need", "expected_moves", "expected_objective"),
    [
        (3.0, {}, 15.0),  # 3 × 5 shortage < 20 fixed + 3 × 1: not worth it
        (10.0, {("A", "B", 0): 10.0}, 30.0),  # 20 fixed + 10 × 1 < 50 shortage
    ],
)
def test_fixed_cost_makes_a_small_transfer_not_worth_it(need, expected_moves, expected_objective):
    result = run(
        sites=TWO,
        lanes=[lane("A", "B", cost=1.0, fixed=20.0)],
        inventory=[stock("A", 100), stock("B", 0)],
        demand={("B", "X"): [0, need]},
    )
    assert moved(result) == expected_moves
    assert result.record.objective == pytest.approx(expected_objective)
    assert result.record.integers >= 1  # a lane-day binary exists where a fixed cost applies


def test_per_sku_lane_links_tighten_the_relaxation_and_change_no_optimum():
    # X needs 10 on day 1; Y 6 on day 1 and 30 on day 3 (bound 36); lane A→B costs 20 a day it is used
    result = run(
        sites=TWO,
        lanes=[lane("A", "B", cost=1.0, fixed=20.0)],
        items=[item("X"), item("Y", holding=0.5)],
        inventory=[stock("A", 100, "X"), stock("A", 100, "Y"), stock("B", 0, "X"), stock("B", 0, "Y")],
        demand={("B", "X"): [0, 10, 0, 0], ("B", "Y"): [0, 6, 0, 30]},
        pol=policy(horizon_days=4, release_now_cost_per_unit=1.0),  # what can wait, waits
    )
    values = {}
    for links in (True, False):
        m = build_model(result.inputs)
        assert len(m.lane_slot_link) >= 2  # a row per SKU and lane-day
        if not links:
            m.lane_slot_link.deactivate()
        relaxed = solve(m, SolveOptions(relax_integers=True)).objective
        values[links] = (relaxed, solve(m, SolveOptions(mip_gap=0.0)).objective)
    # best plan: the lane on day 0 (X 10, Y 6) and on day 2 (Y 30), 2 × 20 fixed. Relaxed, the lane-day
    # rows alone charge each day the share of the SKUs' summed bound (46) it carries: 16/46 and 30/46
    # of 20, one lane-day in all; per SKU, day 0 carries all of X's bound (20) and day 2 30/36 of Y's
    mip = values[True][1]
    assert values[False][1] == pytest.approx(mip)
    assert values[False][0] == pytest.approx(mip - 20.0)
    assert values[True][0] == pytest.approx(mip - 20.0 * 6 / 36)


def test_lane_minimum_units():
    # the lane ships at least 8 units a day when used: 5 needed → ship 8 (3 spare) costs 8 < 25 lost
    result = run(
        sites=TWO,
        lanes=[lane("A", "B", cost=1.0, min_units=8.0)],
        inventory=[stock("A", 100), stock("B", 0)],
        demand={("B", "X"): [0, 5]},
    )
    assert moved(result) == {("A", "B", 0): 8.0}
    assert result.record.objective == pytest.approx(8.0)


def test_policy_minimum_transfer_value():
    # minimum transfer value 60 at unit cost 10 → at least 6 units; 4 needed: ship 6 (6 < 20 lost)
    # (the policy minimum governs moves between hubs; DC replenishment follows its lane's minimum)
    result = run(
        sites=[site("A", kind="hub", echelon=2), site("B", kind="hub", echelon=2)],
        lanes=[lane("A", "B", cost=1.0)],
        inventory=[stock("A", 100), stock("B", 0)],
        demand={("B", "X"): [0, 4]},
        pol=policy(minimum_transfer={"units": 0.0, "value": 60.0}),
    )
    assert moved(result) == {("A", "B", 0): 6.0}
    assert result.record.objective == pytest.approx(6.0)


def _cooldown_case(cooldown: int) -> EngineResult:
    # B received X from A two days ago (a released order of an earlier cycle); C needs 10
    sites = [site("A"), site("B"), site("C"), site("D")]
    released = pl.DataFrame(
        [
            dict(
                order_id="o-1",
                origin="A",
                destination="B",
                mode="road",
                sku="X",
                ship_date=AS_OF - timedelta(days=3),
                arrive_date=AS_OF - timedelta(days=2),
                qty=50.0,
            )
        ],
        schema=RELEASED_ORDER_SCHEMA,
    )
    return run(
        sites=sites,
        lanes=[lane("B", "C", cost=1.0), lane("D", "C", cost=3.0)],
        inventory=[stock("A", 0), stock("B", 50), stock("C", 0), stock("D", 50)],
        demand={("C", "X"): [0, 10]},
        pol=policy(cooldown_days=cooldown),
        released=released,
    )


def test_cooldown_blocks_ping_pong():
    blocked = _cooldown_case(cooldown=7)
    free = _cooldown_case(cooldown=0)
    assert moved(blocked) == {("D", "C", 0): 10.0}
    assert blocked.record.objective == pytest.approx(30.0)
    assert moved(free) == {("B", "C", 0): 10.0}
    assert free.record.objective == pytest.approx(10.0)


@pytest.mark.parametrize(
    ("unmet", "expected_moves", "expected_objective"),
    [
        # lost sales: the only slot arrives on day 2, after the day-0 demand is gone: 10 × 5 lost
        ("lost_sales", {}, 50.0),
        # backorders: the day-0 demand waits 2 days (0.1 × 5 × 10 per day) and is filled on day 2 (+10 transport)
        ("backorders", {("A", "B", 0): 10.0}, 0.1 * 5 * 10 * 2 + 10.0),
    ],
)
def test_backorders_vs_lost_sales(unmet, expected_moves, expected_objective):
    result = run(
        sites=TWO,
        lanes=[lane("A", "B", lead=2, cost=1.0)],
        inventory=[stock("A", 20), stock("B", 0)],
        demand={("B", "X"): [10, 0, 0]},
        pol=policy(horizon_days=3, unmet_demand=unmet),
    )
    assert moved(result) == expected_moves
    assert result.record.objective == pytest.approx(expected_objective)


@pytest.mark.parametrize(
    ("lateral_cost", "expected"),
    [
        (1.0, {("B", "C", 0): 10.0}),  # a cheap lateral beats buying at 4/u
        (6.0, {("SUP-01", "C", 0): 10.0}),  # a dear lateral loses to the purchase
    ],
)
def test_supplier_purchase_vs_lateral_transfer(lateral_cost, expected):
    sites = [site("SUP-01", kind="supplier", echelon=0), site("B"), site("C")]
    result = run(
        sites=sites,
        lanes=[lane("SUP-01", "C", cost=4.0), lane("B", "C", cost=lateral_cost)],
        inventory=[stock("B", 100), stock("C", 0)],
        demand={("C", "X"): [0, 10]},
    )
    assert moved(result) == expected
    assert result.record.objective == pytest.approx(10 * min(lateral_cost, 4.0))
    kinds = set(result.orders["kind"].to_list())
    assert kinds == ({"transfer"} if lateral_cost < 4 else {"purchase"})


def test_safety_stock_at_the_source_is_respected():
    # A holds 12 with safety stock 10 and its own demand nil; B needs 10: taking more than 2 from A
    # costs 1/u/day of safety shortfall at A (days 0 and 1) + 1/u transport = 3/u < 5/u lost: still moved
    result = run(
        sites=TWO,
        lanes=[lane("A", "B", cost=1.0)],
        inventory=[stock("A", 12), stock("B", 0)],
        demand={("B", "X"): [0, 10]},
        safety={("A", "X"): 10.0},
    )
    # A's agent offers only its surplus: 12 − 10 at q80 ... = 2 spare, but the coordinator may take more
    assert moved(result) == {("A", "B", 0): 10.0}
    assert result.record.objective == pytest.approx(10 * 1.0 + 8 * 2 * 1.0)


def test_storage_capacity_at_the_destination():
    # B can hold 4 volume units; it needs 10 on day 1 and 10 on day 2. Lead 1, 3-day horizon: slots 0 and 1
    # holding day-1 arrivals is fine (consumed that day); the cap bites only on what stays overnight
    sites = [site("A"), site("B", storage_capacity=4.0)]
    result = run(
        sites=sites,
        lanes=[lane("A", "B", cost=1.0)],
        inventory=[stock("A", 100), stock("B", 0)],
        demand={("B", "X"): [0, 10, 10]},
        pol=policy(horizon_days=3),
    )
    plan = moved(result)
    assert sum(plan.values()) == pytest.approx(20.0)
    assert plan[("A", "B", 1)] >= 6.0  # at most 4 may wait overnight at B
    assert result.record.objective == pytest.approx(20.0)
    assert result.verification.ok


@pytest.mark.parametrize("capacity", [10.0, 30.0])
def test_a_site_over_capacity_may_refill_what_it_sells_up_to_its_peak(capacity):
    # B holds 20 of Y (volume 1 each), sells 5 a day; X runs out: 10 a day on days 1-3. Lane A→B
    # costs 50 per shipping day. With capacity 30 X may wait at B, one shipment covers days 1-3: 50 + 30.
    # With capacity 10 B is over it (no-action volume 15, 10, 5, 0 at the ends of days 0-3): the
    # plan may not raise B above its peak of 15, so X left overnight is at most 0, 5, 10, 15 on days
    # 0-3: 15 shipped on day 0 (5 left overnight), 15 on day 1 (10 left) → two shipments, 100 + 30.
    # Before the peak rule the room was what Y freed below 10 only (0, 0, 5, 10): three shipments.
    sites = [site("A"), site("B", storage_capacity=capacity)]
    result = run(
        sites=sites,
        lanes=[lane("A", "B", cost=1.0, fixed=50.0)],
        items=[item("X"), item("Y")],
        inventory=[stock("A", 100), stock("B", 0), stock("B", 20, sku="Y")],
        demand={("B", "X"): [0, 10, 10, 10], ("B", "Y"): [5, 5, 5, 5]},
        pol=policy(horizon_days=4, shortage_penalty_per_unit=20.0, safety_stock_shortfall_penalty_per_unit=0.0),
    )
    plan = moved(result)
    assert sum(plan.values()) == pytest.approx(30.0)
    assert result.verification.ok
    if capacity == 30.0:
        assert plan == {("A", "B", 0): 30.0}
        assert result.record.objective == pytest.approx(50 + 30)
    else:
        assert len(plan) == 2
        assert result.record.objective == pytest.approx(2 * 50 + 30)
        room = [result.inputs.storage_room[("B", t)] for t in range(4)]
        assert room == pytest.approx([0.0, 5.0, 10.0, 15.0])


@pytest.mark.parametrize("release_cost", [0.0, 0.1])
def test_release_now_cost_leaves_what_can_wait_to_a_later_cycle(release_cost):
    # B needs 10 on day 5 (lead 1): any ship day 0-4 is as good without the cost; with it, day 0 (the
    # freeze window, released by this cycle) costs 0.1 a unit more, so the move is left to a later cycle
    result = run(
        sites=TWO,
        lanes=[lane("A", "B", cost=1.0)],
        inventory=[stock("A", 100), stock("B", 0)],
        demand={("B", "X"): [0, 0, 0, 0, 0, 10, 0]},
        pol=policy(horizon_days=7, safety_stock_shortfall_penalty_per_unit=0.0, release_now_cost_per_unit=release_cost),
    )
    plan = moved(result)
    assert sum(plan.values()) == pytest.approx(10.0)
    assert result.record.objective == pytest.approx(10.0)
    assert result.record.plan_cost == pytest.approx(result.record.objective)
    if release_cost:
        assert all(day >= 1 for _, _, day in plan)


def test_release_now_cost_still_lets_a_later_need_ride_with_an_urgent_move():
    # 10 needed on day 1 (must ship now) and 10 on day 5; the lane costs 50 a shipping day: one move
    # of 20 now (50 + 20 + 20 × 0.1 released now) beats two moves (100 + 20 + 10 × 0.1)
    result = run(
        sites=TWO,
        lanes=[lane("A", "B", cost=1.0, fixed=50.0)],
        inventory=[stock("A", 100), stock("B", 0)],
        demand={("B", "X"): [0, 10, 0, 0, 0, 10, 0]},
        pol=policy(horizon_days=7, safety_stock_shortfall_penalty_per_unit=0.0, release_now_cost_per_unit=0.1),
    )
    assert moved(result) == {("A", "B", 0): 20.0}
    assert result.record.objective == pytest.approx(50 + 20 + 20 * 0.1)


@pytest.mark.parametrize(("waived", "ship_day", "objective"), [("never", 1, 116.0), ("below_safety_stock", 0, 115.0)])
def test_a_move_is_put_off_only_while_the_destination_stays_at_safety_stock(waived, ship_day, objective):
    # One lane (lead 1, 50 a shipping day, 1 a unit) carries two SKUs to B. X: 10 in stock, safety
    # stock 8 (0.25 a unit-day below it), sells 3 a day: with no move it ends day 0 at 7 and day 1 at 4.
    # Y: 50 sell on day 5. One lane-day carries both, and 11 X is all that is worth sending (a 12th
    # would save 3 unit-days below safety stock, 0.75, for 1). Shipped today: 50 + 61 + 16 unit-days
    # below safety stock (4.0) = 115, plus 6.1 of release-now premium on the 61 units; put off to
    # tomorrow, X also spends day 1 at 4 (1.0): 116. So the premium puts the whole move off, as it
    # would again the next day. Waived, it ships today: day 1 is the last day a move left to the next
    # cycle cannot reach, and X would spend it below safety stock.
    result = run(
        sites=TWO,
        lanes=[lane("A", "B", cost=1.0, fixed=50.0)],
        inventory=[stock("A", 100), stock("B", 10), stock("A", 100, sku="Y"), stock("B", 0, sku="Y")],
        items=[item(), item("Y")],
        demand={("B", "X"): [3.0] * 7, ("B", "Y"): [0, 0, 0, 0, 0, 50, 0]},
        safety={("B", "X"): 8.0},
        pol=policy(horizon_days=7, safety_stock_shortfall_penalty_per_unit=0.25, release_now_cost_per_unit=0.1,
                   release_now_cost_waived=waived),
    )
    flows = result.flows.group_by("sku", "ship_day").agg(pl.col("qty").sum()).sort("sku")
    assert flows.rows() == [("X", ship_day, 11.0), ("Y", ship_day, 50.0)]
    assert result.record.objective == pytest.approx(objective)
    assert result.record.plan_cost == pytest.approx(objective)
    assert result.inputs.release_now_waived == ({"B": ("X", 1)} if waived == "below_safety_stock" else {})
    reasons = [json.loads(r).get("released_now") for r in result.orders["reason"]]
    sentences = result.orders["explanation"].to_list()
    if waived == "below_safety_stock":  # both orders say why they were not left to the next cycle
        assert reasons == [{"sku": "X", "below_safety_stock_on": "2026-11-03"}] * 2
        assert all("B pays no release-now cost this cycle: with no new move it is below safety stock of X on"
                   " 2026-11-03" in s for s in sentences)
    else:
        assert reasons == [None, None]
        assert not any("release-now" in s for s in sentences)


@pytest.mark.parametrize(
    ("cover_days", "units", "objective"), [(0, 30.0, 80.0), (2, 50.0, 80.0 - 0.01 * 20)]
)
def test_a_lane_day_opened_anyway_carries_the_days_after_the_horizon(cover_days, units, objective):
    # hub B sells 15 a day on days 1-2 of a 3-day horizon (10 a day on average); the lane from its DC
    # (lead 1) costs 50 a shipping day and 1 a unit. With 2 days of end cover, up to 20 units left on
    # day 2 are credited 1.01 each: the same lane-day carries them for 0.01 a unit less than the next
    # plan would pay
    result = run(
        sites=[site("A"), site("B", kind="hub", echelon=2)],
        lanes=[lane("A", "B", cost=1.0, fixed=50.0)],
        inventory=[stock("A", 100), stock("B", 0)],
        demand={("B", "X"): [0, 15, 15]},
        pol=policy(horizon_days=3, end_of_horizon_cover_days=cover_days),
    )
    assert moved(result) == {("A", "B", 0): pytest.approx(units)}
    assert result.record.objective == pytest.approx(objective)
    assert result.record.plan_cost == pytest.approx(objective)


def test_the_end_cover_credit_never_opens_a_lane_day_of_its_own():
    # hub B holds what it sells in the horizon; 2 days of cover would credit 20 units 1.01 each
    # (20.2), but the lane-day from its DC costs 50 + 20
    result = run(
        sites=[site("A"), site("B", kind="hub", echelon=2)],
        lanes=[lane("A", "B", cost=1.0, fixed=50.0)],
        inventory=[stock("A", 100), stock("B", 30)],
        demand={("B", "X"): [10, 10, 10]},
        pol=policy(horizon_days=3, end_of_horizon_cover_days=2),
    )
    assert moved(result) == {}
    assert result.inputs.end_cover == {("B", "X"): (pytest.approx(20.0), pytest.approx(1.01))}
    assert result.record.objective == pytest.approx(0.0)


@pytest.mark.parametrize("cover_days", [0, 5])
def test_end_cover_takes_no_rescue_move_away(cover_days):
    # Hub B holds 10 and 30 short-dated units expiring on day 2; hub C sells 30. End cover would have B
    # topped up from its DC for after the horizon, but a site-SKU that sends sideways does not also
    # receive (no ping-pong), so B stays a sender: C still gets the short-dated units it can sell
    sites = [site("D"), site("B", kind="hub", echelon=2), site("C", kind="hub", echelon=2)]
    result = run(
        sites=sites,
        lanes=[lane("D", "B", cost=1.0, fixed=50.0), lane("B", "C", cost=1.0)],
        inventory=[stock("D", 100), stock("B", 10),
                   stock("B", 30, lot="L1", expiry_date=AS_OF + timedelta(days=2)), stock("C", 0)],
        demand={("B", "X"): [2, 2, 2, 2], ("C", "X"): [0, 10, 10, 10]},
        pol=policy(horizon_days=4, end_of_horizon_cover_days=cover_days),
    )
    assert result.flows["short_dated_qty"].sum() == pytest.approx(10.0)
    assert ("B", "X") not in result.inputs.end_cover


def test_no_end_cover_credit_where_a_lane_without_a_fixed_cost_reaches():
    # DC B is bought for from its supplier (0.5 a unit, no fixed cost) and replenished from the plant
    # (fixed 50): it can be topped up any day, so there is no lane-day to save and no credit
    sup = site("SUP-01", kind="supplier", echelon=0)
    result = run(
        sites=[sup, site("P", kind="plant", echelon=0), site("B", echelon=1)],
        lanes=[lane("SUP-01", "B", cost=0.5), lane("P", "B", cost=1.0, fixed=50.0)],
        inventory=[stock("P", 100), stock("B", 0)],
        demand={("B", "X"): [0, 10, 10]},
        pol=policy(horizon_days=3, end_of_horizon_cover_days=5),
    )
    assert result.inputs.end_cover == {}
    assert sum(moved(result).values()) == pytest.approx(20.0)


def _planned(*orders: tuple[str, str, int, float]) -> pl.DataFrame:
    """The previous plan's unreleased orders: (origin, destination, days after AS_OF, units), sku X, road."""
    return pl.DataFrame(
        [(o, d, "road", "X", AS_OF + timedelta(days=t), q) for o, d, t, q in orders],
        schema={"origin": pl.String, "destination": pl.String, "mode": pl.String, "sku": pl.String,
                "ship_date": pl.Date, "qty": pl.Float64},
        orient="row",
    )


@pytest.mark.parametrize(("on", "ship_days"), [("shipments", {1, 2, 3, 4}), ("changes", {0})])
def test_a_move_the_last_plan_put_off_to_today_is_not_put_off_again(on, ship_days):
    # As above (10 needed on day 5, any ship day 0-4 as good), but yesterday's plan meant to ship the
    # 10 today. Priced on shipments, today's plan puts it off again, a day at a time, cycle after
    # cycle. Priced on changes, shipping the planned 10 today costs no release-now premium and
    # putting it off costs 10 × 0.1, so it ships today.
    result = run(
        sites=TWO,
        lanes=[lane("A", "B", cost=1.0)],
        inventory=[stock("A", 100), stock("B", 0)],
        demand={("B", "X"): [0, 0, 0, 0, 0, 10, 0]},
        pol=policy(horizon_days=7, safety_stock_shortfall_penalty_per_unit=0.0, release_now_cost_per_unit=0.1,
                   release_now_cost_on=on),
        previous_orders=_planned(("A", "B", 0, 10.0), ("A", "B", 3, 5.0)),  # day 3: outside the window, no bearing
    )
    plan = moved(result)
    assert sum(plan.values()) == pytest.approx(10.0)
    assert {day for _, _, day in plan} <= ship_days
    assert result.record.objective == pytest.approx(10.0)
    assert result.record.plan_cost == pytest.approx(result.record.objective)
    assert result.inputs.planned_now == ({("A>B:road", "X"): 10.0} if on == "changes" else {})


@pytest.mark.parametrize(
    ("need", "planned", "plan", "objective"),
    [
        # nothing needed any more: dropping the planned 10 costs 10 × 0.1, far less than moving them
        ([0, 0, 0, 0, 0, 0, 0], 10.0, {}, 1.0),
        # 10 needed tomorrow, 4 were planned for today: 10 ship now, the 6 more pay the premium
        ([0, 10, 0, 0, 0, 0, 0], 4.0, {("A", "B", 0): 10.0}, 10.0 + 6 * 0.1),
    ],
)
def test_the_previous_plan_is_a_default_not_a_commitment(need, planned, plan, objective):
    result = run(
        sites=TWO,
        lanes=[lane("A", "B", cost=1.0)],
        inventory=[stock("A", 100), stock("B", 0)],
        demand={("B", "X"): need},
        pol=policy(horizon_days=7, safety_stock_shortfall_penalty_per_unit=0.0, release_now_cost_per_unit=0.1,
                   release_now_cost_on="changes"),
        previous_orders=_planned(("A", "B", 0, planned)),
    )
    assert moved(result) == pytest.approx(plan)
    assert result.record.objective == pytest.approx(objective)
    assert result.record.plan_cost == pytest.approx(objective)


@pytest.mark.parametrize(
    ("curve", "ship_day", "units", "objective"), [("flat", 3, 8.0, 67.2), ("expected_shortage", 0, 14.0, 80.0)]
)
def test_a_plan_that_runs_stock_down_to_the_last_units_pays_for_the_risk(curve, ship_day, units, objective):
    # B holds its safety stock (8) and sells 2 a day; one purchase (fixed 50, free per unit) refills
    # it. Holding (0.3/u/day) says buy late and little; each unit-day below safety stock says buy
    # early. Flat 0.25: buy 8 on day 3, so stock runs 6, 4, 2, 0 and again 6, 4, 2, 0 (67.2; day 2:
    # 67.6, day 0: 69.9). Expected shortage (P = 2 days, α = 0.95, penalty 20): the slices cost
    # ≈ 0.75, 1.52, 2.69, 4.18 per unit-day, so a run down to 0 costs ≈ 18.3 that day: buy 14 on
    # day 0 (80.0; day 1: 80.3, day 3: 100.1)
    sup = site("SUP-01", kind="supplier", echelon=0)
    result = run(
        sites=[sup, site("B")],
        lanes=[lane("SUP-01", "B", cost=0.0, fixed=50.0)],
        inventory=[stock("B", 8)],
        items=[item(holding=0.3)],
        demand={("B", "X"): [2.0] * 8},
        safety={("B", "X"): 8.0},
        pol=policy(
            horizon_days=8,
            shortage_penalty_per_unit=20.0,
            safety_stock_shortfall_penalty_per_unit=0.25,
            safety_stock_shortfall_curve=curve,
            solver={"time_limit_seconds": 60.0, "mip_gap": 0.0, "threads": 1},
        ),
    )
    assert moved(result) == {("SUP-01", "B", ship_day): pytest.approx(units)}
    assert result.record.objective == pytest.approx(objective, abs=0.01)
    # the verifier's replay prices the slices as the model does
    assert result.record.plan_cost == pytest.approx(result.record.objective)
    slices = result.inputs.shortfall_slices(("B", "X"))
    assert [w for w, _ in slices] == pytest.approx([8.0] if curve == "flat" else [2.0] * 4)


def test_expected_shortage_slices_rise_from_the_flat_floor_to_half_the_penalty_per_protection_day():
    slopes = expected_shortage_slopes(
        service_level=0.95, protection_days=2.0, shortage_penalty=20.0, floor=0.25, segments=4
    )
    z = 1.6448536
    mids = [0.875, 0.625, 0.375, 0.125]
    assert slopes == pytest.approx([20.0 * norm.sf(z * x) / 2.0 for x in mids], rel=1e-6)
    assert list(slopes) == sorted(slopes)  # convex: deeper slices never cheaper
    assert slopes[-1] < 20.0 / (2 * 2.0)  # below half the penalty per protection day
    # the flat penalty is the floor: a cheap item (penalty 1, P = 5 days: 0.005 .. 0.07 by the curve)
    low = expected_shortage_slopes(
        service_level=0.99, protection_days=5.0, shortage_penalty=1.0, floor=0.25, segments=3
    )
    assert low == (0.25, 0.25, 0.25)


def test_outbound_capacity_of_the_source():
    sites = [site("A", outbound_capacity_per_day=7.0), site("B"), site("C")]
    result = run(
        sites=sites,
        lanes=[lane("A", "B", cost=1.0), lane("C", "B", cost=2.0)],
        inventory=[stock("A", 100), stock("B", 0), stock("C", 100)],
        demand={("B", "X"): [0, 10]},
    )
    assert moved(result) == {("A", "B", 0): 7.0, ("C", "B", 0): 3.0}
    assert result.record.objective == pytest.approx(7 + 6)


def test_possession_limit_in_a_country():
    # at most 5 units of X may be held in CH at the end of any day: B (CH) gets 5 + what it sells that day
    sites = [site("A", country="DE"), site("B", country="CH")]
    result = run(
        sites=sites,
        lanes=[lane("A", "B", cost=1.0)],
        inventory=[stock("A", 100), stock("B", 0)],
        demand={("B", "X"): [0, 10, 10]},
        pol=policy(horizon_days=3, possession_limits=[{"country": "CH", "max_units": 5.0, "sku": "X"}]),
    )
    plan = moved(result)
    assert sum(plan.values()) == pytest.approx(20.0)
    assert plan[("A", "B", 0)] <= 15.0 + 1e-6
    assert result.verification.ok


def test_short_dated_lot_moves_to_where_it_sells_in_time():
    # A holds 30 units expiring on day 2 and sells none; B sells 10 a day. Only 10 reach B and sell
    # before expiry (arrive day 1, expire day 2). Each unit moved saves its unit cost (10) for 1 transport.
    sites = [site("A"), site("B")]
    result = run(
        sites=sites,
        lanes=[lane("A", "B", cost=1.0)],
        inventory=[stock("A", 30, lot="L1", expiry_date=AS_OF + timedelta(days=2)), stock("B", 0)],
        demand={("B", "X"): [0, 10, 10, 10]},
        pol=policy(horizon_days=4),
    )
    assert result.positions.positions.filter(pl.col("site_id") == "A")["unsellable_expiring"].item() == 30.0
    assert moved(result) == {("A", "B", 0): 10.0}
    assert result.flows["short_dated_qty"].sum() == pytest.approx(10.0)
    # 10 transport − 100 write-off avoided + B's lost days 2 and 3 (20 × 5)
    assert result.record.objective == pytest.approx(10.0 - 100.0 + 100.0)


def test_released_orders_count_as_receipts_unless_in_transit():
    released = pl.DataFrame(
        [
            dict(
                order_id="o-9",
                origin="A",
                destination="B",
                mode="road",
                sku="X",
                ship_date=AS_OF,
                arrive_date=AS_OF + timedelta(days=1),
                qty=10.0,
            )
        ],
        schema=RELEASED_ORDER_SCHEMA,
    )
    # the earlier cycle already covers day 1: nothing new to ship
    result = run(
        sites=TWO,
        lanes=[lane("A", "B")],
        inventory=[stock("A", 100), stock("B", 0)],
        demand={("B", "X"): [0, 10]},
        released=released,
    )
    assert moved(result) == {}


def test_build_solve_extract_are_separate_steps():
    result = run(
        sites=TWO,
        lanes=[lane("A", "B")],
        inventory=[stock("A", 100), stock("B", 0)],
        demand={("B", "X"): [10, 10]},
    )
    m = build_model(result.inputs)
    assert isinstance(m, pyo.ConcreteModel)
    assert {"SHIP_SLOTS", "PAIR_DAYS", "DAYS"} <= {c.local_name for c in m.component_objects(pyo.Set)}
    assert {"ship_units", "stock_units", "shortage_units"} <= {v.local_name for v in m.component_objects(pyo.Var)}
    r = solve(m, SolveOptions())
    assert r.status == "optimal"
    assert r.objective == pytest.approx(60.0)
    flows = extract_plan(m)
    assert flows.select("origin", "destination", "ship_day", "qty").rows() == [("A", "B", 0, 10.0)]


def test_persistent_interface_gives_the_same_answer():
    result = run(
        sites=TWO,
        lanes=[lane("A", "B")],
        inventory=[stock("A", 100), stock("B", 0)],
        demand={("B", "X"): [10, 10]},
    )
    m = build_model(result.inputs)
    r = solve(m, SolveOptions(interface="persistent"))
    assert r.objective == pytest.approx(60.0)
    assert extract_plan(m)["qty"].to_list() == [10.0]


def test_non_optimal_solve_raises_unless_accepted():
    result = run(
        sites=TWO,
        lanes=[lane("A", "B", fixed=1.0)],
        inventory=[stock("A", 100), stock("B", 0)],
        demand={("B", "X"): [0, 10]},
    )
    m = build_model(result.inputs)
    stop_at_once = (("presolve", "off"),)  # presolve alone would solve this tiny MIP at time 0
    with pytest.raises(SolverError, match="did not return an optimal solution"):
        solve(m, SolveOptions(time_limit_seconds=0.0, highs_options=stop_at_once))
    r = solve(m, SolveOptions(time_limit_seconds=0.0, allow_nonoptimal=True, highs_options=stop_at_once))
    assert r.status in ("no_solution", "feasible")


@pytest.mark.parametrize(("fixed", "groups"), [(0.0, 2), (5.0, 1)])
def test_skus_split_into_independent_groups_unless_something_couples_them(fixed, groups):
    from ballast.models.network import sku_groups

    result = run(
        sites=TWO,
        items=[item("X"), item("Y")],
        lanes=[lane("A", "B", fixed=fixed)],
        inventory=[stock("A", 100), stock("A", 100, sku="Y"), stock("B", 0), stock("B", 0, sku="Y")],
        demand={("B", "X"): [0, 10], ("B", "Y"): [0, 10], ("A", "Y"): [0, 0]},
    )
    # a lane-day binary (fixed cost) is shared by both SKUs; without it they are independent
    assert len(sku_groups(result.inputs)) == groups
    assert result.record.groups == groups
    assert result.flows["qty"].sum() == pytest.approx(20.0)
    assert result.verification.ok


@pytest.mark.parametrize(("safety_time", "ship_days"), [(0, [1, 2]), (1, [0, 1])])
def test_safety_time_ships_each_move_that_many_days_before_its_destination_needs_it(safety_time, ship_days):
    # given: B holds 20 and sells 10 a day; A→B takes a day; holding makes every move just in time
    result = run(
        sites=TWO,
        items=[item("X", holding=0.1)],
        lanes=[lane("A", "B")],
        inventory=[stock("A", 100), stock("B", 20)],
        demand={("B", "X"): [10, 10, 10, 10]},
        pol=policy(horizon_days=4, safety_time_days=safety_time),
    )
    # then: the 10 units B sells on days 2 and 3 are planned to land safety time ahead of the nominal
    # lead, so they ship that much earlier; the order's arrive day is that planned receipt
    rows = result.flows.select("ship_day", "arrive_day", "qty").rows()
    assert rows == [(t, t + 1 + safety_time, 10.0) for t in ship_days]
    assert result.verification.ok
    assert result.inputs.arcs["A>B:road"].lead_days == 1 + safety_time
