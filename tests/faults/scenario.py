"""The tiny network of `tests.factories`, delivered cycle after cycle, and the policies the fault tests use."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import yaml

from ballast.io.landing import land_frame
from ballast.settings import Settings
from tests import factories as f

T0 = f.AS_OF


def stamp(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def deliver_network(inbox: Path, as_of: datetime = T0) -> None:
    for name, frame in f.network(as_of).items():
        land_frame(frame, inbox, name, as_of)


def deliver_inventory(inbox: Path, step: int) -> datetime:
    """A new WMS snapshot `step` quarter-hours after T0 (stock drifts, so the plan is a new one)."""
    as_of = T0 + timedelta(minutes=15 * step)
    inv = f.inventory(as_of).with_columns(
        pl.when(pl.col("site_id") == "DC-DE-01")
        .then(pl.col("on_hand") - step)
        .otherwise(pl.col("on_hand"))
        .alias("on_hand")
    )
    land_frame(inv, inbox, "inventory", as_of)
    land_frame(
        inv.group_by("as_of", "site_id", "sku", maintain_order=True).agg(pl.col("on_hand").sum().alias("qty")),
        inbox,
        "book_inventory",
        as_of,
    )
    return as_of


def write_policy(home: Path, **changes: object) -> Path:
    """The default policy with a 7-day freeze window (so orders are released) and `changes` applied.

    `changes` take dotted keys one level deep: `{"solver.time_limit_seconds": 0.001}`.
    """
    doc = yaml.safe_load(Settings().policy_path.read_text())
    doc["freeze_window_days"] = 7
    for key, value in changes.items():
        section, _, leaf = key.partition(".")
        if leaf:
            doc[section][leaf] = value
        else:
            doc[section] = value
    path = home / "policies" / "default.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc))
    return path
