from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ballast.io.expectations import (
    StatisticalSuiteError,
    SuiteReport,
    SuiteThresholds,
    run_statistical_suite,
)

SITES = [f"S{i}" for i in range(5)]
SKUS = [f"K{i}" for i in range(10)]


def _demand(start: str, days: int, seed: int, scale: float = 1.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    keys = pd.MultiIndex.from_product(
        [pd.date_range(start, periods=days, freq="D"), SITES, SKUS], names=["date", "site_id", "sku"]
    ).to_frame(index=False)
    mean = 0.5 + keys["sku"].str[1:].astype(int).to_numpy()  # SKUs from slow to fast movers
    keys["qty"] = rng.negative_binomial(2, 2 / (2 + mean)).astype(float) * scale
    return keys


def _inventory(zero_share: float = 0.1, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    keys = pd.MultiIndex.from_product([SITES, SKUS], names=["site_id", "sku"]).to_frame(index=False)
    on_hand = rng.integers(20, 200, len(keys)).astype(float)
    on_hand[: round(zero_share * len(keys))] = 0.0
    return keys.assign(
        as_of=pd.Timestamp("2026-04-15T06:00:00Z"),
        on_hand=on_hand,
        allocated=np.floor(on_hand * 0.2),
        reserved=np.floor(on_hand * 0.1),
        lot=None,
        expiry_date=pd.NaT,
    )


def _items() -> pd.DataFrame:
    cost = np.linspace(1.0, 10.0, len(SKUS))
    return pd.DataFrame(
        {
            "sku": SKUS,
            "unit_cost": cost,
            "unit_price": cost * 1.4,
            "holding_cost_per_day": cost * 0.001,
            "unit_volume": 1.0,
            "shelf_life_days": None,
        }
    )


def _lanes() -> pd.DataFrame:
    pairs = [(o, d) for o in SITES for d in SITES if o != d]
    return pd.DataFrame(
        {
            "origin": [o for o, _ in pairs],
            "destination": [d for _, d in pairs],
            "mode": "road",
            "lead_time_days": np.arange(len(pairs)) % 7 + 1,
            "cost_per_unit": 0.5,
            "fixed_cost": 0.0,
            "capacity_per_day": None,
            "min_units": None,
        }
    )


def _reconciliation() -> pd.DataFrame:
    keys = pd.MultiIndex.from_product([SITES, SKUS], names=["site_id", "sku"]).to_frame(index=False)
    book = np.full(len(keys), 100.0)
    wms = book * (1 + np.linspace(-0.01, 0.01, len(keys)))
    return keys.assign(wms_qty=wms, book_qty=book, rel_diff=(wms - book) / book)


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return _demand("2026-01-01", 91, seed=1)


def _run(
    staged: dict[str, pd.DataFrame], reference: pd.DataFrame | None, docs: Path, name: str
) -> SuiteReport:
    return run_statistical_suite(staged, reference, docs, name)


def test_clean_batch_passes_every_suite(tmp_path: Path, reference: pd.DataFrame) -> None:
    # given
    staged = {
        "demand": _demand("2026-04-02", 14, seed=2),
        "inventory": _inventory(),
        "items": _items(),
        "lanes": _lanes(),
        "reconciliation": _reconciliation(),
        "in_transit": pd.DataFrame({"shipment_id": ["X1"]}),
    }
    # when
    report = _run(staged, reference, tmp_path / "docs", "clean")
    # then
    assert report.failures == ()
    assert report.success
    assert {s.suite for s in report.suites} == {
        "demand",
        "demand_by_site",
        "inventory",
        "items",
        "lanes",
        "reconciliation",
    }
    assert report.suite("demand").evaluated == 3  # outliers, KL drift, mean drift
    assert report.suite("inventory").evaluated == 3
    assert all(s.failed == 0 for s in report.suites)
    assert report.skipped == ("in_transit",)


def test_drifted_demand_fails_the_drift_expectations(tmp_path: Path, reference: pd.DataFrame) -> None:
    drifted = _demand("2026-04-02", 14, seed=2, scale=5.0)

    report = _run({"demand": drifted}, reference, tmp_path, "drift")

    assert not report.suite("demand").success
    assert "demand.qty_drift_kl" in report.failed_checks
    assert "demand.qty_mean_drift" in report.failed_checks
    assert "demand_by_site.site_mean_band" in report.failed_checks
    kl = next(f for f in report.failures if f.check == "qty_drift_kl")
    assert float(kl.observed) > SuiteThresholds().drift_kl_max


def test_outlier_fails_the_outlier_expectation(tmp_path: Path, reference: pd.DataFrame) -> None:
    batch = _demand("2026-04-02", 14, seed=2)
    batch.loc[batch.index[:3], "qty"] = 50_000.0  # three unit errors in 700 rows: 0.4% > 0.1%

    report = _run({"demand": batch}, reference, tmp_path, "outlier")

    assert "demand.qty_outliers" in report.failed_checks
    outlier = next(f for f in report.failures if f.check == "qty_outliers")
    assert outlier.observed.startswith("3 unexpected")
    assert "site_id=S0" in outlier.observed
    assert "demand.qty_drift_kl" not in report.failed_checks


def test_outlier_is_found_without_reference_history(tmp_path: Path) -> None:
    batch = _demand("2026-04-02", 14, seed=2)
    batch.loc[batch.index[:3], "qty"] = 50_000.0

    report = _run({"demand": batch}, None, tmp_path, "first-load")

    assert report.failed_checks == ("demand.qty_outliers",)
    assert [s.suite for s in report.suites] == ["demand"]  # no reference: no drift, no site band


def test_sixty_percent_zero_stock_fails_the_zero_stock_share(tmp_path: Path) -> None:
    report = _run({"inventory": _inventory(zero_share=0.6)}, None, tmp_path, "zeros")

    assert report.failed_checks == ("inventory.zero_stock_share",)
    assert report.suite("inventory").failed == 1
    assert "30 unexpected (60%)" in report.failures[0].observed


def test_soft_failures_cover_the_other_extracts(tmp_path: Path) -> None:
    items = _items()
    items.loc[:2, "unit_price"] = items.loc[:2, "unit_cost"] / 2  # 30% sold below cost
    lanes = _lanes()
    lanes.loc[0, "lead_time_days"] = 400
    recon = _reconciliation()
    recon.loc[:9, "rel_diff"] = 0.5  # 20% of pairs off by half
    inventory = _inventory()
    inventory.loc[:4, "allocated"] = inventory.loc[:4, "on_hand"] + 10

    report = _run(
        {"items": items, "lanes": lanes, "reconciliation": recon, "inventory": inventory},
        None,
        tmp_path,
        "others",
    )

    assert set(report.failed_checks) == {
        "items.price_not_below_cost",
        "lanes.lead_time_range",
        "reconciliation.book_vs_wms_within_tolerance",
        "inventory.commitments_within_on_hand",
    }


def test_data_docs_index_mentions_every_suite(
    tmp_path: Path, reference: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: a working directory and a home of our own, to see whether GX writes to either
    cwd, home, docs = tmp_path / "cwd", tmp_path / "user", tmp_path / "reports" / "gx"
    cwd.mkdir()
    home.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("HOME", str(home))
    staged = {"demand": _demand("2026-04-02", 14, seed=2), "inventory": _inventory(), "lanes": _lanes()}

    # when
    report = _run(staged, reference, docs, "docs-run")

    # then
    assert report.docs_index == docs.resolve() / "index.html"
    html = report.docs_index.read_text()
    for suite in ("demand", "demand_by_site", "inventory", "lanes"):
        assert suite in html
        assert list((docs / "validations" / suite / "docs-run").rglob("*.html"))
    # GX keeps its stores in memory: the Data Docs site is all it writes.
    assert list(cwd.iterdir()) == []
    assert list(home.iterdir()) == []
    assert {p.name for p in docs.iterdir()} == {"index.html", "expectations", "validations", "static"}


def test_gx_failing_to_evaluate_raises_a_clear_error(tmp_path: Path) -> None:
    lanes = _lanes().astype({"lead_time_days": object})
    lanes.loc[0, "lead_time_days"] = "three"  # GX cannot compare this with its bounds

    with pytest.raises(StatisticalSuiteError, match="lanes"):
        _run({"lanes": lanes}, None, tmp_path, "crash")


def test_missing_contract_column_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="lead_time_days"):
        _run({"lanes": _lanes().drop(columns="lead_time_days")}, None, tmp_path, "missing")
