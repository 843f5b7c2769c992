from __future__ import annotations

from datetime import date, timedelta

import polars as pl

from ballast.models.projection import expected_unmet, most_affected, project_stock, stock_flows

D0 = date(2026, 11, 23)


def test_projection_with_and_without_a_transfer():
    positions = pl.DataFrame({"site_id": ["A", "B"], "sku": ["x", "x"], "available": [10.0, 50.0]})
    receipts = pl.DataFrame({"site_id": ["A"], "sku": ["x"], "day": [D0 + timedelta(days=1)], "qty": [4.0]})
    issues = pl.DataFrame(schema={"site_id": pl.String, "sku": pl.String, "day": pl.Date, "qty": pl.Float64})
    forecasts = pl.DataFrame(
        {"site_id": ["A"] * 3 + ["B"] * 3, "sku": ["x"] * 6, "day": [D0 + timedelta(days=i) for i in range(3)] * 2,
         "mean": [6.0, 6.0, 6.0, 1.0, 1.0, 1.0]}
    )
    orders = pl.DataFrame(
        {"origin": ["B"], "destination": ["A"], "sku": ["x"], "ship_date": [D0], "arrive_date": [D0 + timedelta(days=1)],
         "qty": [20.0]}
    )
    flows = stock_flows(positions, receipts, issues, forecasts, orders, D0, 3)
    p = project_stock(flows)
    a = p.filter(pl.col("site_id") == "A")
    assert a.get_column("without_plan").to_list() == [4.0, 2.0, -4.0]
    assert a.get_column("with_plan").to_list() == [4.0, 22.0, 16.0]
    b = p.filter(pl.col("site_id") == "B")
    assert b.get_column("with_plan").to_list() == [29.0, 28.0, 27.0]
    assert most_affected(p).to_dicts() == [{"site_id": "A", "sku": "x"}]

    # lost sales: A sells 4 of 6 on day 1 without the plan... (start 10: day0 serves 6 → 4; +4 → 8,
    # serves 6 → 2; day2 serves 2 of 6 → 4 lost). With the plan nothing is lost.
    assert expected_unmet(flows) == (21.0, 4.0, 0.0)
