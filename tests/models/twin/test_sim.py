"""The day step: exact bookkeeping on a hand-made network, and conservation on the generated one."""

from __future__ import annotations

import numpy as np
import pytest

from ballast.models.twin.kpis import run_kpis
from ballast.models.twin.network import Receipt, TwinNetwork
from ballast.models.twin.paths import Paths
from ballast.models.twin.sim import Order, Simulator
from tests.models.twin.conftest import tiny_network


def _paths(net: TwinNetwork, demand_a: list[float], demand_b: list[float], lead: int | None = None) -> Paths:
    days = len(demand_a)
    demand = np.zeros((days, net.n_nodes, net.n_skus))
    demand[:, 2, 0] = demand_a
    demand[:, 3, 0] = demand_b
    leads = np.tile(net.lane_lead, (days, 1)) if lead is None else np.full((days, net.n_lanes), lead)
    return Paths(
        demand=demand,
        lead=leads,
        out_capacity=np.tile(net.out_capacity, (days, 1)),
        stale_wms=np.zeros(days, dtype=bool),
        expected_demand=demand.copy(),
    )


def test_lateral_transfer_arrives_after_its_lead_time_and_costs_what_the_lane_says(tiny: TwinNetwork) -> None:
    # given HUB-A holds 10, HUB-B 40, demand 8/day at A and 0 at B
    paths = _paths(tiny, [8, 8, 8], [0, 0, 0])
    sim = Simulator(tiny, paths, penalty=np.array([20.0]))
    # when B sends 15 to A on day 0 (lane 4, lead 1)
    sim.submit([Order(4, 0, 15.0, 0, "T1")])
    for _ in range(3):
        sim.step()
    # then A sold 8, 8, 8: day 0 from its 10, day 1 from 2 + 15 arrived, day 2 from 9 left
    led = sim.ledger
    assert led.sales[:, 2, 0].tolist() == [8.0, 8.0, 8.0]
    assert led.unmet.sum() == 0.0
    assert sim.stock[1:, 0].tolist() == [100.0, 1.0, 25.0]
    assert led.transport_cost.tolist() == [15 * 0.2, 0.0, 0.0]
    # holding on end-of-day stock: (100 + 2 + 25) + (100 + 9 + 25) + (100 + 1 + 25), at 0.01
    assert led.holding_cost.sum() == pytest.approx(0.01 * (127 + 134 + 126))


def test_a_shipment_landing_after_the_last_day_is_kept_out_of_the_runs_cost(tiny: TwinNetwork) -> None:
    # a 2-day run; DC→A (lead 1, 0.5 per unit + 10 fixed) ships 4 on day 0 (lands day 1) and 6 on day 1 (lands day 2)
    paths = _paths(tiny, [0, 0], [0, 0])
    sim = Simulator(tiny, paths, penalty=np.array([20.0]))
    sim.submit([Order(1, 0, 4.0, 0, "IN"), Order(1, 0, 6.0, 1, "AFTER")])
    sim.step()
    sim.step()
    led = sim.ledger
    assert led.transport_cost.tolist() == [4 * 0.5 + 10.0, 0.0]
    assert led.after_window_cost.tolist() == [0.0, 6 * 0.5 + 10.0]  # its own lane-day fixed cost with it
    assert led.total_cost() == pytest.approx(led.holding_cost.sum() + 12.0)
    assert sim.stock[1, 0] == 100.0 - 10.0  # the goods did leave the DC within the run
    assert run_kpis(led, tiny, 14)["after_window_cost"] == pytest.approx(13.0)


def test_short_stock_and_lane_capacity_cut_a_shipment_and_lost_sales_are_charged(tiny: TwinNetwork) -> None:
    net = tiny_network(stock=(0.0, 10.0, 40.0), lane_capacity=6.0)
    paths = _paths(net, [12, 0], [0, 0])
    sim = Simulator(net, paths, penalty=np.array([20.0]))
    sim.submit([Order(4, 0, 30.0, 0, "T1"), Order(1, 0, 5.0, 0, "R1")])  # B→A capped at 6; DC has nothing
    sim.step()
    assert [s.qty for s in sim.ledger.shipments] == [6.0]
    assert sim.ledger.short_shipped_units == 24.0 + 5.0
    assert sim.ledger.unmet[0, 2, 0] == 2.0  # A had 10 for a demand of 12
    assert sim.ledger.shortage_cost[0] == 40.0


def test_backorders_are_served_first_the_next_day() -> None:
    net = tiny_network(stock=(0.0, 5.0, 0.0), receipts=(Receipt("PO-1", "purchase_order", -1, 2, 0, 10.0, None, 1),))
    paths = _paths(net, [8, 3], [0, 0])
    sim = Simulator(net, paths, penalty=np.array([20.0]), unmet="backorders", backorder_daily_share=0.1)
    sim.step()
    sim.step()
    assert sim.ledger.backlog[:, 2, 0].tolist() == [3.0, 0.0]
    assert sim.ledger.sales[:, 2, 0].tolist() == [5.0, 6.0]
    assert sim.ledger.unmet[:, 2, 0].tolist() == [3.0, 0.0]


def test_stock_is_conserved_over_a_generated_network(world_steady) -> None:  # noqa: ANN001
    from ballast.models.twin.world import run_baseline

    world = world_steady
    ledger = run_baseline(world, "reactive", 1.0, 1, 1.65)
    net = world.network
    initial = net.stock0.sum() + sum(r.qty for r in net.receipts)
    bought = sum(s.qty for s in ledger.shipments if s.kind == "purchase")
    end_stock = ledger.stock[-1].sum()
    # everything not yet arrived at the end: re-simulate to read the pipeline
    sim = world.simulator()
    from ballast.models.twin import baselines as bl

    sim.run(bl.reactive_policy(bl.base_stock_levels(net, world.model, 1.0, 1.65, 1), net))
    in_transit = sum(s.qty for s in sim.pipeline)
    assert sim.ledger.total_cost() == pytest.approx(ledger.total_cost())
    assert initial + bought == pytest.approx(end_stock + in_transit + ledger.sales.sum())
    assert ledger.sales.sum() + ledger.unmet.sum() == pytest.approx(ledger.demand.sum())


def test_a_day_past_the_end_is_refused(tiny: TwinNetwork) -> None:
    sim = Simulator(tiny, _paths(tiny, [1], [1]), penalty=np.array([20.0]))
    sim.step()
    with pytest.raises(RuntimeError, match="past its end"):
        sim.step()


def test_volume_above_storage_capacity_is_charged_as_overflow() -> None:
    from dataclasses import replace

    net = replace(tiny_network(stock=(0.0, 10.0, 40.0)), storage_capacity=np.array([np.inf, np.inf, 8.0, np.inf]))
    paths = _paths(net, [1, 1], [0, 0])
    sim = Simulator(net, paths, penalty=np.array([20.0]), overflow_rate=0.5)
    sim.step()
    sim.step()
    assert sim.ledger.overflow[:, 2].tolist() == [1.0, 0.0]  # A holds 9 then 8 litres for a capacity of 8
    assert sim.ledger.total_cost() == pytest.approx(sim.ledger.holding_cost.sum() + 0.5)
