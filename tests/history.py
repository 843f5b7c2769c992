"""A history of extracts for backfill tests and the backfill benchmark.

`land_history_start` lands the sample network at T0; `later_snapshots` derives the snapshots a
WMS/ERP/TMS would deliver at a later time (inventory drawn down a little each hour, the same
in-transit and purchase orders, and, once a day has closed, that day's demand); `ingest_at`
ingests and gates the inbox with the cycle clock set to that time, as a live cycle would.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl

from ballast.io.ingest import ingest_inbox
from ballast.io.landing import land_frame
from ballast.io.sample_writer import DEFAULT_FORMATS
from ballast.io.staging import validate_pending
from ballast.io.warehouse import open_warehouse
from ballast.models.policy import load_policy
from ballast.models.sample import SampleSpec, generate_network
from ballast.settings import Settings

T0 = datetime(2026, 10, 5, 6, 0, tzinfo=UTC)
TINY = SampleSpec(hubs=5, dcs=2, plants=1, skus=25, history_days=120, as_of=T0)


def land(frames: dict[str, pl.DataFrame], inbox: Path, as_of: datetime, tag: str | None = None) -> list[Path]:
    return [land_frame(frame, inbox, name, as_of, DEFAULT_FORMATS[name], tag) for name, frame in frames.items()]


def land_history_start(inbox: Path, spec: SampleSpec = TINY) -> dict[str, pl.DataFrame]:
    """Land the whole sample network at `spec.as_of`; return its frames (the base of later snapshots)."""
    frames = generate_network(spec)
    land(frames, inbox, spec.as_of)
    return frames


def _daily_mean(demand: pl.DataFrame, days: int = 28) -> pl.DataFrame:
    last = demand.get_column("date").max()
    recent = demand.filter(pl.col("date") > last - timedelta(days=days))
    return recent.group_by("site_id", "sku").agg(pl.col("qty").mean().round(0).alias("qty"))


def demand_for_day(base: dict[str, pl.DataFrame], day: date, factor: float = 1.0) -> pl.DataFrame:
    """One closed day of demand per series: the recent daily mean × `factor` (a planted spike if > 1)."""
    mean = _daily_mean(base["demand"])
    return mean.select(
        pl.lit(day).alias("date"), "site_id", "sku", (pl.col("qty") * factor).round(0).alias("qty")
    ).sort("site_id", "sku")


def later_snapshots(
    base: dict[str, pl.DataFrame], t0: datetime, at: datetime, previous: datetime | None = None
) -> dict[str, pl.DataFrame]:
    """The snapshot extracts delivered at `at` (> t0), plus demand for the days closed since `previous`."""
    hours = (at - t0).total_seconds() / 3600
    keep = max(0.5, 1.0 - 0.004 * hours)  # stock sells down slowly
    ts = pl.lit(at).cast(pl.Datetime("us", "UTC"))
    inventory = base["inventory"].with_columns(ts.alias("as_of"), (pl.col("on_hand") * keep).round(0).alias("on_hand"))
    book = base["book_inventory"].with_columns(ts.alias("as_of"), (pl.col("qty") * keep).round(0).alias("qty"))
    frames = {"inventory": inventory, "book_inventory": book,
              "in_transit": base["in_transit"], "purchase_orders": base["purchase_orders"]}
    since = (previous or t0).date()
    closed = [since + timedelta(days=d) for d in range(0, (at.date() - since).days)]
    if closed:
        frames["demand"] = pl.concat([demand_for_day(base, d) for d in closed])
    return frames


def register_cheap_forecaster(settings: Settings) -> None:
    """Make a forecaster without the AutoETS/AutoTheta/ARIMA tier the champion: for tests about where
    and when forecasts are fitted, not how well (the rich tier takes most of a tiny network's fit)."""
    from dataclasses import asdict

    from ballast.io import tracking
    from ballast.models.forecast import ForecastConfig

    tracking.init_tracking(settings)
    with tracking.start_run(settings, kind="forecast", run_name="cheap forecaster"):
        tracking.register_forecaster(settings, asdict(ForecastConfig(expensive_budget=0, arima_budget=0)), "cheap",
                                     promote=True)


def ingest_at(settings: Settings, now: datetime) -> None:
    """Ingest and gate whatever is in the inbox, with the cycle clock at `now`."""
    policy, _ = load_policy(settings.policy_path)
    with open_warehouse(settings.db_path) as con:
        ingest_inbox(con, settings.inbox_dir, settings.archive_dir, now)
        validate_pending(con, policy, now)


def build_history(settings: Settings, t0: datetime, end: datetime, every: timedelta,
                  spec: SampleSpec | None = None) -> dict[str, pl.DataFrame]:
    """Land and ingest the network at t0 and newer snapshots at every step up to `end` (each ingested then)."""
    spec = spec or SampleSpec(**{**TINY.__dict__, "as_of": t0})
    base = land_history_start(settings.inbox_dir, spec)
    ingest_at(settings, t0)
    previous, at = t0, t0 + every
    while at <= end:
        land(later_snapshots(base, t0, at, previous), settings.inbox_dir, at)
        ingest_at(settings, at)
        previous, at = at, at + every
    return base
