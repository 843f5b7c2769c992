from datetime import date, timedelta

import polars as pl
import pytest

from ballast.models.demand_class import abc_classes, classify, densify, fingerprints, series_stats


def _frame(rows: list[tuple[date, str, str, float]]) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema={"date": pl.Date, "site_id": pl.String, "sku": pl.String, "qty": pl.Float64},
        orient="row",
    )


@pytest.mark.parametrize(
    ("adi", "cv2", "expected"),
    [
        (1.0, 0.0, "smooth"),
        (1.31, 0.48, "smooth"),
        (1.0, 0.49, "erratic"),
        (1.32, 0.1, "intermittent"),
        (4.0, 0.49, "lumpy"),
    ],
)
def test_classify_cutoffs(adi: float, cv2: float, expected: str) -> None:
    assert classify(adi, cv2) == expected


def test_densify_fills_missing_days_and_drops_as_of() -> None:
    # given: demand on day 1 and 4 of a 5-day history, plus a row on the as-of day itself
    d0 = date(2026, 1, 1)
    demand = _frame(
        [(d0, "S", "A", 2.0), (d0 + timedelta(days=3), "S", "A", 5.0), (date(2026, 1, 6), "S", "A", 9.0)]
    )
    # when
    dense = densify(demand, as_of=date(2026, 1, 6), window_days=365)
    # then: five days, zeros filled, the incomplete as-of day left out
    assert dense["qty"].to_list() == [2.0, 0.0, 0.0, 5.0, 0.0]
    assert dense["date"].max() == date(2026, 1, 5)


def test_densify_clips_to_window() -> None:
    d0 = date(2026, 1, 1)
    demand = _frame([(d0 + timedelta(days=i), "S", "A", 1.0) for i in range(30)])
    dense = densify(demand, as_of=d0 + timedelta(days=30), window_days=7)
    assert dense.height == 7


def test_series_stats_hand_computed() -> None:
    # 8 days, demand on 4 of them with sizes 2, 4, 2, 4: ADI = 8/4 = 2, CV² = (1/3)² = 1/9
    d0 = date(2026, 1, 1)
    sizes = [2.0, 0.0, 4.0, 0.0, 2.0, 0.0, 4.0, 0.0]
    dense = densify(
        _frame([(d0 + timedelta(days=i), "S", "A", q) for i, q in enumerate(sizes)]),
        d0 + timedelta(days=8),
        365,
    )
    stats = series_stats(dense, min_history_days=7).row(0, named=True)
    assert stats["adi"] == 2.0
    assert stats["cv2"] == pytest.approx(1 / 9)
    assert stats["demand_class"] == "intermittent"
    # the same series is "new" when we ask for more history than it has
    assert series_stats(dense, min_history_days=30)["demand_class"].to_list() == ["new"]


def test_series_stats_smooth_and_lumpy() -> None:
    d0 = date(2026, 1, 1)
    rows = [(d0 + timedelta(days=i), "S", "smooth", 10.0 + (i % 2)) for i in range(28)]
    rows += [
        (d0 + timedelta(days=i), "S", "lumpy", [1.0, 50.0][i // 7 % 2] if i % 7 == 0 else 0.0)
        for i in range(28)
    ]
    stats = series_stats(densify(_frame(rows), d0 + timedelta(days=28), 365), 7)
    got = dict(zip(stats["sku"], stats["demand_class"], strict=True))
    assert got == {"smooth": "smooth", "lumpy": "lumpy"}


def test_abc_classes_by_cumulative_value() -> None:
    d0 = date(2026, 1, 1)
    dense = _frame([(d0, "S", "A", 80.0), (d0, "S", "B", 15.0), (d0, "S", "C", 5.0)])
    items = pl.DataFrame({"sku": ["A", "B", "C"], "unit_cost": [1.0, 1.0, 1.0]})
    got = dict(abc_classes(dense, items).select("sku", "sku_class").iter_rows())
    assert got == {"A": "A", "B": "B", "C": "C"}


def test_fingerprint_changes_only_with_history() -> None:
    d0 = date(2026, 1, 1)
    rows = [(d0 + timedelta(days=i), s, "A", float(i)) for i in range(10) for s in ("S1", "S2")]
    base = fingerprints(densify(_frame(rows), d0 + timedelta(days=10), 365))
    again = fingerprints(densify(_frame(rows), d0 + timedelta(days=10), 365))
    changed_rows = [(d, s, k, q + 1.0 if (s == "S2" and d == d0) else q) for d, s, k, q in rows]
    changed = fingerprints(densify(_frame(changed_rows), d0 + timedelta(days=10), 365))
    assert base.equals(again)
    diff = base.join(changed, on=["site_id", "sku"]).filter(
        pl.col("fingerprint") != pl.col("fingerprint_right")
    )
    assert diff["site_id"].to_list() == ["S2"]
