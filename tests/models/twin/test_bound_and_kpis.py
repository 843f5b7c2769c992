"""The perfect-information bound is below every policy; KPIs count what they say."""

from __future__ import annotations

import numpy as np
import pytest

from ballast.models.twin.kpis import (
    lane_days,
    ping_pongs,
    ratios_to_bound_of_seed,
    run_kpis,
    solver_stops,
    transport_for_after_run,
    with_bound_ratios,
)
from ballast.models.twin.sim import Ledger, Shipment
from ballast.models.twin.world import run_baseline, run_bound


def test_bound_is_at_most_every_baseline_cost(make_small_world) -> None:  # noqa: ANN001
    world = make_small_world("regional_surge", 2, 8)
    lp = run_bound(world, integer_lanes=False)
    mip = run_bound(world, integer_lanes=True, time_limit_seconds=60)
    assert lp is not None and lp.status == "optimal" and mip is not None
    # switching lanes on and off can only cost more than paying a fraction of their fixed cost
    assert lp.kpis["total_cost"] <= mip.kpis["total_cost"] + 1e-6
    assert mip.kpis["total_cost"] <= mip.kpis["incumbent_cost"] + 1e-6
    for kind in ("no_transfers", "reactive"):
        for m, r in ((0.8, 1), (1.25, 3)):
            cost = run_baseline(world, kind, m, r, 1.65).total_cost()
            assert mip.kpis["total_cost"] <= cost + 1e-6
    assert 0.0 <= mip.kpis["fill_rate"] <= 1.0


def test_the_bound_stops_at_its_time_limit_with_a_proven_lower_bound_and_an_incumbent() -> None:
    """HiGHS 1.16 kept branching on this model for 900 s past a 60 s limit; the bound interrupts it."""
    import time

    from ballast.models.policy import load_policy
    from ballast.models.sample import generate_network
    from ballast.models.twin.config import load_twin_settings
    from ballast.models.twin.scenarios import get_scenario
    from ballast.models.twin.world import make_network, make_world
    from ballast.settings import PACKAGED_POLICY

    settings, (policy, _) = load_twin_settings(), load_policy(PACKAGED_POLICY)
    frames = generate_network(settings.sample_spec())
    world = make_world(
        frames, make_network(frames, settings, policy), get_scenario("plant_outage"), 2, 21, settings, policy
    )
    started = time.perf_counter()
    res = run_bound(world, integer_lanes=True, time_limit_seconds=5, mip_gap=0.0)
    waited = time.perf_counter() - started
    assert res is not None and res.status.startswith("maxTimeLimit"), res and res.status
    assert waited < 60, waited  # the limit plus loading the incumbent, not the search to the end
    assert 0 < res.kpis["total_cost"] < res.kpis["incumbent_cost"]


def test_bound_on_a_hand_case_moves_stock_laterally_instead_of_losing_sales(tiny) -> None:  # noqa: ANN001
    from ballast.models.twin.bound import build_bound, solve_bound
    from ballast.models.twin.paths import Paths

    days = 3
    demand = np.zeros((days, tiny.n_nodes, 1))
    demand[:, 2, 0] = [8, 8, 8]  # A: 24 needed, holds 10; B holds 40 and sells nothing; DC has 100
    paths = Paths(
        demand,
        np.tile(tiny.lane_lead, (days, 1)),
        np.tile(tiny.out_capacity, (days, 1)),
        np.zeros(days, dtype=bool),
        demand.copy(),
    )
    res = solve_bound(build_bound(tiny, paths, np.array([20.0]), np.array([5.0])), tiny, paths)
    # no sale is lost; 14 units reach A by day 1 on the cheapest lane (B→A at 0.2, no fixed cost)
    assert res.kpis["lost_units"] == pytest.approx(0.0)
    assert res.kpis["transport_cost"] == pytest.approx(14 * 0.2)
    assert res.kpis["lane_days"] == 0 and res.kpis["lane_fixed_cost"] == 0
    assert res.kpis["transport_for_after_run"] == 0  # A sells all it gets


def _ship(day: int, o: int, d: int) -> Shipment:
    return Shipment(f"S{day}{o}{d}", 0, o, d, 0, 5.0, day, day + 1, "transfer")


def test_ping_pong_counts_a_return_within_the_window(tiny) -> None:  # noqa: ANN001
    z = np.zeros((1, 4, 1))
    led = Ledger(z, z, z, z, z, np.zeros(1), np.zeros(1), np.zeros(1), np.zeros(1))
    led.shipments = [_ship(0, 2, 3), _ship(3, 3, 2), _ship(30, 2, 3)]
    assert ping_pongs(led, tiny, 14) == 1
    assert ping_pongs(led, tiny, 2) == 0


def test_lane_days_count_each_fixed_cost_lane_once_a_day_inside_the_run(tiny) -> None:  # noqa: ANN001
    z = np.zeros((5, 4, 1))
    led = Ledger(z, z, z, z, z, np.zeros(5), np.zeros(5), np.zeros(5), np.zeros(5))
    dc_a = lambda day, arrive: Shipment(f"A{day}", 1, 1, 2, 0, 5.0, day, arrive, "transfer")  # noqa: E731
    led.shipments = [
        dc_a(0, 1),
        dc_a(0, 1),  # a second SKU or order on the same lane-day: no new fixed cost
        dc_a(2, 3),
        Shipment("B", 2, 1, 3, 0, 5.0, 2, 3, "transfer"),  # DC→B, another lane
        Shipment("L", 3, 2, 3, 0, 5.0, 2, 3, "transfer"),  # A→B: no fixed cost
        dc_a(4, 5),  # lands after the run: outside its bill
        Shipment("P", 0, 0, 1, 0, 5.0, 1, 4, "purchase"),
    ]
    assert lane_days(led, tiny) == (3, 30.0)


def test_transport_for_after_run_takes_the_last_arrivals_first() -> None:
    end = np.array([[0.0, 0.0], [12.0, 3.0]])  # node 1 ends with 12 units of SKU 0 and 3 of SKU 1
    arrivals = [
        (1, 0, 2, 20.0, 0.5),  # first: sold
        (1, 0, 9, 10.0, 2.0),  # last: all 10 left at the end
        (1, 1, 4, 5.0, 1.0),  # 3 of 5 left
        (0, 0, 3, 7.0, 9.0),  # node 0 ends empty
    ]
    units, cost = transport_for_after_run(arrivals, end)
    assert units == pytest.approx(10 + 2 + 3)
    assert cost == pytest.approx(10 * 2.0 + 2 * 0.5 + 3 * 1.0)
    assert transport_for_after_run([], end) == (0.0, 0.0)


def test_solver_stops_count_cycles_stopped_by_the_clock_and_by_the_node_limit() -> None:
    attempts = [
        ["mip: kOptimal, verified"],
        ["incumbent: kTimeLimit, polish: none of 12 lane-day moves lowered the objective (9.1 s), verified"],
        ["mip: kOptimal, verified", "incumbent: kSolutionLimit, verified"],  # two SKU groups
        ["mip: feasible (kTimeLimit)", "lp_rounded: verified"],
        [],  # a plan with no SKU to solve
    ]
    assert solver_stops(attempts) == {"planned_cycles": 5.0, "clock_stopped_cycles": 2.0, "node_limited_cycles": 1.0}


def test_kpis_and_ratios(world_steady) -> None:  # noqa: ANN001
    ledger = run_baseline(world_steady, "no_transfers", 1.0, 1, 1.65)
    k = run_kpis(ledger, world_steady.network, 14)
    assert 0.0 <= k["fill_rate"] <= 1.0
    parts = ("holding_cost", "transport_cost", "purchase_cost", "shortage_cost", "overflow_cost")
    assert k["total_cost"] == pytest.approx(sum(k[p] for p in parts))
    assert 0.0 <= k["transport_for_after_run"] <= k["transport_cost"]
    assert k["cost_within_run"] == pytest.approx(k["total_cost"] - k["transport_for_after_run"])
    r = with_bound_ratios(k, {"total_cost": k["total_cost"] / 2, "fill_rate": 1.0})
    assert r["total_cost_vs_bound"] == pytest.approx(2.0)


def test_ratios_of_runs_merged_from_separate_homes_come_from_the_bound_of_their_seed() -> None:
    import polars as pl

    runs = pl.DataFrame(
        {
            "scenario": ["steady"] * 5,
            "seed": [1, 1, 2, 2, 3],
            "policy": ["ballast", "bound", "ballast", "bound", "ballast"],
            "total_cost": [120.0, 100.0, 130.0, 104.0, 99.0],
            "fill_rate": [0.98, 1.0, 0.99, 1.0, 0.97],
            "total_cost_vs_bound": [None, None, None, None, 1.5],  # seed 3: recorded with its own bound
        }
    )
    out = {(r["seed"], r["policy"]): r for r in ratios_to_bound_of_seed(runs).iter_rows(named=True)}
    assert out[(1, "ballast")]["total_cost_vs_bound"] == pytest.approx(1.2)
    assert out[(2, "ballast")]["total_cost_vs_bound"] == pytest.approx(1.25)
    assert out[(2, "ballast")]["fill_rate_vs_bound"] == pytest.approx(0.99)
    assert out[(3, "ballast")]["total_cost_vs_bound"] == 1.5  # no bound of seed 3 here: the recorded one stays
    assert out[(1, "bound")]["total_cost_vs_bound"] is None
    assert ratios_to_bound_of_seed(runs.filter(pl.col("policy") != "bound")).equals(
        runs.filter(pl.col("policy") != "bound")
    )
