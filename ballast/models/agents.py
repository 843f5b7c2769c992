"""Hub agents (DESIGN.md §1, §4): each own site states what it needs or can spare, and proposes moves.

An agent is a pure function of its site's slice — stock position, known receipts and issues,
forecast quantiles, targets, the lanes that touch it, the policy — so agents can run anywhere
(mapped Prefect tasks spread them over a Dask or Ray task runner). It returns

* a *statement* per SKU: the projected end-of-day stock over the horizon under mean demand, the
  deficit against safety stock and the day it bites, the stock-out day under mean and q95 demand,
  and the surplus it can spare (units above safety stock on its worst day under q80 demand);
* *requests* on its inbound lanes for SKUs in deficit and *offers* on its outbound lanes for
  SKUs in surplus or with short-dated units it cannot sell in time.

`match_proposals` joins offers with requests on the same lane and SKU: those surplus → deficit
arcs (plus offers of short-dated stock to sites that sell the SKU) are the agents' proposals,
each with a rationale. Replenishment and purchase arcs from the echelon above come from the
requests alone (the coordinator always considers them).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import polars as pl

from ballast.models.policy import Policy

STATEMENT_SCHEMA = {
    "site_id": pl.String,
    "sku": pl.String,
    "stock_units": pl.Float64,
    "short_dated_units": pl.Float64,
    "short_dated_expiry": pl.Date,
    "receipts_units": pl.Float64,
    "issues_units": pl.Float64,
    "demand_mean_units": pl.Float64,
    "demand_q95_units": pl.Float64,
    "safety_stock_units": pl.Float64,
    "target_stock_units": pl.Float64,
    "projected_min_units": pl.Float64,
    "projected_end_units": pl.Float64,
    "deficit_units": pl.Float64,
    "bite_date": pl.Date,
    "stockout_date": pl.Date,
    "stockout_date_q95": pl.Date,
    "surplus_units": pl.Float64,
    "status": pl.String,
}

LANE_COLUMNS = ("origin", "destination", "mode", "lead_time_days", "cost_per_unit", "fixed_cost")

INTENT_SCHEMA = {
    "origin": pl.String,
    "destination": pl.String,
    "mode": pl.String,
    "sku": pl.String,
    "role": pl.String,  # request | offer
    "units": pl.Float64,
    "short_dated_units": pl.Float64,
    "need_by": pl.Date,
    "lead_time_days": pl.Int64,
    "rationale": pl.String,
}

PROPOSAL_SCHEMA = {
    "proposal_id": pl.String,
    "kind": pl.String,  # lateral | short_dated
    "origin": pl.String,
    "destination": pl.String,
    "mode": pl.String,
    "sku": pl.String,
    "units": pl.Float64,
    "short_dated_units": pl.Float64,
    "need_by": pl.Date,
    "lead_time_days": pl.Int64,
    "origin_surplus_units": pl.Float64,
    "destination_deficit_units": pl.Float64,
    "rationale": pl.String,
}


@dataclass(frozen=True, slots=True)
class SiteSlice:
    """Everything an agent may look at: its own site's rows of each input frame."""

    site_id: str
    kind: str
    echelon: int
    as_of: date
    horizon_days: int
    stock: pl.DataFrame  # sku, sellable, unsellable_expiring, short_dated_expiry
    flows: pl.DataFrame  # sku, day_index, receipts, issues
    forecast: pl.DataFrame  # sku, day_index, mean, q80, q95
    targets: pl.DataFrame  # sku, safety_stock, target_stock
    inbound: pl.DataFrame  # LANE_COLUMNS + origin_kind, origin_echelon
    outbound: pl.DataFrame  # LANE_COLUMNS + destination_kind, destination_echelon
    policy: Policy


@dataclass(frozen=True, slots=True)
class AgentReport:
    """One agent's answer: its statement per SKU and its requests and offers per lane."""

    site_id: str
    statement: pl.DataFrame
    intents: pl.DataFrame


def is_forbidden(policy: Policy, origin: str, destination: str, mode: str, countries: dict[str, str]) -> bool:
    """A lane the policy forbids outright or whose country pair is embargoed."""
    for lane in policy.forbidden_lanes:
        if lane.origin == origin and lane.destination == destination and lane.mode in (None, mode):
            return True
    oc, dc = countries.get(origin), countries.get(destination)
    return any(p.origin_country == oc and p.destination_country == dc for p in policy.embargoed_country_pairs)


def _matrix(frame: pl.DataFrame, column: str, index: dict[str, int], horizon: int) -> np.ndarray:
    out = np.zeros((len(index), horizon))
    if frame.is_empty():
        return out
    sub = frame.filter(pl.col("day_index") < horizon)
    rows = np.fromiter((index[s] for s in sub["sku"].to_list()), dtype=np.int64, count=sub.height)
    np.add.at(out, (rows, sub["day_index"].to_numpy()), sub[column].to_numpy())
    return out


def _first_day(mask: np.ndarray, as_of: date) -> list[date | None]:
    any_ = mask.any(axis=1)
    first = mask.argmax(axis=1)
    return [as_of + timedelta(days=int(f)) if a else None for f, a in zip(first, any_, strict=True)]


def run_agent(site: SiteSlice) -> AgentReport:
    """State surplus or deficit per SKU over the horizon and propose candidate transfers."""
    H = site.horizon_days
    skus = sorted(
        set(site.stock["sku"].to_list())
        | set(site.forecast["sku"].to_list())
        | set(site.targets["sku"].to_list())
        | set(site.flows["sku"].to_list())
    )
    index = {s: k for k, s in enumerate(skus)}
    K = len(skus)
    stock0 = np.zeros(K)
    short = np.zeros(K)
    short_exp: list[date | None] = [None] * K
    for sku, sellable, unsellable, expiry in site.stock.select(
        "sku", "sellable", "unsellable_expiring", "short_dated_expiry"
    ).iter_rows():
        stock0[index[sku]] = sellable
        short[index[sku]] = unsellable
        short_exp[index[sku]] = expiry
    safety = np.zeros(K)
    target = np.zeros(K)
    for sku, ss, ts in site.targets.select("sku", "safety_stock", "target_stock").iter_rows():
        safety[index[sku]] = ss or 0.0
        target[index[sku]] = ts or 0.0
    receipts = _matrix(site.flows, "receipts", index, H)
    issues = _matrix(site.flows, "issues", index, H)
    mean = _matrix(site.forecast, "mean", index, H)
    q80 = _matrix(site.forecast, "q80", index, H)
    q95 = _matrix(site.forecast, "q95", index, H)
    net_in = np.cumsum(receipts - issues, axis=1)
    cum_mean = np.cumsum(mean, axis=1)
    # daily quantiles do not add up: cumulative spread ~ root of summed squared daily spreads
    spread80 = np.sqrt(np.cumsum(np.maximum(q80 - mean, 0.0) ** 2, axis=1))
    spread95 = np.sqrt(np.cumsum(np.maximum(q95 - mean, 0.0) ** 2, axis=1))
    proj = stock0[:, None] + net_in - cum_mean
    proj80 = proj - spread80
    proj95 = proj - spread95
    if H:
        deficit = np.maximum(safety[:, None] - proj, 0.0).max(axis=1)
        surplus = np.maximum(proj80.min(axis=1) - safety, 0.0)
        proj_min, proj_end = proj.min(axis=1), proj[:, -1]
    else:
        deficit = surplus = proj_min = proj_end = np.zeros(K)
    surplus = np.where(deficit > 0, 0.0, surplus)
    bite = _first_day(proj < safety[:, None] - 1e-9, site.as_of)
    stockout = _first_day(proj < -1e-9, site.as_of)
    stockout95 = _first_day(proj95 < -1e-9, site.as_of)
    status = np.where(deficit > 1e-9, "deficit", np.where(surplus > 1e-9, "surplus", "balanced"))
    statement = pl.DataFrame(
        {
            "site_id": [site.site_id] * K,
            "sku": skus,
            "stock_units": stock0,
            "short_dated_units": short,
            "short_dated_expiry": short_exp,
            "receipts_units": receipts.sum(axis=1),
            "issues_units": issues.sum(axis=1),
            "demand_mean_units": mean.sum(axis=1),
            "demand_q95_units": mean.sum(axis=1) + (spread95[:, -1] if H else 0.0),
            "safety_stock_units": safety,
            "target_stock_units": target,
            "projected_min_units": proj_min,
            "projected_end_units": proj_end,
            "deficit_units": deficit,
            "bite_date": bite,
            "stockout_date": stockout,
            "stockout_date_q95": stockout95,
            "surplus_units": surplus,
            "status": status.tolist(),
        },
        schema=STATEMENT_SCHEMA,
    )
    return AgentReport(site.site_id, statement, _intents(site, statement))


def _intents(site: SiteSlice, statement: pl.DataFrame) -> pl.DataFrame:
    """Requests on inbound lanes that can arrive inside the horizon; offers on outbound lanes."""
    horizon = site.horizon_days
    needs = statement.filter(pl.col("status") == "deficit")
    spare = statement.filter((pl.col("status") == "surplus") | (pl.col("short_dated_units") > 0))
    parts = []
    inbound = site.inbound.filter(pl.col("lead_time_days") < horizon)
    if not needs.is_empty() and not inbound.is_empty():
        req = needs.join(inbound.select("origin", "mode", "lead_time_days"), how="cross")
        parts.append(
            req.select(
                "origin",
                destination=pl.lit(site.site_id),
                mode="mode",
                sku="sku",
                role=pl.lit("request"),
                units="deficit_units",
                short_dated_units=pl.lit(0.0),
                need_by="bite_date",
                lead_time_days="lead_time_days",
                rationale=pl.format(
                    "{} falls {} u below safety stock {} from {} (stock {}, receipts {}, demand {} / q95 {} over {} d)",
                    pl.lit(site.site_id),
                    pl.col("deficit_units").round(1),
                    pl.col("safety_stock_units").round(1),
                    pl.col("bite_date").cast(pl.String),
                    pl.col("stock_units").round(1),
                    pl.col("receipts_units").round(1),
                    pl.col("demand_mean_units").round(1),
                    pl.col("demand_q95_units").round(1),
                    pl.lit(horizon),
                ),
            )
        )
    outbound = site.outbound.filter(pl.col("lead_time_days") < horizon)
    if not spare.is_empty() and not outbound.is_empty() and site.kind != "supplier":
        off = spare.join(outbound.select("destination", "mode", "lead_time_days"), how="cross")
        parts.append(
            off.select(
                origin=pl.lit(site.site_id),
                destination="destination",
                mode="mode",
                sku="sku",
                role=pl.lit("offer"),
                units="surplus_units",
                short_dated_units="short_dated_units",
                need_by=pl.col("short_dated_expiry"),
                lead_time_days="lead_time_days",
                rationale=pl.format(
                    "{} can spare {} u (lowest projected stock {} at q80 demand vs safety stock {}); {} u short-dated",
                    pl.lit(site.site_id),
                    pl.col("surplus_units").round(1),
                    (pl.col("projected_min_units")).round(1),
                    pl.col("safety_stock_units").round(1),
                    pl.col("short_dated_units").round(1),
                ),
            )
        )
    if not parts:
        return pl.DataFrame(schema=INTENT_SCHEMA)
    return pl.concat([p.cast(INTENT_SCHEMA) for p in parts]).sort(
        "origin", "destination", "mode", "sku", "role"
    )


def _proposal_id(origin: str, destination: str, mode: str, sku: str) -> str:
    return hashlib.sha256(f"{origin}|{destination}|{mode}|{sku}".encode()).hexdigest()[:16]


def match_proposals(reports: list[AgentReport], sites: pl.DataFrame) -> pl.DataFrame:
    """Surplus → deficit arcs on which both ends agree (lateral), and short-dated offers that sell in time.

    A request on a lane from the echelon above needs no offer: the coordinator always considers
    replenishment, so only lanes between sites of the same echelon or going up are matched here.
    """
    if not reports:
        return pl.DataFrame(schema=PROPOSAL_SCHEMA)
    intents = pl.concat([r.intents for r in reports])
    statements = pl.concat([r.statement for r in reports])
    echelon = sites.select(site_id="site_id", echelon="echelon")
    requests = intents.filter(pl.col("role") == "request")
    offers = intents.filter(pl.col("role") == "offer")
    keys = ["origin", "destination", "mode", "sku"]
    lateral = (
        offers.filter(pl.col("units") > 0)
        .join(requests, on=keys, suffix="_req")
        .join(echelon.rename({"site_id": "origin", "echelon": "oe"}), on="origin")
        .join(echelon.rename({"site_id": "destination", "echelon": "de"}), on="destination")
        .filter(pl.col("oe") >= pl.col("de"))
        .select(
            kind=pl.lit("lateral"),
            origin="origin",
            destination="destination",
            mode="mode",
            sku="sku",
            units=pl.min_horizontal("units", "units_req"),
            short_dated_units="short_dated_units",
            need_by="need_by_req",
            lead_time_days="lead_time_days",
            origin_surplus_units="units",
            destination_deficit_units="units_req",
            rationale=pl.format("{}; {}", "rationale_req", "rationale"),
        )
    )
    # short-dated stock may go to any site with demand for the SKU that it reaches before expiry
    sells = statements.filter(pl.col("demand_mean_units") > 0).select(
        destination="site_id", sku="sku", dest_demand="demand_mean_units", dest_deficit="deficit_units"
    )
    short = (
        offers.filter(pl.col("short_dated_units") > 0)
        .join(sells, on=["destination", "sku"])
        .filter(pl.col("need_by").is_not_null())
        .select(
            kind=pl.lit("short_dated"),
            origin="origin",
            destination="destination",
            mode="mode",
            sku="sku",
            units=pl.lit(0.0),
            short_dated_units="short_dated_units",
            need_by="need_by",
            lead_time_days="lead_time_days",
            origin_surplus_units="units",
            destination_deficit_units="dest_deficit",
            rationale=pl.format(
                "{} holds {} u expiring {} it cannot sell in time; {} sells {} u over the horizon",
                "origin",
                pl.col("short_dated_units").round(1),
                pl.col("need_by").cast(pl.String),
                "destination",
                pl.col("dest_demand").round(1),
            ),
        )
    )
    both = pl.concat([lateral.cast(_no_id()), short.cast(_no_id())])
    if both.is_empty():
        return pl.DataFrame(schema=PROPOSAL_SCHEMA)
    # one proposal per lane and SKU: a lateral one absorbs the short-dated offer on the same lane
    merged = (
        both.sort("kind")
        .group_by(keys, maintain_order=True)
        .agg(
            pl.col("kind").first(),
            pl.col("units").max(),
            pl.col("short_dated_units").max(),
            pl.col("need_by").first(),
            pl.col("lead_time_days").first(),
            pl.col("origin_surplus_units").first(),
            pl.col("destination_deficit_units").first(),
            pl.col("rationale").first(),
        )
        .sort(keys)
    )
    ids = [_proposal_id(*k) for k in merged.select(keys).iter_rows()]
    return (
        merged.with_columns(proposal_id=pl.Series(ids, dtype=pl.String))
        .select(list(PROPOSAL_SCHEMA))
        .cast(PROPOSAL_SCHEMA)
    )


def _no_id() -> dict[str, pl.DataType]:
    return {k: v for k, v in PROPOSAL_SCHEMA.items() if k != "proposal_id"}


def site_slices(
    sites: pl.DataFrame,
    lanes: pl.DataFrame,
    positions: pl.DataFrame,
    receipts: pl.DataFrame,
    issues: pl.DataFrame,
    forecasts: pl.DataFrame,
    targets: pl.DataFrame,
    policy: Policy,
    as_of: date,
) -> list[SiteSlice]:
    """Cut the network's frames into one slice per own site (suppliers hold no stock and get no agent)."""
    H = policy.horizon_days
    countries = dict(sites.select("site_id", "country").iter_rows())
    kinds = dict(sites.select("site_id", "kind").iter_rows())
    echelons = dict(sites.select("site_id", "echelon").iter_rows())
    allowed = (
        lanes.filter(
            pl.Series(
                [
                    not is_forbidden(policy, o, d, m, countries)
                    for o, d, m in lanes.select("origin", "destination", "mode").iter_rows()
                ],
                dtype=pl.Boolean,
            )
        )
        if not lanes.is_empty()
        else lanes
    )
    lane_view = allowed.select(LANE_COLUMNS).with_columns(
        origin_kind=pl.col("origin").replace_strict(kinds, default=None),
        origin_echelon=pl.col("origin").replace_strict(echelons, default=None, return_dtype=pl.Int64),
        destination_kind=pl.col("destination").replace_strict(kinds, default=None),
        destination_echelon=pl.col("destination").replace_strict(
            echelons, default=None, return_dtype=pl.Int64
        ),
    )
    day_index = (pl.col("day") - pl.lit(as_of)).dt.total_days()
    flows = pl.concat(
        [
            receipts.select("site_id", "sku", day_index=day_index, receipts="qty", issues=pl.lit(0.0)),
            issues.select("site_id", "sku", day_index=day_index, receipts=pl.lit(0.0), issues="qty"),
        ]
    ).filter(pl.col("day_index").is_between(0, H - 1))
    fc = forecasts.select("site_id", "sku", day_index=day_index, mean="mean", q80="q80", q95="q95").filter(
        pl.col("day_index").is_between(0, H - 1)
    )
    stock = positions.select("site_id", "sku", "sellable", "unsellable_expiring", "short_dated_expiry")
    tg = targets.select("site_id", "sku", "safety_stock", "target_stock")

    def parts(frame: pl.DataFrame, key: str) -> dict[str, pl.DataFrame]:
        return (
            {k[0]: v.drop(key) for k, v in frame.partition_by(key, as_dict=True).items()}
            if not frame.is_empty()
            else {}
        )

    by_stock, by_flow, by_fc, by_tg = (
        parts(stock, "site_id"),
        parts(flows, "site_id"),
        parts(fc, "site_id"),
        parts(tg, "site_id"),
    )
    by_in = (
        {k[0]: v for k, v in lane_view.partition_by("destination", as_dict=True).items()}
        if not lane_view.is_empty()
        else {}
    )
    by_out = (
        {k[0]: v for k, v in lane_view.partition_by("origin", as_dict=True).items()}
        if not lane_view.is_empty()
        else {}
    )
    empty = {
        "stock": stock.clear().drop("site_id"),
        "flows": flows.clear().drop("site_id"),
        "fc": fc.clear().drop("site_id"),
        "tg": tg.clear().drop("site_id"),
        "lanes": lane_view.clear(),
    }
    out = []
    for site_id, kind, echelon in sites.select("site_id", "kind", "echelon").sort("site_id").iter_rows():
        if kind == "supplier":
            continue
        out.append(
            SiteSlice(
                site_id=site_id,
                kind=kind,
                echelon=echelon,
                as_of=as_of,
                horizon_days=H,
                stock=by_stock.get(site_id, empty["stock"]),
                flows=by_flow.get(site_id, empty["flows"]),
                forecast=by_fc.get(site_id, empty["fc"]),
                targets=by_tg.get(site_id, empty["tg"]),
                inbound=by_in.get(site_id, empty["lanes"]),
                outbound=by_out.get(site_id, empty["lanes"]),
                policy=policy,
            )
        )
    return out


def statements_frame(reports: list[AgentReport]) -> pl.DataFrame:
    return pl.concat([r.statement for r in reports]) if reports else pl.DataFrame(schema=STATEMENT_SCHEMA)


__all__ = [
    "AgentReport",
    "SiteSlice",
    "is_forbidden",
    "match_proposals",
    "run_agent",
    "site_slices",
    "statements_frame",
]
