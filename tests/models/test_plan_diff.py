from __future__ import annotations

from datetime import date

import polars as pl

from ballast.models.plan_diff import diff_orders


def _o(oid: str, qty: float) -> dict:
    return {"order_id": oid, "kind": "transfer", "origin": "A", "destination": "B", "mode": "truck", "sku": oid,
            "ship_date": date(2026, 11, 23), "qty": qty}


def test_added_removed_changed_and_unchanged():
    before = pl.DataFrame([_o("1", 5.0), _o("2", 7.0), _o("3", 1.0)])
    after = pl.DataFrame([_o("2", 9.0), _o("3", 1.0), _o("4", 2.0)])
    d = diff_orders(before, after)
    assert d.select("change", "order_id", "qty_before", "qty_after").rows() == [
        ("added", "4", None, 2.0), ("changed", "2", 7.0, 9.0), ("removed", "1", 5.0, None),
    ]
