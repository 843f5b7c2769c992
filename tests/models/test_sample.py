from __future__ import annotations

import math
from datetime import datetime, timedelta

import numpy as np
import polars as pl
import pytest

from ballast.models.contract import EXTRACTS, REFERENCES
from ballast.models.sample import (
    FORBIDDEN_LANE,
    PATTERNS,
    POLARS_DTYPES,
    SIZES,
    SampleSpec,
    generate_network,
    sku_patterns,
)

SMALL = SampleSpec(skus=40, history_days=120)


@pytest.fixture(scope="module")
def small() -> dict[str, pl.DataFrame]:
    return generate_network(SMALL)


@pytest.fixture(scope="module")
def default() -> dict[str, pl.DataFrame]:
    return generate_network(SampleSpec())


def _cover(net: dict[str, pl.DataFrame], spec: SampleSpec) -> pl.DataFrame:
    """Days of cover per hub x SKU against the mean of the last 28 days of demand."""
    recent = (
        net["demand"]
        .filter(pl.col("date") >= spec.as_of_date - timedelta(days=28))
        .group_by("site_id", "sku")
        .agg(daily=pl.col("qty").mean())
    )
    stock = net["inventory"].group_by("site_id", "sku").agg(on_hand=pl.col("on_hand").sum())
    hubs = net["sites"].filter(pl.col("kind") == "hub").select("site_id", "country")
    return (
        stock.join(recent, on=["site_id", "sku"])
        .join(hubs, on="site_id")
        .filter(pl.col("daily") > 0)
        .with_columns(cover=pl.col("on_hand") / pl.col("daily"))
    )


def _series_stats(net: dict[str, pl.DataFrame], spec: SampleSpec) -> pl.DataFrame:
    """ADI and CV^2 of non-zero demand per series (Syntetos-Boylan), with the generating pattern."""
    nonzero = pl.col("qty").filter(pl.col("qty") > 0)
    return (
        net["demand"]
        .group_by("site_id", "sku")
        .agg(
            adi=pl.len() / (pl.col("qty") > 0).sum(),
            cv2=(nonzero.std() / nonzero.mean()) ** 2,
        )
        .join(sku_patterns(spec), on="sku")
    )


# ---------------------------------------------------------------------------- determinism


def test_same_seed_gives_identical_frames(small: dict[str, pl.DataFrame]) -> None:
    again = generate_network(SMALL)
    for name in EXTRACTS:
        assert small[name].equals(again[name]), name


def test_another_seed_gives_other_data(small: dict[str, pl.DataFrame]) -> None:
    other = generate_network(SampleSpec(seed=8, skus=40, history_days=120))
    for name in ("demand", "inventory", "lanes", "items", "in_transit", "purchase_orders"):
        assert not small[name].equals(other[name]), name
    # the network's shape and names are fixed by the spec, not the seed
    assert small["sites"]["site_id"].to_list() == other["sites"]["site_id"].to_list()


def test_adding_a_hub_keeps_the_other_hubs_demand(small: dict[str, pl.DataFrame]) -> None:
    # given a network with one more hub (HUB-AT-02 would be 13th: the rotation's 13th is DE)
    bigger = generate_network(SampleSpec(skus=40, history_days=120, hubs=13))
    new_hub = set(bigger["sites"]["site_id"]) - set(small["sites"]["site_id"])
    # then only the new hub's series are new; every existing series is unchanged
    assert new_hub == {"HUB-DE-03"}
    kept = bigger["demand"].filter(pl.col("site_id") != "HUB-DE-03")
    assert kept.equals(small["demand"])


# ---------------------------------------------------------------------------- contract


@pytest.mark.parametrize("name", list(EXTRACTS))
def test_frame_follows_contract(small: dict[str, pl.DataFrame], name: str) -> None:
    extract, frame = EXTRACTS[name], small[name]
    assert frame.columns == list(extract.column_names)
    assert [frame.schema[c.name] for c in extract.columns] == [POLARS_DTYPES[c.kind] for c in extract.columns]
    for column in extract.columns:
        if not column.nullable:
            assert frame[column.name].null_count() == 0, column.name
    assert frame.height > 0
    assert not frame.select(extract.key).is_duplicated().any(), f"{name} key {extract.key} not unique"


@pytest.mark.parametrize(("source", "target"), list(REFERENCES.items()))
def test_every_reference_resolves(
    small: dict[str, pl.DataFrame], source: tuple[str, str], target: tuple[str, str]
) -> None:
    values = set(small[source[0]][source[1]].unique())
    known = set(small[target[0]][target[1]])
    assert values <= known, f"{source} refers to unknown {target}: {sorted(values - known)[:5]}"


def test_shipments_travel_on_lanes_with_their_lead_time(small: dict[str, pl.DataFrame]) -> None:
    leads = small["lanes"].group_by("origin", "destination").agg(leads=pl.col("lead_time_days"))
    it = small["in_transit"].join(leads, on=["origin", "destination"], how="left")
    assert it["leads"].null_count() == 0, "a shipment between two sites with no lane"
    it = it.with_columns(lead=(pl.col("eta") - pl.col("ship_date")).dt.total_days())
    assert it.select(pl.col("lead").is_in(pl.col("leads")).all()).item()
    assert (it["ship_date"] <= SMALL.as_of_date).all()
    assert (it["eta"] >= SMALL.as_of_date).mean() > 0.85  # mostly still due, a few late
    assert (it["qty"] > 0).all()
    assert not it.filter(
        pl.col("origin") == FORBIDDEN_LANE[0], pl.col("destination") == FORBIDDEN_LANE[1]
    ).height


def test_shipments_run_plant_to_dc_and_dc_to_hub(default: dict[str, pl.DataFrame]) -> None:
    kind = dict(default["sites"].select("site_id", "kind").iter_rows())
    pairs = {(kind[o], kind[d]) for o, d in default["in_transit"].select("origin", "destination").iter_rows()}
    assert pairs == {("plant", "dc"), ("dc", "hub")}
    assert 150 <= default["in_transit"]["shipment_id"].n_unique() <= 600  # "a few hundred"


def test_purchase_orders_go_to_plants_within_a_month(small: dict[str, pl.DataFrame]) -> None:
    po = small["purchase_orders"]
    plants = set(small["sites"].filter(pl.col("kind") == "plant")["site_id"])
    assert set(po["destination"]) <= plants
    ahead = [(d - SMALL.as_of_date).days for d in po["eta"]]
    assert 1 <= min(ahead)
    assert max(ahead) <= 30
    assert (po["qty"] > 0).all()


def test_inventory_is_consistent(small: dict[str, pl.DataFrame]) -> None:
    inv = small["inventory"]
    assert (inv["as_of"] == SMALL.as_of).all()
    assert (inv["on_hand"] >= 0).all()
    assert ((inv["allocated"] + inv["reserved"]) <= inv["on_hand"]).all()
    assert (inv["allocated"] >= 0).all()
    assert (inv["reserved"] >= 0).all()
    assert (inv["on_hand"] == inv["on_hand"].round()).all()
    kinds = small["sites"].filter(pl.col("site_id").is_in(inv["site_id"].unique().implode()))["kind"]
    assert set(kinds) == {"plant", "dc", "hub"}  # suppliers hold no stock
    # a lot has an expiry date and belongs to a perishable SKU; other rows have neither
    assert (inv["lot"].is_null() == inv["expiry_date"].is_null()).all()
    lots = inv.filter(pl.col("lot").is_not_null()).join(small["items"], on="sku")
    assert lots["shelf_life_days"].null_count() == 0
    assert (lots["expiry_date"] > SMALL.as_of_date).all()
    life_left = [(d - SMALL.as_of_date).days for d in lots["expiry_date"]]
    assert all(0 < left <= life for left, life in zip(life_left, lots["shelf_life_days"], strict=True))


def test_book_inventory_matches_wms_except_a_few_rows(default: dict[str, pl.DataFrame]) -> None:
    wms = default["inventory"].group_by("site_id", "sku").agg(on_hand=pl.col("on_hand").sum())
    both = default["book_inventory"].join(wms, on=["site_id", "sku"], how="full", coalesce=True)
    assert both["qty"].null_count() == 0
    assert both["on_hand"].null_count() == 0
    off = ((both["qty"] - both["on_hand"]).abs() / both["on_hand"].clip(lower_bound=1)) > 0.02
    assert 0 < off.sum()
    assert off.mean() <= 0.006  # below the default gate's 1% quarantine budget
    assert ((both["qty"] == both["on_hand"]) | off).all()  # equal, or clearly different
    assert (both["qty"] >= 0).all()


def test_items_are_plausible(default: dict[str, pl.DataFrame]) -> None:
    items = default["items"]
    assert items["sku"][0] == "SKU-00001"
    assert items.height == 300
    priced = items.filter(pl.col("unit_price").is_not_null())
    assert (priced["unit_price"] > priced["unit_cost"]).all()
    assert items["unit_price"].null_count() <= 0.05 * items.height
    yearly = items["holding_cost_per_day"] * 365 / items["unit_cost"]
    assert yearly.min() >= 0.19
    assert yearly.max() <= 0.26
    assert (items["unit_volume"] > 0).all()
    life = items["shelf_life_days"].drop_nulls()
    assert 0.05 * items.height <= life.len() <= 0.25 * items.height
    assert life.min() >= 30
    assert life.max() <= 120


# ---------------------------------------------------------------------------- network shape


def test_default_sites(default: dict[str, pl.DataFrame]) -> None:
    sites = default["sites"]
    by_kind = {k: set(g["site_id"]) for (k,), g in sites.group_by("kind")}
    assert by_kind["supplier"] == {"SUP-01", "SUP-02", "SUP-03"}
    assert by_kind["plant"] == {"PLT-DE-01", "PLT-PL-01"}
    assert by_kind["dc"] == {"DC-DE-01", "DC-FR-01", "DC-NL-01", "DC-IT-01"}
    assert len(by_kind["hub"]) == 12
    assert "HUB-CH-01" in by_kind["hub"]
    echelon = dict(sites.select("kind", "echelon").unique().iter_rows())
    assert echelon == {"supplier": 0, "plant": 1, "dc": 2, "hub": 3}
    suppliers = sites.filter(pl.col("kind") == "supplier")
    assert suppliers["country"].n_unique() == 3
    assert suppliers["outbound_capacity_per_day"].null_count() == 2
    assert sites.filter(pl.col("kind") == "dc")["country"].n_unique() >= 3
    hub_countries = set(sites.filter(pl.col("kind") == "hub")["country"])
    assert hub_countries == {"DE", "FR", "NL", "IT", "BE", "AT", "CH", "PL", "ES"}
    for kind in ("plant", "dc"):
        own = sites.filter(pl.col("kind") == kind)
        assert own["outbound_capacity_per_day"].null_count() == 0
        assert own["storage_capacity"].null_count() == 0


def test_forbidden_lane_exists_and_ch_has_an_allowed_source(default: dict[str, pl.DataFrame]) -> None:
    lanes = default["lanes"]
    keys = set(lanes.select("origin", "destination", "mode").iter_rows())
    assert FORBIDDEN_LANE == ("DC-FR-01", "HUB-CH-01", "truck")
    assert FORBIDDEN_LANE in keys
    sources = set(lanes.filter(pl.col("destination") == "HUB-CH-01")["origin"])
    assert {"DC-DE-01", "DC-FR-01"} <= sources


def test_lanes_by_type(default: dict[str, pl.DataFrame]) -> None:
    kind = dict(default["sites"].select("site_id", "kind").iter_rows())
    lanes = default["lanes"].with_columns(
        o=pl.col("origin").replace_strict(kind), d=pl.col("destination").replace_strict(kind)
    )
    types = set(lanes.select("o", "d").iter_rows())
    assert {("supplier", "plant"), ("plant", "dc"), ("dc", "hub"), ("hub", "hub"), ("dc", "dc")} == types
    lead = {t: (g["lead_time_days"].min(), g["lead_time_days"].max()) for t, g in lanes.group_by("o", "d")}
    purchase = lanes.filter(pl.col("o") == "supplier", pl.col("mode") != "sea")
    assert 7 <= purchase["lead_time_days"].min()
    assert purchase["lead_time_days"].max() <= 21
    sea = lanes.filter(pl.col("mode") == "sea")
    assert sea.height == 1
    assert sea["lead_time_days"][0] > 21
    assert lead[("plant", "dc")][0] >= 2
    assert lead[("plant", "dc")][1] <= 5
    for t in (("dc", "hub"), ("hub", "hub"), ("dc", "dc")):
        assert 1 <= lead[t][0], t
        assert lead[t][1] <= 3, t
    # purchase lanes cost about what an item costs; transport lanes a fraction of it
    median_cost = default["items"]["unit_cost"].median()
    assert all(
        0.7 * median_cost <= c <= 1.1 * median_cost
        for c in lanes.filter(pl.col("o") == "supplier")["cost_per_unit"]
    )
    assert lanes.filter(pl.col("o") != "supplier")["cost_per_unit"].max() < 1.0
    assert {"truck", "rail", "sea"} <= set(lanes["mode"])
    fixed = lanes["fixed_cost"]
    assert (fixed == 0).any()
    assert fixed.filter(fixed > 0).is_between(150, 600).all()
    assert lanes["capacity_per_day"].null_count() > 0
    assert lanes["capacity_per_day"].drop_nulls().len() > 0
    minimum = lanes["min_units"].drop_nulls()
    assert lanes["min_units"].null_count() > 0
    assert minimum.is_between(20, 100).all()
    # every hub is supplied by a DC
    hubs = {s for s, k in kind.items() if k == "hub"}
    assert hubs <= set(lanes.filter(pl.col("o") == "dc", pl.col("d") == "hub")["destination"])


def test_sizes() -> None:
    assert SIZES["S"] == SampleSpec()
    assert (SIZES["M"].own_sites, SIZES["M"].skus) == (20, 1_000)
    assert (SIZES["L"].own_sites, SIZES["L"].skus, SIZES["L"].history_days) == (50, 5_000, 730)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"as_of": datetime(2026, 11, 23, 6)},  # naive
        {"hubs": 4},  # no HUB-CH-01
        {"dcs": 1},
        {"history_days": 7},
        {"carried_share": (0.8, 0.6)},
    ],
)
def test_spec_rejects_impossible_networks(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        SampleSpec(**kwargs)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- demand realism


def test_demand_is_daily_history_up_to_yesterday(small: dict[str, pl.DataFrame]) -> None:
    demand = small["demand"]
    assert demand["date"].min() == SMALL.first_day
    assert demand["date"].max() == SMALL.as_of_date - timedelta(days=1)
    per_series = demand.group_by("site_id", "sku").len()["len"]
    assert (per_series == SMALL.history_days).all()
    assert (demand["qty"] >= 0).all()
    assert (demand["qty"] == demand["qty"].round()).all()
    kinds = set(small["sites"].filter(pl.col("site_id").is_in(demand["site_id"].unique().implode()))["kind"])
    assert kinds == {"hub", "dc"}


def test_every_pattern_is_present_and_sporadic_series_are_sporadic(small: dict[str, pl.DataFrame]) -> None:
    stats = _series_stats(small, SMALL)
    assert set(stats["pattern"]) == set(PATTERNS)
    sporadic = stats.filter(pl.col("pattern").is_in(["intermittent", "lumpy"]))
    assert (sporadic["adi"] > 1.32).all()
    lumpy = stats.filter(pl.col("pattern") == "lumpy", pl.col("cv2").is_not_null())
    assert (lumpy["cv2"] > 0.49).mean() > 0.8


def test_headline_demand_properties(default: dict[str, pl.DataFrame]) -> None:
    spec = SampleSpec()
    stats = _series_stats(default, spec)
    by = {p: stats.filter(pl.col("pattern") == p) for p in PATTERNS}
    # Syntetos-Boylan: smooth series are frequent and steady, intermittent sparse and steady
    assert (by["smooth"]["adi"] < 1.32).all()
    assert (by["smooth"]["cv2"] < 0.49).mean() > 0.95
    assert (by["intermittent"]["adi"] > 1.32).all()
    assert (by["intermittent"]["cv2"] < 0.49).mean() > 0.95
    assert (by["lumpy"]["adi"] > 1.32).all()
    assert (by["lumpy"]["cv2"] > 0.49).mean() > 0.9

    daily = (
        default["demand"]
        .filter(pl.col("site_id").str.starts_with("HUB"))
        .join(sku_patterns(spec), on="sku")
        .group_by("sku", "pattern", "date")
        .agg(pl.col("qty").sum())
        .sort("sku", "date")
    )
    per_sku = daily.group_by("sku", "pattern").agg(
        yoy=(pl.col("qty").tail(365).mean() / pl.col("qty").head(365).mean()).log().abs(),
        peak=pl.col("qty").quantile(0.97) / pl.col("qty").median(),
    )
    trend = per_sku.filter(pl.col("pattern") == "trend")
    assert (trend["yoy"] > 0.2).mean() > 0.9  # year over year the level clearly moved
    promo = per_sku.filter(pl.col("pattern") == "promo")["peak"]
    smooth = per_sku.filter(pl.col("pattern") == "smooth")["peak"]
    assert (promo > 3.0).mean() > 0.9
    assert (smooth < 2.5).all()
    # weekly seasonality: hubs sell more on Saturdays than on Sundays
    weekday = (
        daily.filter(pl.col("pattern") == "smooth")
        .group_by(pl.col("date").dt.weekday())
        .agg(pl.col("qty").mean())
    )
    mean = dict(weekday.iter_rows())
    assert mean[6] > 1.5 * mean[7]

    hubs = default["sites"].filter(pl.col("kind") == "hub")["site_id"]
    carried = (
        default["demand"]
        .filter(pl.col("site_id").is_in(hubs.implode()))
        .group_by("site_id")
        .agg(share=pl.col("sku").n_unique() / spec.skus)
    )
    assert carried["share"].is_between(0.55, 0.85).all()


# ---------------------------------------------------------------------------- imbalance


def test_some_sku_is_short_at_one_hub_and_in_excess_at_a_neighbour(default: dict[str, pl.DataFrame]) -> None:
    cover = _cover(default, SampleSpec())
    short = cover.filter(pl.col("cover") < 4).select("country", "sku", short_hub="site_id")
    excess = cover.filter(pl.col("cover") > 42).select("country", "sku", excess_hub="site_id")
    pairs = short.join(excess, on=["country", "sku"])
    assert pairs.height >= 3
    assert pairs["country"].n_unique() >= 2
    # and both directions of imbalance are there: hubs are short of some SKUs, heavy on others
    per_hub = cover.group_by("site_id").agg(
        short=(pl.col("cover") < 7).mean(),
        excess=(pl.col("cover") > 42).mean(),
        zero=(pl.col("on_hand") == 0).sum(),
    )
    assert (per_hub["short"] > 0).all()
    assert (per_hub["excess"] > 0).all()
    assert per_hub["zero"].sum() > 0


def test_tight_storage_hubs_exist(default: dict[str, pl.DataFrame]) -> None:
    volume = (
        default["inventory"]
        .join(default["items"], on="sku")
        .group_by("site_id")
        .agg(volume=(pl.col("on_hand") * pl.col("unit_volume")).sum())
        .join(default["sites"], on="site_id")
        .with_columns(util=pl.col("volume") / pl.col("storage_capacity"))
    )
    hubs = volume.filter(pl.col("kind") == "hub")
    assert 2 <= (hubs["util"] >= 0.9).sum() <= 3
    assert (volume.filter(pl.col("kind") != "hub")["util"] < 0.9).all()
    assert math.isclose(float(hubs["util"].median() or 0), 0.62, abs_tol=0.15)


def test_in_transit_quantities_fit_the_destination(default: dict[str, pl.DataFrame]) -> None:
    # shipments only carry SKUs their destination stocks
    stocked = default["inventory"].select("site_id", "sku").unique()
    lines = default["in_transit"].join(
        stocked, left_on=["destination", "sku"], right_on=["site_id", "sku"], how="anti"
    )
    assert lines.height == 0
    assert np.isfinite(default["in_transit"]["qty"].to_numpy()).all()
