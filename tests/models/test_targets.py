from datetime import date, timedelta

import polars as pl
import pytest
from scipy import stats

from ballast.models.policy import Policy
from ballast.models.targets import (
    classic_safety_stock,
    compute_targets,
    forecast_horizon,
    protection_quantile,
    replenishment_lead_times,
)

SITES = pl.DataFrame(
    {"site_id": ["P", "DC", "H", "H2"], "kind": ["plant", "dc", "hub", "hub"], "echelon": [1, 2, 3, 3]}
)
LANES = pl.DataFrame(
    {
        "origin": ["P", "DC", "DC", "H2"],
        "destination": ["DC", "H", "H", "H"],
        "mode": ["truck", "truck", "rail", "truck"],
        "lead_time_days": [4, 3, 5, 1],
    }
)


def _policy(**kw: object) -> Policy:
    return Policy.model_validate({"version": "t", "author": "t", **kw})


def test_lead_time_is_shortest_inbound_lane_from_above() -> None:
    got = dict(replenishment_lead_times(SITES, LANES).iter_rows())
    # the 1-day lateral lane H2 -> H is not the usual replenishment lane
    assert got == {"P": 0, "DC": 4, "H": 3, "H2": 0}


def test_horizon_is_planning_horizon_plus_longest_lead_of_demand_sites() -> None:
    assert forecast_horizon(_policy(horizon_days=14), SITES, LANES, ["H"]) == 17
    assert forecast_horizon(_policy(horizon_days=14), SITES, LANES, ["H", "DC"]) == 18


def test_quantile_methods_on_known_distributions() -> None:
    # normal: mu + z * sd
    assert protection_quantile(100.0, 400.0, 0.95, "normal") == pytest.approx(100 + 1.6448536 * 20)
    # gamma with mean 4, variance 8 is shape 2, scale 2
    assert protection_quantile(4.0, 8.0, 0.95, "quantile") == pytest.approx(stats.gamma.ppf(0.95, 2, scale=2))
    assert protection_quantile(0.0, 5.0, 0.95, "quantile") == 0.0
    assert protection_quantile(3.0, 0.0, 0.95, "quantile") == 3.0


def test_classic_rule() -> None:
    assert classic_safety_stock(2.0, 4.0, 0.95) == pytest.approx(1.6448536 * 2.0 * 2.0)


def _forecast(mean: float, sd: float, days: int) -> pl.DataFrame:
    d0 = date(2026, 1, 1)
    return pl.DataFrame(
        {
            "site_id": ["H"] * days,
            "sku": ["X"] * days,
            "day": [d0 + timedelta(days=i) for i in range(days)],
            "mean": [mean] * days,
            "q50": [mean] * days,
            "q80": [mean] * days,
            "q95": [mean + stats.norm.ppf(0.95) * sd] * days,
        }
    )


@pytest.mark.parametrize("method", ["normal", "quantile"])
def test_targets_hand_computed(method: str) -> None:
    # given: hub H, lead 3 days, review 1, daily mean 10 and sd 2 -> P = 4, mu_P = 40, V_P = 16
    policy = _policy(
        safety_stock_method=method,
        forecasting={"review_period_days": 1},
        service_levels={"default": 0.95, "by_site_kind": {"hub": 0.9}, "by_sku_class": {"A": 0.98}},
    )
    series = pl.DataFrame({"site_id": ["H"], "sku": ["X"], "sku_class": ["A"]})
    # when
    row = compute_targets(_forecast(10.0, 2.0, 20), series, SITES, LANES, policy).row(0, named=True)
    # then
    q = (40 + stats.norm.ppf(0.98) * 4) if method == "normal" else stats.gamma.ppf(0.98, 100, scale=0.4)
    assert row["lead_time_days"] == 3.0
    assert row["review_days"] == 1.0
    assert row["service_level"] == 0.98  # the stricter of hub 0.90 and class A 0.98
    assert row["mean_daily"] == pytest.approx(10.0)
    assert row["lt_demand_mean"] == pytest.approx(30.0)
    assert row["safety_stock"] == pytest.approx(q - 40, rel=1e-6)
    assert row["reorder_point"] == pytest.approx(30 + q - 40, rel=1e-6)
    assert row["target_stock"] == pytest.approx(q, rel=1e-6)


def test_gamma_protects_more_than_normal_for_skewed_demand() -> None:
    # intermittent: mean 0.5/day, sd 2/day over 4 days -> mu 2, var 16: heavily skewed
    assert protection_quantile(2.0, 16.0, 0.99, "quantile") > protection_quantile(2.0, 16.0, 0.99, "normal")
