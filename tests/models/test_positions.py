"""Positions: available stock, shelf life, receipts and scheduled issues."""

from __future__ import annotations

from datetime import timedelta

import polars as pl
import pytest

from ballast.models.engine import contract_frames
from ballast.models.positions import build_positions, empty_released_orders
from tests.models.test_coordinator import AS_OF, forecast, stock


def _frames(inventory, in_transit=(), purchase_orders=()):
    return contract_frames(
        inventory=list(inventory), in_transit=list(in_transit), purchase_orders=list(purchase_orders)
    )


def test_available_is_on_hand_minus_commitments_never_below_zero():
    f = _frames([stock("A", 10, allocated=3, reserved=2), stock("B", 4, allocated=5, reserved=1)])
    p = build_positions(f["inventory"], f["in_transit"], f["purchase_orders"], AS_OF).positions
    got = dict(p.select("site_id", "available").iter_rows())
    assert got == {"A": 5.0, "B": 0.0}
    assert p.filter(pl.col("site_id") == "A")["sellable"].item() == 5.0


def test_lots_that_expire_before_they_sell_are_not_available():
    # A sells 5 a day; lot L1 (20 u) expires on day 2, lot L2 (30 u) never: FEFO sells 10 of L1 in time
    inv = [
        stock("A", 20, lot="L1", expiry_date=AS_OF + timedelta(days=2)),
        stock("A", 30, lot="L2"),
        stock("A", 7, lot="L0", expiry_date=AS_OF),  # already expired
    ]
    f = _frames(inv)
    p = build_positions(
        f["inventory"],
        f["in_transit"],
        f["purchase_orders"],
        AS_OF,
        forecasts=forecast({("A", "X"): [5.0] * 7}),
    ).positions.row(0, named=True)
    assert p["expired"] == 7.0
    assert p["unsellable_expiring"] == 10.0
    assert p["short_dated_expiry"] == AS_OF + timedelta(days=2)
    assert p["sellable"] == pytest.approx(57 - 7 - 10)


def test_commitments_take_the_earliest_expiring_units_first():
    inv = [
        stock("A", 10, lot="L1", expiry_date=AS_OF + timedelta(days=1), allocated=10),
        stock("A", 5, lot="L2"),
    ]
    f = _frames(inv)
    p = build_positions(
        f["inventory"],
        f["in_transit"],
        f["purchase_orders"],
        AS_OF,
        forecasts=forecast({("A", "X"): [0.0] * 3}),
    ).positions.row(0, named=True)
    assert p["unsellable_expiring"] == 0.0  # the short-dated lot is already allocated
    assert p["sellable"] == 5.0


def test_receipts_and_issues_from_transit_pos_and_released_orders():
    f = _frames(
        [stock("A", 10)],
        in_transit=[
            dict(
                shipment_id="S1",
                origin="A",
                destination="B",
                sku="X",
                qty=4.0,
                ship_date=AS_OF - timedelta(days=1),
                eta=AS_OF + timedelta(days=1),
            ),
            dict(
                shipment_id="R2",
                origin="A",
                destination="B",
                sku="X",
                qty=6.0,
                ship_date=AS_OF,
                eta=AS_OF + timedelta(days=2),
            ),
        ],
        purchase_orders=[dict(po_id="P1", destination="A", sku="X", qty=50.0, eta=AS_OF - timedelta(days=1))],
    )
    released = pl.concat(
        [
            empty_released_orders(),
            pl.DataFrame(
                [
                    # shown in transit already (shipment_id == order_id): not counted twice
                    dict(
                        order_id="R2",
                        origin="A",
                        destination="B",
                        mode="road",
                        sku="X",
                        ship_date=AS_OF,
                        arrive_date=AS_OF + timedelta(days=2),
                        qty=6.0,
                    ),
                    # not yet in transit: a receipt at B and an issue at A
                    dict(
                        order_id="R3",
                        origin="A",
                        destination="B",
                        mode="road",
                        sku="X",
                        ship_date=AS_OF + timedelta(days=1),
                        arrive_date=AS_OF + timedelta(days=2),
                        qty=3.0,
                    ),
                ],
                schema=empty_released_orders().schema,
            ),
        ]
    )
    pos = build_positions(
        f["inventory"], f["in_transit"], f["purchase_orders"], AS_OF, released_orders=released
    )
    rec = pos.receipts.select("site_id", "day", "qty", "source").rows()
    assert ("A", AS_OF, 50.0, "purchase_order") in rec  # a late PO is expected today
    assert ("B", AS_OF + timedelta(days=1), 4.0, "in_transit") in rec
    assert ("B", AS_OF + timedelta(days=2), 3.0, "released_order") in rec
    assert sum(q for s, d, q, src in rec if src == "released_order") == 3.0
    assert pos.issues.select("site_id", "day", "qty").rows() == [("A", AS_OF + timedelta(days=1), 3.0)]


def test_latest_snapshot_per_site_is_used():
    older = dict(stock("A", 99), as_of=stock("A", 0)["as_of"] - timedelta(hours=6))
    f = _frames([older, stock("A", 10)])
    p = build_positions(f["inventory"], f["in_transit"], f["purchase_orders"], AS_OF).positions
    assert p["on_hand"].to_list() == [10.0]
