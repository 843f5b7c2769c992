"""Hub agents: pure per-site statements of surplus / deficit, and proposals with rationale."""

from __future__ import annotations

import polars as pl

from ballast.models.agents import match_proposals, run_agent, site_slices
from ballast.models.engine import contract_frames
from ballast.models.positions import build_positions
from tests.models.test_coordinator import AS_OF, forecast, lane, policy, site, stock, targets


def _reports(pol=None):
    pol = pol or policy(horizon_days=5)
    sites = [site("DC", echelon=1), site("H1", kind="hub", echelon=2), site("H2", kind="hub", echelon=2)]
    f = contract_frames(
        sites=sites,
        items=[dict(sku="X", unit_cost=10.0, holding_cost_per_day=0.0, unit_volume=1.0)],
        lanes=[lane("DC", "H1"), lane("H2", "H1"), lane("H1", "H2"), lane("DC", "H2", lead=9)],
        inventory=[stock("DC", 500), stock("H1", 5), stock("H2", 200)],
    )
    fc = forecast({("H1", "X"): [10.0] * 5, ("H2", "X"): [10.0] * 5, ("DC", "X"): [0.0] * 5})
    tg = targets({("H1", "X"): 8.0, ("H2", "X"): 8.0})
    pos = build_positions(f["inventory"], f["in_transit"], f["purchase_orders"], AS_OF, forecasts=fc)
    slices = site_slices(f["sites"], f["lanes"], pos.positions, pos.receipts, pos.issues, fc, tg, pol, AS_OF)
    return f, slices, [run_agent(s) for s in slices]


def test_one_agent_per_own_site_each_with_only_its_slice():
    _f, slices, _ = _reports()
    assert [s.site_id for s in slices] == ["DC", "H1", "H2"]
    h1 = slices[1]
    assert set(h1.forecast["sku"]) == {"X"} and h1.stock["sellable"].to_list() == [5.0]
    assert set(h1.inbound["origin"]) == {"DC", "H2"}
    assert set(h1.outbound["destination"]) == {"H2"}


def test_statement_deficit_bites_when_stock_falls_below_safety_stock():
    _f, _s, reports = _reports()
    h1 = reports[1].statement.row(0, named=True)
    assert h1["status"] == "deficit"
    # 5 − 10·(t+1) < 8 from day 0; worst on day 4: 8 − (5 − 50) = 53
    assert h1["deficit_units"] == 53.0
    assert h1["bite_date"] == AS_OF
    assert h1["stockout_date"] == AS_OF
    h2 = reports[2].statement.row(0, named=True)
    assert h2["status"] == "surplus"
    assert 0 < h2["surplus_units"] < 200 - 50 - 8 + 1e-9  # q80 demand is above the mean


def test_agent_is_a_pure_function():
    _f, slices, reports = _reports()
    again = run_agent(slices[1])
    assert again.statement.equals(reports[1].statement)
    assert again.intents.equals(reports[1].intents)


def test_proposals_join_surplus_offers_with_deficit_requests_and_explain_them():
    f, _s, reports = _reports()
    proposals = match_proposals(reports, f["sites"])
    rows = proposals.select("kind", "origin", "destination", "sku").rows()
    assert rows == [("lateral", "H2", "H1", "X")]  # DC→H1 is replenishment: no proposal needed
    p = proposals.row(0, named=True)
    assert p["units"] == p["destination_deficit_units"] == 53.0
    assert "H1 falls 53.0 u below safety stock" in p["rationale"]
    assert "H2 can spare" in p["rationale"]
    assert len(p["proposal_id"]) == 16


def test_lanes_too_slow_for_the_horizon_are_not_requested():
    _f, _s, reports = _reports()
    intents = reports[2].intents  # H2 has no deficit; look at H1's requests instead
    req = reports[1].intents.filter(pl.col("role") == "request")
    assert set(req["origin"]) == {"DC", "H2"}
    assert intents.filter(pl.col("role") == "request").is_empty()


def test_forbidden_lanes_are_invisible_to_agents():
    pol = policy(horizon_days=5, forbidden_lanes=[{"origin": "H2", "destination": "H1"}])
    f, slices, reports = _reports(pol)
    assert "H2" not in set(slices[1].inbound["origin"])
    assert match_proposals(reports, f["sites"]).is_empty()
