from dataclasses import replace
from datetime import date, timedelta

import duckdb
import polars as pl
import pytest

from ballast.io import forecast_store
from ballast.models.forecast import FALLBACK, ForecastConfig
from ballast.models.policy import Policy
from ballast.settings import Settings
from ballast.tasks.forecast import run_forecast_refresh
from tests.models.test_forecast import AS_OF, synthetic_demand

CONFIG = ForecastConfig(fit_window_days=200, expensive_budget=0, arima_budget=0)
SITES = pl.DataFrame({"site_id": ["DC", "H0", "H1"], "kind": ["dc", "hub", "hub"], "echelon": [1, 2, 2]})
LANES = pl.DataFrame(
    {"origin": ["DC", "DC"], "destination": ["H0", "H1"], "mode": ["truck"] * 2, "lead_time_days": [2, 3]}
)


def items(demand: pl.DataFrame) -> pl.DataFrame:
    skus = demand["sku"].unique().sort()
    return pl.DataFrame({"sku": skus, "unit_cost": [1.0] * len(skus)})


@pytest.fixture(scope="module")
def refreshes(tmp_path_factory: pytest.TempPathFactory) -> dict:
    home = tmp_path_factory.mktemp("store")
    settings = Settings(home=home)
    policy = Policy(version="t", author="t", horizon_days=7)
    demand = synthetic_demand()
    con = duckdb.connect(str(home / "w.duckdb"))
    args = (SITES, items(demand), LANES, policy, settings, AS_OF)
    first = run_forecast_refresh(con, demand, *args, config=CONFIG)
    same = run_forecast_refresh(con, demand, *args, config=CONFIG)
    # one day of one series restated
    day = AS_OF - timedelta(days=3)
    changed_demand = pl.concat(
        [
            demand.filter(~((pl.col("sku") == "SM1") & (pl.col("date") == day))),
            pl.DataFrame({"date": [day], "site_id": ["H1"], "sku": ["SM1"], "qty": [999.0]}),
        ]
    )
    changed = run_forecast_refresh(con, changed_demand, *args, config=CONFIG)
    forced = run_forecast_refresh(con, changed_demand, *args, force=True, config=CONFIG)
    yield {"con": con, "first": first, "same": same, "changed": changed, "forced": forced}
    con.close()


def test_first_run_fits_everything(refreshes) -> None:
    first = refreshes["first"]
    assert first.n_refit == first.n_series == 14
    assert first.horizon_days == 10  # 7 + the longest lead time (3)


def test_unchanged_history_is_not_refit(refreshes) -> None:
    same, first = refreshes["same"], refreshes["first"]
    assert same.n_refit == 0
    assert same.forecasts.equals(first.forecasts)
    assert (
        not refreshes["con"]
        .execute("SELECT count(*) FROM fc_run_series WHERE run_id = ? AND refit", [same.run_id])
        .fetchone()[0]
    )


def test_changed_series_alone_is_refit(refreshes) -> None:
    changed = refreshes["changed"]
    assert changed.n_refit == 1
    refit = changed.series.filter(pl.col("refit"))
    assert refit.select("site_id", "sku").rows() == [("H1", "SM1")]
    # the others still point at the first run's fits
    others = changed.series.filter(~pl.col("refit"))
    assert set(others["fit_run_id"]) == {refreshes["first"].run_id}


def test_force_refits_everything_and_replaces_cache_rows(refreshes) -> None:
    forced, con = refreshes["forced"], refreshes["con"]
    assert forced.n_refit == forced.n_series
    n_keys = con.execute("SELECT count(*) FROM fc_series").fetchone()[0]
    assert n_keys == 15  # 14 keys of the first history + the one changed series


def test_latest_forecasts_and_run_tables(refreshes) -> None:
    con, forced = refreshes["con"], refreshes["forced"]
    run, fc = forecast_store.latest_forecasts(con, from_day=AS_OF + timedelta(days=2))
    assert run is not None
    assert run["run_id"] == forced.run_id
    assert fc["day"].min() == AS_OF + timedelta(days=2)
    assert fc.select("site_id", "sku").n_unique() == 14
    series = forecast_store.run_series(con, forced.run_id)
    assert {
        "site_id",
        "sku",
        "demand_class",
        "sku_class",
        "model",
        "fingerprint",
        "mase_cv",
        "fitted_at",
    } <= set(series.columns)


def test_ensure_tables_is_idempotent(tmp_path) -> None:
    con = duckdb.connect(str(tmp_path / "x.duckdb"))
    forecast_store.ensure_tables(con)
    forecast_store.ensure_tables(con)
    assert forecast_store.latest_run(con) is None
    assert forecast_store.latest_forecasts(con)[1].is_empty()
    assert forecast_store.latest_run(con, date(2026, 1, 1)) is None


def test_report_text_and_self_contained_html(refreshes, tmp_path) -> None:
    from ballast.io.forecast_report import build_report, render_text, write_html

    report = build_report(refreshes["con"], synthetic_demand(), n_examples=2)
    text = render_text(report)
    assert refreshes["forced"].run_id in text
    assert "snaive_mase_holdout" in text
    out = write_html(report, tmp_path / "r" / "forecast.html")
    doc = out.read_text()
    assert doc.count("data:image/png;base64,") == 3  # accuracy chart + 2 examples
    assert "<script" not in doc
    assert "http" not in doc.split("<body>")[1]


@pytest.fixture(scope="module")
def daily(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Daily refreshes with a week's model choice: AS_OF, +1 day, +7 days, a replay of AS_OF - 1,
    then +2 days choosing on every refit (`reselect_days` 0: the same cache key, no kept choice)."""
    home = tmp_path_factory.mktemp("daily")
    settings = Settings(home=home)
    policy = Policy(version="t", author="t", horizon_days=7)
    demand = synthetic_demand()
    con = duckdb.connect(str(home / "w.duckdb"))
    args = (SITES, items(demand), LANES, policy, settings)
    out = {
        name: run_forecast_refresh(con, demand, *args, AS_OF + timedelta(days=d), config=CONFIG)
        for name, d in (("day0", 0), ("day1", 1), ("day7", 7), ("replay", -1))
    }
    out["every_refit"] = run_forecast_refresh(
        con, demand, *args, AS_OF + timedelta(days=2), config=replace(CONFIG, reselect_days=0)
    )
    yield out
    con.close()


def _choices(result) -> dict:
    chosen = result.series.filter(pl.col("model") != FALLBACK)
    return {(r["site_id"], r["sku"]): r for r in chosen.iter_rows(named=True)}


def test_the_next_days_refit_keeps_the_weeks_model_choice(daily) -> None:
    day0, day1 = _choices(daily["day0"]), _choices(daily["day1"])
    assert daily["day1"].n_refit == daily["day1"].n_series  # a day more of history: every series refit
    assert day1.keys() == day0.keys() and len(day1) == 12
    for key, row in day1.items():
        assert row["selected_as_of"] == AS_OF
        assert row["fit_run_id"] == daily["day1"].run_id
        assert (row["model"], row["mase_cv"]) == (day0[key]["model"], day0[key]["mase_cv"])
    assert daily["day1"].forecasts["day"].min() == AS_OF + timedelta(days=1)


def test_a_week_on_and_on_replay_the_model_is_chosen_again(daily) -> None:
    for name, as_of in (("day7", AS_OF + timedelta(days=7)), ("replay", AS_OF - timedelta(days=1))):
        chosen = _choices(daily[name])
        # a replay never keeps a choice made on later data
        assert {r["selected_as_of"] for r in chosen.values()} == {as_of}, name


def test_reselect_days_zero_chooses_on_every_refit(daily) -> None:
    chosen = _choices(daily["every_refit"])
    assert {r["selected_as_of"] for r in chosen.values()} == {AS_OF + timedelta(days=2)}
