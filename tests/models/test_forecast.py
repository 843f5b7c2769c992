from datetime import UTC, date, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from ballast.models import forecast as fc
from ballast.models.demand_class import densify, series_stats

AS_OF = date(2026, 6, 1)
H = 10
CONFIG = fc.ForecastConfig(fit_window_days=200, expensive_budget=2, arima_budget=0)


def synthetic_demand(seed: int = 0) -> pl.DataFrame:
    """Weekly-seasonal Poisson (smooth), sparse gamma lumps (intermittent), a new SKU, a dead one."""
    rng = np.random.default_rng(seed)
    days = 240
    t = np.arange(days)
    first = AS_OF - timedelta(days=days)
    frames = []

    def add(site: str, sku: str, y: np.ndarray, start: date = first) -> None:
        dates = pl.date_range(start, start + timedelta(days=len(y) - 1), interval="1d", eager=True)
        frames.append(pl.DataFrame({"date": dates, "site_id": site, "sku": sku, "qty": y.astype(float)}))

    for i in range(6):
        lam = 20 * (1 + 0.5 * np.sin(2 * np.pi * t / 7)) * (1 + 0.3 * i)
        add(f"H{i % 2}", f"SM{i}", rng.poisson(lam))
    for i in range(6):
        add(f"H{i % 2}", f"IN{i}", (rng.random(days) < 0.15) * rng.gamma(3, 4, days).round())
    add("H0", "NEW", rng.poisson(5, 9), start=AS_OF - timedelta(days=9))
    add("H1", "DEAD", np.zeros(days))
    # sparse frame: missing days mean zero demand
    return pl.concat(frames).filter((pl.col("qty") > 0) | (pl.col("sku") == "DEAD"))


def _meta(demand: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    dense = densify(demand, AS_OF, CONFIG.fit_window_days)
    meta = series_stats(dense, CONFIG.min_history_days).with_columns(
        pl.col("total_qty").alias("demand_value")
    )
    return dense, fc.assign_tiers(meta, H, CONFIG)


@pytest.fixture(scope="module")
def fitted() -> tuple[pl.DataFrame, fc.PartitionResult]:
    dense, meta = _meta(synthetic_demand())
    return meta, fc.fit_partition(dense, meta, H, CONFIG)


def test_tiers_follow_class_and_budget() -> None:
    _, meta = _meta(synthetic_demand())
    tiers = dict(zip(meta["sku"], meta["tier"], strict=True))
    assert tiers["NEW"] == "fallback"
    assert tiers["DEAD"] == "fallback"
    assert {tiers[f"IN{i}"] for i in range(6)} == {"intermittent"}
    # the two smooth series of highest demand value get the expensive models
    assert sorted(k for k, v in tiers.items() if v == "rich") == ["SM4", "SM5"]


def test_every_series_has_a_full_horizon_with_ordered_intervals(fitted) -> None:
    meta, result = fitted
    fcst = result.forecasts
    assert fcst.columns == ["site_id", "sku", "day", *fc.FORECAST_COLUMNS]
    counts = fcst.group_by("site_id", "sku").agg(pl.len(), pl.col("day").min().alias("first"))
    assert counts.height == meta.height
    assert set(counts["len"]) == {H}
    assert set(counts["first"]) == {AS_OF}
    values = fcst.select(fc.FORECAST_COLUMNS)
    assert all(values[c].dtype == pl.Float64 for c in values.columns)
    assert values.min_horizontal().min() >= 0.0
    assert (fcst["lo95"] <= fcst["lo80"]).all()
    assert (fcst["lo80"] <= fcst["q50"]).all()
    assert (fcst["q50"] <= fcst["q80"]).all()
    assert (fcst["q80"] <= fcst["q95"]).all()
    assert (fcst["hi80"] <= fcst["hi95"]).all()


def test_short_and_empty_histories_fall_back(fitted) -> None:
    _, result = fitted
    models = dict(zip(result.series["sku"], result.series["model"], strict=True))
    assert models["NEW"] == fc.FALLBACK
    assert models["DEAD"] == fc.FALLBACK
    dead = result.forecasts.filter(pl.col("sku") == "DEAD")
    assert dead["q95"].max() == 0.0


def test_model_choice_within_candidates(fitted) -> None:
    _, result = fitted
    models = dict(zip(result.series["sku"], result.series["model"], strict=True))
    intermittent = {"CrostonOptimized", "ADIDA", "IMAPA", "TSB", fc.BENCHMARK}
    assert all(models[f"IN{i}"] in intermittent for i in range(6))
    assert models["SM5"] in {"AutoETS", "AutoTheta", "SeasonalESOpt", "SeasonalWindowAverage", fc.BENCHMARK}


def test_chosen_models_beat_seasonal_naive_out_of_sample(fitted) -> None:
    _, result = fitted
    acc = fc.accuracy_summary(
        result.series.join(
            pl.DataFrame(
                {
                    "sku": [f"SM{i}" for i in range(6)] + [f"IN{i}" for i in range(6)],
                    "demand_class": ["smooth"] * 6 + ["intermittent"] * 6,
                }
            ),
            on="sku",
            how="left",
        ).with_columns(pl.col("demand_class").fill_null("new"))
    )
    overall = acc.filter(pl.col("demand_class") == "all").row(0, named=True)
    assert overall["mase_holdout"] < overall["snaive_mase_holdout"]
    assert 0.7 <= overall["cov95"] <= 1.0


def test_a_kept_choice_skips_cross_validation_and_forecasts_with_its_own_ratios(fitted) -> None:
    meta, first = fitted
    dense, _ = _meta(synthetic_demand())
    ratios = {"r_lo95": 0.1, "r_lo80": 0.3, "r_q50": 0.9, "r_q80": 1.4, "r_hi80": 1.7, "r_q95": 2.0, "r_hi95": 2.5}
    kept = pl.DataFrame(
        [
            # every intermittent series keeps TSB, whatever CV chose; SM0 (tier cheap) keeps SeasonalWindowAverage
            *({"site_id": f"H{i % 2}", "sku": f"IN{i}", "model": "TSB", "mase_cv": 0.5, **ratios} for i in range(6)),
            {"site_id": "H0", "sku": "SM0", "model": "SeasonalWindowAverage", "mase_cv": 0.5, **ratios},
            # a model its tier does not offer is no choice to keep: SM2 is chosen anew
            {"site_id": "H0", "sku": "SM2", "model": "AutoARIMA", "mase_cv": 0.5, **ratios},
        ]
    )
    again = fc.fit_partition(dense, meta, H, CONFIG, kept=kept)

    models = dict(zip(again.series["sku"], again.series["model"], strict=True))
    assert {models[f"IN{i}"] for i in range(6)} == {"TSB"}
    assert models["SM0"] == "SeasonalWindowAverage"
    assert models["SM2"] == dict(zip(first.series["sku"], first.series["model"], strict=True))["SM2"]
    assert "cv_intermittent" not in again.seconds  # the whole tier kept its choices
    assert "cv_cheap" in again.seconds  # SM1..SM3 were chosen
    scores = dict(zip(again.series["sku"], again.series["mase_cv"], strict=True))
    assert scores["IN0"] == 0.5 and scores["SM2"] != 0.5
    # the kept ratios shape the intervals: q95 = 2 x mean, lo80 = 0.3 x mean
    in0 = again.forecasts.filter(pl.col("sku") == "IN0")
    assert in0["mean"].min() > 0
    assert (in0["q95"] - 2.0 * in0["mean"]).abs().max() < 1e-9
    assert (in0["lo80"] - 0.3 * in0["mean"]).abs().max() < 1e-9
    # series CV chose carry their own ratios, for the refits that keep them
    sm1 = again.series.filter(pl.col("sku") == "SM1").row(0, named=True)
    assert all(sm1[c] is not None for c in fc.RATIO_COLUMNS)


def test_recent_mean_forecast_exact() -> None:
    out = fc.recent_mean_forecast(np.array([9.0, 2.0, 2.0, 2.0, 2.0]), h=3, window=4)
    assert out["mean"].tolist() == [2.0, 2.0, 2.0]
    # variance max(0, mean) = 2: the 95th percentile is 2 + 1.6449 * sqrt(2)
    assert out["q95"][0] == pytest.approx(2 + 1.6448536 * np.sqrt(2), rel=1e-6)


def test_ratio_quantiles_lower_bound_is_zero_on_zero_days() -> None:
    long = pl.DataFrame(
        {
            "unique_id": [0] * 6,
            "model": ["M"] * 6,
            "y": [0.0, 0.0, 0.0, 0.0, 10.0, 0.0],
            "yhat": [1.0, 2.0, 1.0, 2.0, 2.0, 1.0],
        }
    )
    q = fc.ratio_quantiles(long).row(0, named=True)
    assert q["r_lo95"] == 0.0
    assert q["r_hi95"] == pytest.approx(5.0 * 0.875)  # linear interpolation of [0,0,0,0,0,5] at 0.975


def test_needs_refresh() -> None:
    now = datetime(2026, 6, 1, 12, tzinfo=UTC)
    assert fc.needs_refresh(None, now, 24, told=False)
    assert fc.needs_refresh(now, now, 24, told=True)
    assert not fc.needs_refresh(now - timedelta(hours=23), now, 24, told=False)
    assert fc.needs_refresh(now - timedelta(hours=24), now, 24, told=False)  # a daily cycle refits daily
    assert fc.needs_refresh(now - timedelta(hours=25), now, 24, told=False)


def test_a_slow_refit_is_skipped_for_a_day_at_most() -> None:
    # the run that broke the twin's 42-day steady run: fitted at 06:00 on 2026-12-14 for 16 days, in
    # 301 s against a 300 s budget; every later cycle skipped its refit and planned on it until its
    # forecasts ran out (1 order on 12-29, none from 12-30). The plan needs 14 days; max age 24 h.
    fitted = datetime(2026, 12, 14, 6, tzinfo=UTC)
    day = fitted.date()

    def why(hours: float, max_age: float = 24) -> str | None:
        return fc.refit_despite_budget(day, 16, fitted, fitted + timedelta(hours=hours), max_age, 14)

    assert why(24) is None  # due, and the slow refit may wait for the nightly refresh
    assert why(47) is None
    assert why(48) == "is 48 h old, over twice the 24 h maximum age"
    # a run that no longer reaches the end of the plan is refitted however young it is by the policy
    assert why(48, max_age=1e6) is None
    assert why(72, max_age=1e6) == "covers only 13 of the plan's 14 days"
    assert why(16 * 24, max_age=1e6) == "covers only 0 of the plan's 14 days"


def test_partitions_cover_every_series_once() -> None:
    _, meta = _meta(synthetic_demand())
    parts = fc.partition_series(meta, 3)
    assert len(parts) == 3
    joined = pl.concat(parts).select("site_id", "sku").sort("site_id", "sku")
    assert joined.equals(meta.select("site_id", "sku").sort("site_id", "sku"))


def test_config_digest_depends_on_horizon_and_tier() -> None:
    c = fc.ForecastConfig()
    assert c.digest(10, "cheap") == c.digest(10, "cheap")
    assert len({c.digest(10, "cheap"), c.digest(11, "cheap"), c.digest(10, "rich")}) == 3
    with pytest.raises(ValueError, match="unknown"):
        fc.ForecastConfig.from_dict({"nope": 1})
