"""Golden plans on the small sample network, with tolerances (GridPath `tests/test_examples.py` style).

The forecast and targets here are deliberately simple and derived inside the test (the real
forecaster is another module): mean of the last 28 days of demand, Poisson-like spread for q80 /
q95, safety stock z · σ · √(lead time + 1). Regenerate the golden file with
``BALLAST_REGOLD=1 pytest tests/models/test_engine_golden.py`` after a deliberate change.
"""

from __future__ import annotations

import json
import os
from datetime import date, timedelta
from functools import cache
from pathlib import Path

import polars as pl
import pytest

from ballast.models.engine import EngineOptions, EngineResult, plan_network
from ballast.models.policy import Policy, load_policy
from ballast.models.verify import verify_plan

GOLDEN = Path(__file__).parents[1] / "golden" / "engine_default_network.json"
POLICY = Path(__file__).parents[2] / "policies" / "default.yaml"
Z = {0.80: 0.8416, 0.95: 1.6449}


def simple_forecast(demand: pl.DataFrame, as_of: date, horizon: int, window: int = 28) -> pl.DataFrame:
    """Flat forecast per site-SKU: the mean of the last `window` days; q50/q80/q95 from a normal approximation."""
    start = as_of - timedelta(days=window)
    means = (
        demand.filter((pl.col("date") >= start) & (pl.col("date") < as_of))
        .group_by("site_id", "sku")
        .agg((pl.col("qty").sum() / window).alias("mean"))
        .filter(pl.col("mean") > 0)
    )
    days = pl.DataFrame({"day": [as_of + timedelta(days=t) for t in range(horizon)]})
    sigma = pl.col("mean").sqrt()
    return (
        means.join(days, how="cross")
        .with_columns(
            q50=pl.col("mean"),
            q80=pl.col("mean") + Z[0.80] * sigma,
            q95=pl.col("mean") + Z[0.95] * sigma,
        )
        .select("site_id", "sku", "day", "mean", "q50", "q80", "q95")
        .sort("site_id", "sku", "day")
    )


def simple_targets(forecasts: pl.DataFrame, sites: pl.DataFrame, lanes: pl.DataFrame, policy: Policy) -> pl.DataFrame:
    """Safety stock z·σ·√(L+R) with L the fastest inbound lane, σ² = mean (Poisson)."""
    lead = lanes.group_by(site_id="destination").agg(pl.col("lead_time_days").min().alias("lead_time_days"))
    kind = sites.select("site_id", "kind")
    daily = forecasts.group_by("site_id", "sku").agg(pl.col("mean").first().alias("mean_daily"))
    review = policy.forecasting.review_period_days
    out = (
        daily.join(lead, on="site_id", how="left")
        .join(kind, on="site_id")
        .with_columns(pl.col("lead_time_days").fill_null(1).cast(pl.Int64), review_days=pl.lit(review, dtype=pl.Int64))
        .with_columns(
            service_level=pl.col("kind").map_elements(
                lambda k: policy.service_levels.level(k, None), return_dtype=pl.Float64
            )
        )
        .with_columns(
            lt_demand_mean=pl.col("mean_daily") * (pl.col("lead_time_days") + pl.col("review_days")),
            safety_stock=Z[0.95] * (pl.col("mean_daily") * (pl.col("lead_time_days") + pl.col("review_days"))).sqrt(),
        )
        .with_columns(
            reorder_point=pl.col("lt_demand_mean") + pl.col("safety_stock"),
            target_stock=pl.col("lt_demand_mean")
            + pl.col("safety_stock")
            + pl.col("mean_daily") * pl.col("review_days"),
        )
    )
    return out.select(
        "site_id",
        "sku",
        "lead_time_days",
        "review_days",
        "service_level",
        "mean_daily",
        "lt_demand_mean",
        "safety_stock",
        "reorder_point",
        "target_stock",
    )


@cache
def default_network_plan(mode: str = "default") -> EngineResult:
    """The default network planned with the default engine options ("default": the model is above
    `mip_max_columns`, so the LP-rounded rung answers — slope scaling, rounding, LP repair; no clock
    decides anything, so the answer is the same on any machine) or by the time-limited MIP seeded
    with that plan ("mip")."""
    from ballast.models.sample import SampleSpec, generate_network

    spec = SampleSpec()
    frames = generate_network(spec)
    policy, _ = load_policy(POLICY)
    as_of = spec.as_of_date
    forecasts = simple_forecast(frames["demand"], as_of, policy.horizon_days)
    targets = simple_targets(forecasts, frames["sites"], frames["lanes"], policy)
    if mode == "mip":
        options = EngineOptions(time_limit_seconds=30.0, mip_max_columns=None)
    else:
        options = EngineOptions()
    return plan_network(frames, forecasts, targets, policy, as_of, options=options)


def summary(result: EngineResult) -> dict:
    o = result.orders
    return {
        "orders": o.height,
        "transfers": o.filter(pl.col("kind") == "transfer").height,
        "purchases": o.filter(pl.col("kind") == "purchase").height,
        "units": round(float(o["qty"].sum()), 1),
        "objective": round(result.record.objective or 0.0, 1),
        "skus": o["sku"].n_unique(),
        "destinations": sorted(o["destination"].unique().to_list()),
    }


@pytest.mark.slow
def test_mip_on_the_default_network_starts_from_the_lp_rounded_plan():
    result = default_network_plan("mip")
    assert result.verification.ok, result.verification.summary()
    assert result.record.rung in ("mip", "incumbent")
    # the MIP starts from the LP-rounded plan (the golden one), so it never ends worse than that;
    # the LP bound of this network is ~271k
    golden = json.loads(GOLDEN.read_text())["objective"]
    assert 270_000 < result.record.objective <= golden * 1.001
    assert verify_plan(result.inputs, result.flows).ok


@pytest.mark.slow
def test_default_network_plan_is_verified_and_sensible():
    result = default_network_plan()
    assert result.verification.ok, result.verification.summary()
    assert result.record.rung == "lp_rounded"
    assert [a.rung for a in result.record.attempts] == ["mip", "lp_rounded"]  # the MIP skipped: too large
    # within a stated gap of the LP bound (~271k): slope scaling brings the rounded plan to ~6%, and the
    # published plan (minimum transfers settled, whole units), priced by replaying it, stays within 9%
    # (measured under policy 2026.11.2: 5.97% and 8.1%; then 5.47% and 8.59% once a DC offering a SKU
    # sideways could also supply its own hubs: the bound fell 272,151 -> 270,681, the plan 296,279 -> 296,120)
    bound = result.record.lp_bound
    assert bound is not None and 265_000 < bound < 280_000
    assert (result.record.objective - bound) / result.record.objective < 0.065
    assert result.record.mip_gap == pytest.approx((result.record.objective - bound) / result.record.objective)
    assert result.record.plan_cost is not None
    assert (result.record.plan_cost - bound) / result.record.plan_cost < 0.09
    o = result.orders
    assert o.height > 0
    # never on the forbidden lane, never from a supplier to a hub, never backwards into a supplier
    assert o.filter((pl.col("origin") == "DC-FR-01") & (pl.col("destination") == "HUB-CH-01")).is_empty()
    kinds = dict(result.inputs.sites.items())
    for origin, destination, kind in o.select("origin", "destination", "kind").iter_rows():
        assert kinds[destination].kind != "supplier"
        assert (kind == "purchase") == (kinds[origin].kind == "supplier")
    # every order goes to a site that the agents found short (or takes short-dated stock where it sells)
    short = set(result.statements.filter(pl.col("status") == "deficit").select("site_id", "sku").iter_rows())
    for d, k, sd in o.select("destination", "sku", "short_dated_qty").iter_rows():
        assert (d, k) in short or sd > 0 or result.inputs.sites[d].kind in ("dc", "plant")
    # explanations are there and readable
    assert o["explanation"].str.len_chars().min() > 40
    # whole units, as warehouses ship (the echelon-ordered repair: see `whole_units`), and no alert
    assert bool((o["qty"] == o["qty"].round(0)).all()) and o["qty"].min() >= 1
    assert bool((result.flows["qty"] == result.flows["qty"].round(0)).all())
    assert not any(a.startswith("quantities left fractional") for a in result.record.alerts)
    reason = json.loads(o["reason"][0])
    assert {"destination", "source", "forecast", "economics", "alternatives"} <= set(reason)
    # the published plan re-verifies from the outside
    assert verify_plan(result.inputs, result.flows).ok


@pytest.mark.slow
def test_default_network_plan_is_repeatable():
    # a backfill compares orders byte for byte: the same inputs must give the same plan
    from ballast.models.sample import SampleSpec, generate_network

    first = default_network_plan()
    spec = SampleSpec()
    frames = generate_network(spec)
    policy, _ = load_policy(POLICY)
    forecasts = simple_forecast(frames["demand"], spec.as_of_date, policy.horizon_days)
    targets = simple_targets(forecasts, frames["sites"], frames["lanes"], policy)
    again = plan_network(frames, forecasts, targets, policy, spec.as_of_date, options=EngineOptions())
    assert again.flows.equals(first.flows)
    assert again.orders.equals(first.orders)
    assert again.record.objective == first.record.objective


@pytest.mark.slow
def test_default_network_matches_golden():
    result = default_network_plan()
    got = summary(result)
    if os.environ.get("BALLAST_REGOLD"):
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(json.dumps(got, indent=2, sort_keys=True) + "\n")
    want = json.loads(GOLDEN.read_text())
    assert result.record.rung == "lp_rounded"
    # tolerances: solver versions move LP vertices a little
    assert got["objective"] == pytest.approx(want["objective"], rel=0.02)
    assert got["units"] == pytest.approx(want["units"], rel=0.10)
    assert got["orders"] == pytest.approx(want["orders"], rel=0.15, abs=3)
    assert set(got["destinations"]) == set(want["destinations"])
    orders = result.orders
    assert bool((orders["qty"] == orders["qty"].round(0)).all()) and orders["qty"].min() >= 1
    assert result.verification.ok


def test_prefect_tasks_wrap_the_plain_functions():
    from ballast.tasks.engine import coordinate_task, hub_agent_task, solve_group_task
    from tests.models.test_coordinator import lane, run, site, stock

    result = run(
        sites=[site("A"), site("B")],
        lanes=[lane("A", "B")],
        inventory=[stock("A", 100), stock("B", 0)],
        demand={("B", "X"): [10, 10]},
    )
    assert callable(hub_agent_task.fn) and callable(solve_group_task.fn) and callable(coordinate_task.fn)
    assert hub_agent_task.name == "hub agent"
    assert result.record.rung == "mip"
