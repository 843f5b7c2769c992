"""The simulator's extracts pass the real ingest and quality gates; outbox orders come back as orders."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from ballast.io import twin_extracts as tx
from ballast.io.cycle_inputs import latest_files, passing_as_of
from ballast.io.ingest import ingest_inbox
from ballast.io.staging import validate_pending
from ballast.io.warehouse import open_warehouse, query_frame
from ballast.models.policy import load_policy
from ballast.models.readiness import readiness_problems
from ballast.models.twin.sim import Order
from ballast.settings import PACKAGED_POLICY
from tests.models.twin.conftest import _world, small_frames  # noqa: F401 - session fixture


@pytest.fixture
def world(small_frames):  # noqa: ANN001, ANN201, F811
    return _world(small_frames, "data_fault", 4, 8)


def _gate(home: Path, as_of):  # noqa: ANN001, ANN202
    policy, _ = load_policy(PACKAGED_POLICY)
    with open_warehouse(home / "db.duckdb") as con:
        ingest_inbox(con, home / "inbox", home / "archive", as_of)
        results = validate_pending(con, policy, as_of)
        problems = readiness_problems(latest_files(con, as_of), passing_as_of(con, as_of), as_of, policy)
        staged = query_frame(con, "SELECT shipment_id FROM stg_in_transit")
    return results, problems, staged


def test_first_day_and_next_days_pass_the_gates_and_a_stale_wms_day_is_refused(world, tmp_path: Path) -> None:  # noqa: ANN001
    sim = world.simulator()
    start = world.network.start
    from datetime import UTC, datetime

    as_of0 = datetime(start.year, start.month, start.day, 6, tzinfo=UTC)
    tx.land_first_day(world.frames, sim, tmp_path / "inbox", as_of0)
    results, problems, _ = _gate(tmp_path, as_of0)
    assert results and {r.outcome for r in results} <= {"pass", "pass_with_quarantine"}
    assert problems == []
    # day 0: one transfer ships; its order id becomes the TMS shipment id the next day
    lane = int(np.flatnonzero(world.network.lane_dest == world.network.nodes.index("HUB-DE-01"))[0])
    sim.submit([Order(lane, 0, 1.0, 0, "ORD-TEST-1")])
    sim.step()
    as_of1 = as_of0 + timedelta(days=1)
    tx.land_snapshot(sim, tmp_path / "inbox", as_of1, stale_wms=False)
    results, problems, staged = _gate(tmp_path, as_of1)
    assert problems == [] and all(r.outcome != "block" for r in results)
    if sim.ledger.shipments:  # shipped (the origin had stock): visible in transit under the order id
        assert "ORD-TEST-1" in staged["shipment_id"].to_list()
    # day 1 with a WMS fault: no inventory snapshot, so the cycle must refuse
    sim.step()
    as_of2 = as_of1 + timedelta(days=1)
    paths = tx.land_snapshot(sim, tmp_path / "inbox", as_of2, stale_wms=True)
    assert not any("inventory" in p.name for p in paths)
    _, problems, _ = _gate(tmp_path, as_of2)
    assert any(p.startswith("inventory:") and "staleness budget" in p for p in problems)


def test_demand_extract_reports_the_realised_day(world) -> None:  # noqa: ANN001
    sim = world.simulator()
    sim.step()
    frame = tx.demand_frame(sim, 0)
    assert frame["date"].unique().to_list() == [world.network.start]
    assert frame["qty"].sum() == pytest.approx(world.paths.demand[0].sum())


def test_outbox_csv_becomes_orders_once(world, tmp_path: Path) -> None:  # noqa: ANN001
    net = world.network
    lane = 0
    pl.DataFrame(
        {
            "order_id": ["O1"],
            "plan_id": ["P1"],
            "kind": ["purchase"],
            "origin": [net.nodes[net.lane_origin[lane]]],
            "destination": [net.nodes[net.lane_dest[lane]]],
            "mode": [net.lane_mode[lane]],
            "sku": [net.skus[2]],
            "ship_date": [net.start + timedelta(days=1)],
            "arrive_date": [net.start + timedelta(days=9)],
            "qty": [50.0],
            "value": [500.0],
        }
    ).write_csv(tmp_path / "P1.csv")
    seen: set[str] = set()
    orders = tx.read_outbox_orders(tmp_path, seen, net)
    assert orders == [Order(lane, 2, 50.0, 1, "O1")]
    assert tx.read_outbox_orders(tmp_path, seen, net) == []


def test_an_unchanged_empty_snapshot_is_still_fresh_the_next_day(world, tmp_path: Path) -> None:  # noqa: ANN001
    from datetime import UTC, datetime

    from ballast.models.sample import conform

    start = world.network.start
    first = datetime(start.year, start.month, start.day, 6, tzinfo=UTC)
    empty = conform(pl.DataFrame(schema=tx.in_transit_frame(world.simulator()).schema), "in_transit")
    a = tx.land_stamped(empty, tmp_path / "inbox", "in_transit", first)
    b = tx.land_stamped(empty, tmp_path / "inbox", "in_transit", first + timedelta(days=1))
    assert a.read_bytes() != b.read_bytes()  # ingest would drop b as a duplicate of a otherwise
