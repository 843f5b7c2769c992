"""The simulator's side of the inbox and outbox: it delivers extracts as the ERP/WMS/TMS would and
reads released orders the way an ERP adapter would. The planner sees nothing else of it.

Each simulated day's snapshot is taken at `as_of` (06:00 UTC), before that day's arrivals:
WMS `inventory` (+ ERP `book_inventory`), TMS `in_transit` (shipment id = the order id that
caused it, so the planner stops counting a released order once it ships), ERP
`purchase_orders` (POs open at the start), and the previous day's `demand`. Master data and the
demand history are landed once, on the first day.
"""

from __future__ import annotations

import os
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from ballast.io.landing import file_name, land_frame, write_manifest
from ballast.models.sample import conform
from ballast.models.twin.network import TwinNetwork
from ballast.models.twin.sim import Order, Simulator


def land_stamped(frame: pl.DataFrame, inbox: Path, extract: str, as_of: datetime) -> Path:
    """Land `frame` as Parquet whose file metadata carries the export time, by the landing convention.

    Ingest treats a file whose sha256 it has seen as a duplicate, and readiness then finds the
    extract stale; an unchanged (or empty) TMS/ERP snapshot re-delivered the next day must
    therefore differ in its bytes, as real exports do through their export timestamp.
    """
    folder = inbox / extract
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / file_name(extract, as_of, "parquet")
    tmp = folder / f".{final.name}.part"
    frame.write_parquet(tmp, metadata={"extracted_at": as_of.strftime("%Y-%m-%dT%H:%M:%SZ")})
    os.replace(tmp, final)
    write_manifest(final, extract, as_of, frame.height)
    return final


def _day(start: date, offset: int) -> date:
    return start + timedelta(days=offset)


def inventory_frame(sim: Simulator, as_of: datetime) -> pl.DataFrame:
    """WMS rows for every own site × SKU that holds stock or is sold there."""
    net = sim.net
    carried = (net.history.sum(axis=0) > 0) | (net.stock0 > 0)
    mask = ((sim.stock > 0) | carried) & (~net.is_supplier)[:, None]
    n, i = np.nonzero(mask)
    frame = pl.DataFrame(
        {
            "as_of": [as_of] * len(n),
            "site_id": [net.nodes[k] for k in n],
            "sku": [net.skus[k] for k in i],
            "on_hand": sim.stock[n, i].astype(float),
            "allocated": np.zeros(len(n)),
            "reserved": np.zeros(len(n)),
            "lot": pl.Series([None] * len(n), dtype=pl.String),
            "expiry_date": pl.Series([None] * len(n), dtype=pl.Date),
        }
    )
    return conform(frame, "inventory")


def book_inventory_frame(inventory: pl.DataFrame) -> pl.DataFrame:
    return conform(inventory.rename({"on_hand": "qty"}), "book_inventory")


def in_transit_frame(sim: Simulator) -> pl.DataFrame:
    """Every shipment on its way (ETA = when the carrier will deliver it)."""
    net, start = sim.net, sim.net.start
    rows = [s for s in sim.pipeline if s.kind != "purchase_order"]
    return conform(
        pl.DataFrame(
            {
                "shipment_id": [s.ref for s in rows],
                "origin": [net.nodes[s.origin] for s in rows],
                "destination": [net.nodes[s.dest] for s in rows],
                "sku": [net.skus[s.sku] for s in rows],
                "qty": [float(s.qty) for s in rows],
                "ship_date": [
                    _day(start, s.ship_day) if s.ship_day >= 0 else _initial_ship_date(net, s.ref) for s in rows
                ],
                "eta": [_day(start, s.arrive_day) for s in rows],
            },
            schema_overrides={"ship_date": pl.Date, "eta": pl.Date},
        ),
        "in_transit",
    )


def _initial_ship_date(net: TwinNetwork, ref: str) -> date:
    for r in net.receipts:
        if r.ref == ref and r.ship_date is not None:
            return r.ship_date
    return net.start


def purchase_orders_frame(sim: Simulator) -> pl.DataFrame:
    net = sim.net
    rows = [s for s in sim.pipeline if s.kind == "purchase_order"]
    return conform(
        pl.DataFrame(
            {
                "po_id": [s.ref for s in rows],
                "destination": [net.nodes[s.dest] for s in rows],
                "sku": [net.skus[s.sku] for s in rows],
                "qty": [float(s.qty) for s in rows],
                "eta": [_day(net.start, s.arrive_day) for s in rows],
            },
            schema_overrides={"eta": pl.Date},
        ),
        "purchase_orders",
    )


def demand_frame(sim: Simulator, day: int) -> pl.DataFrame:
    """Realised demand of simulated day `day` for every site × SKU that is sold there (zeros included)."""
    net = sim.net
    sold_here = (net.history.sum(axis=0) > 0) & (~net.is_supplier)[:, None]
    n, i = np.nonzero(sold_here)
    return conform(
        pl.DataFrame(
            {
                "date": [_day(net.start, day)] * len(n),
                "site_id": [net.nodes[k] for k in n],
                "sku": [net.skus[k] for k in i],
                "qty": sim.ledger.demand[day][n, i].astype(float),
            },
            schema_overrides={"date": pl.Date},
        ),
        "demand",
    )


def land_first_day(frames: dict[str, pl.DataFrame], sim: Simulator, inbox: Path, as_of: datetime) -> list[Path]:
    """Master data and demand history (once), then the first snapshot."""
    history = frames["demand"].filter(pl.col("date") < sim.net.start)
    paths = [land_frame(frames[name], inbox, name, as_of, "csv") for name in ("sites", "items", "lanes")]
    paths.append(land_frame(history, inbox, "demand", as_of, "parquet", "history"))
    return paths + land_snapshot(sim, inbox, as_of, stale_wms=False)


def land_snapshot(sim: Simulator, inbox: Path, as_of: datetime, *, stale_wms: bool) -> list[Path]:
    """The day's snapshot; on a WMS fault no inventory (and no book stock) is delivered."""
    paths: list[Path] = []
    if not stale_wms:
        inv = inventory_frame(sim, as_of)
        paths.append(land_frame(inv, inbox, "inventory", as_of, "csv"))
        paths.append(land_frame(book_inventory_frame(inv), inbox, "book_inventory", as_of, "csv"))
    paths.append(land_stamped(in_transit_frame(sim), inbox, "in_transit", as_of))
    paths.append(land_stamped(purchase_orders_frame(sim), inbox, "purchase_orders", as_of))
    if sim.day > 0:
        paths.append(land_frame(demand_frame(sim, sim.day - 1), inbox, "demand", as_of, "csv"))
    return paths


def orders_from_csv(path: Path, net: TwinNetwork) -> list[Order]:
    """The orders of one outbox CSV file, as the simulator executes them."""
    frame = pl.read_csv(path, schema_overrides={"ship_date": pl.Date, "arrive_date": pl.Date, "qty": pl.Float64})
    return [
        Order(
            lane=net.lane(r["origin"], r["destination"], r["mode"]),
            sku=net.skus.index(r["sku"]),
            qty=float(r["qty"]),
            ship_day=(r["ship_date"] - net.start).days,
            ref=r["order_id"],
        )
        for r in frame.iter_rows(named=True)
    ]


def read_outbox_orders(outbox: Path, seen: set[str], net: TwinNetwork) -> list[Order]:
    """Orders from outbox files not read before (CSV, as the planner wrote them); marks them seen."""
    orders: list[Order] = []
    if not outbox.exists():
        return orders
    for path in sorted(outbox.glob("*.csv")):
        if path.name not in seen:
            seen.add(path.name)
            orders += orders_from_csv(path, net)
    return orders


def released_orders_by_day(run_home: Path, net: TwinNetwork) -> dict[int, list[Order]]:
    """Every order a simulated planner released, keyed by the simulated day it reached the outbox
    (the as-of of its plan), in the order the simulator read them: for replaying a run."""
    from ballast.io.warehouse import open_warehouse, query_frame
    from ballast.settings import Settings

    settings = Settings(home=run_home)
    with open_warehouse(settings.db_path, read_only=True) as con:
        plans = query_frame(con, "SELECT plan_id, as_of FROM plans WHERE mode = 'live'")
    day_of = {p: (a.date() - net.start).days for p, a in plans.iter_rows()}
    out: dict[int, list[Order]] = {}
    by_day: dict[int, list[Path]] = {}
    for path in sorted(settings.outbox_dir.glob("*.csv")):
        plan_id = path.stem.split("-a")[0]
        by_day.setdefault(day_of[plan_id], []).append(path)
    for day, files in by_day.items():
        out[day] = [o for f in files for o in orders_from_csv(f, net)]
    return out
