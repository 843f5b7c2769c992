"""Common random numbers and scenario effects."""

from __future__ import annotations

import numpy as np
import pytest

from ballast.models.twin import baselines as bl
from ballast.models.twin.scenarios import LEAN_START, SCENARIOS, Scenario, get_scenario, scenario_names
from ballast.models.twin.world import run_baseline


def test_every_policy_sees_the_same_demand_and_lead_times(make_small_world) -> None:  # noqa: ANN001
    a, b = make_small_world("steady", 5, 8), make_small_world("steady", 5, 8)
    assert np.array_equal(a.paths.demand, b.paths.demand)
    assert np.array_equal(a.paths.lead, b.paths.lead)
    none = run_baseline(a, "no_transfers", 1.0, 1, 1.65)
    reactive = run_baseline(b, "reactive", 1.5, 3, 1.65)
    assert np.array_equal(none.demand, reactive.demand)
    assert make_small_world("steady", 6, 8).paths.demand.sum() != a.paths.demand.sum()


def test_simulated_demand_matches_the_history_level(make_small_world) -> None:  # noqa: ANN001
    w = make_small_world("steady", 1, 56)
    hist = w.network.history[-56:].sum()
    assert w.paths.demand.sum() == pytest.approx(hist, rel=0.15)


def test_regional_surge_raises_dach_hub_demand_only_in_its_window(make_small_world) -> None:  # noqa: ANN001
    w = make_small_world("regional_surge", 1, 21)
    net = w.network
    dach = [n for n in range(net.n_nodes) if net.kind[n] == "hub" and net.country[n] in ("DE", "AT", "CH")]
    other = [n for n in range(net.n_nodes) if net.kind[n] == "hub" and n not in dach]
    steady = make_small_world("steady", 1, 21)
    assert w.paths.demand[5:19, dach].sum() > 1.4 * steady.paths.demand[5:19, dach].sum()
    assert np.array_equal(w.paths.expected_demand[:, other], steady.paths.expected_demand[:, other])


def test_port_congestion_triples_one_lane_plant_outage_stops_the_plant_data_fault_flags_day_6(make_small_world) -> None:  # noqa: ANN001
    port = make_small_world("port_congestion", 1, 21)
    steady = make_small_world("steady", 1, 21)
    changed = np.flatnonzero((port.paths.lead != steady.paths.lead).any(axis=0))
    assert len(changed) == 1
    lane = changed[0]
    assert port.paths.lead[3:17, lane].min() >= 3 * port.network.lane_lead[lane]
    # the congested lane is the one that replenishes the hub selling the most
    net, level = port.network, port.model.level.sum(axis=1)
    hubs = [n for n in range(net.n_nodes) if net.kind[n] == "hub"]
    busiest = max(hubs, key=lambda n: level[n])
    assert net.lane_dest[lane] == busiest and net.parent_lanes()[busiest] == lane
    outage = make_small_world("plant_outage", 1, 21)
    plant = outage.network.kind.index("plant")
    assert outage.paths.out_capacity[4:11, plant].max() == 0.0
    assert outage.paths.out_capacity[11:, plant].min() > 0.0
    fault = make_small_world("data_fault", 1, 21)
    assert np.flatnonzero(fault.paths.stale_wms).tolist() == [6]


def test_supplier_delay_adds_seven_days_to_its_lanes_and_to_open_pos_due_in_two_weeks(make_small_world) -> None:  # noqa: ANN001
    w = make_small_world("supplier_delay", 1, 21)
    steady = make_small_world("steady", 1, 21)
    sup = w.network.nodes.index("SUP-01")
    lanes = np.flatnonzero(w.network.lane_origin == sup)
    assert (w.paths.lead[:14, lanes] - steady.paths.lead[:14, lanes] == 7).all()
    assert (w.paths.lead[14:, lanes] == steady.paths.lead[14:, lanes]).all()
    lean = make_small_world(Scenario("lean", "", LEAN_START), 1, 21)
    due = {(r.ref, r.sku): r.day for r in lean.network.receipts if r.kind == "purchase_order"}
    late = {(r.ref, r.sku): r.day for r in w.network.receipts if r.kind == "purchase_order"}
    assert due.keys() == late.keys() and any(d < 14 for d in due.values()) and any(d >= 14 for d in due.values())
    assert all(late[k] == d + (7 if d < 14 else 0) for k, d in due.items())


def test_lean_start_scales_stock_and_what_is_on_its_way_by_kind_of_site(make_small_world) -> None:  # noqa: ANN001
    lean = make_small_world("plant_outage", 1, 21)
    full = make_small_world("steady", 1, 21)
    net = full.network
    factor = np.array([{"hub": 0.5, "dc": 0.3, "plant": 0.2}.get(k, 1.0) for k in net.kind])
    assert np.array_equal(lean.network.stock0, np.round(full.network.stock0 * factor[:, None]))
    assert full.network.stock0[net.kind.index("plant")].sum() > 0

    def inbound(n) -> np.ndarray:  # noqa: ANN001
        out = np.zeros(n.n_nodes)
        for r in n.receipts:
            out[r.dest] += r.qty
        return out

    assert (inbound(full.network) > 0).sum() >= 3  # in transit to hubs and DCs, POs into the plant
    assert inbound(lean.network) == pytest.approx(inbound(full.network) * factor, abs=len(net.receipts))
    assert all(r.qty >= 1 for r in lean.network.receipts)
    # the lean start is the scenario's own: the steady world is the sample network as generated
    assert np.array_equal(full.network.stock0, make_small_world("data_fault", 1, 21).network.stock0)


def test_on_the_twin_network_the_supply_scenarios_hurt_the_base_stock_rule_beyond_the_lean_start() -> None:
    """The default twin network (the one `ballast simulate` runs): each disruption loses sales
    the lean start alone does not (base-stock rule, multiplier 1, review every 3 days, seed 2)."""
    from ballast.models.policy import load_policy
    from ballast.models.sample import generate_network
    from ballast.models.twin.config import load_twin_settings
    from ballast.models.twin.world import make_network, make_world
    from ballast.settings import PACKAGED_POLICY

    settings, (policy, _) = load_twin_settings(), load_policy(PACKAGED_POLICY)
    frames = generate_network(settings.sample_spec())
    network = make_network(frames, settings, policy)

    def lost(scenario: Scenario) -> float:
        world = make_world(frames, network, scenario, 2, 21, settings, policy)
        return float(run_baseline(world, "no_transfers", 1.0, 3, 1.65).unmet.sum())

    lean = lost(Scenario("lean", "", LEAN_START))
    for name in ("port_congestion", "plant_outage", "supplier_delay"):
        assert lost(get_scenario(name)) > lean + 20, name
    assert lost(get_scenario("steady")) < lean  # the lean start itself is harder than the sample's


def test_scenario_names_are_checked() -> None:
    assert scenario_names("all") == list(SCENARIOS)
    assert scenario_names("steady, promotion") == ["steady", "promotion"]
    with pytest.raises(KeyError, match="unknown scenario 'nope'"):
        get_scenario("nope")


def test_base_stock_level_is_lead_plus_review_cover_with_safety(tiny) -> None:  # noqa: ANN001
    from ballast.models.twin.paths import fit_demand

    model = fit_demand(tiny, 28, 0.5)  # history: 5/day flat at each hub, no variance -> k huge
    rule = bl.base_stock_levels(tiny, model, 1.0, 0.0, review_days=1)
    assert rule.level[2, 0] == 10.0  # 5/day × (lead 1 + review 1)
    assert rule.level[1, 0] == 40.0  # DC serves both hubs: 10/day × (lead 3 + 1)
    assert rule.level[0, 0] == 0.0  # suppliers hold nothing
