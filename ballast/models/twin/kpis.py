"""KPIs of one simulated run, and their ratios to the perfect-information bound."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

import numpy as np
import polars as pl

from ballast.models.twin.network import TwinNetwork
from ballast.models.twin.sim import Ledger, Shipment

RATIO_KPIS = (
    "total_cost",
    "holding_cost",
    "transport_cost",
    "shortage_cost",
    "lost_units",
    "lane_days",
    "cost_within_run",
)
Arrival = tuple[int, int, int, float, float]  # (destination node, sku, arrive day, units, transport per unit)


def transport_for_after_run(arrivals: list[Arrival], end_stock: np.ndarray) -> tuple[float, float]:
    """(units, per-unit transport) of own-lane arrivals still in stock at the destination at the end.

    Stock is sold first in, first out, so what is left at the end is the last arrivals. Those units
    sell after the run: their transport buys sales outside the run, as a move landing after the run
    does (which is kept out of the total). The fixed lane-day cost is not apportioned; it stays in.
    """
    by_pair: dict[tuple[int, int], list[tuple[int, float, float]]] = defaultdict(list)
    for dest, sku, day, qty, unit in arrivals:
        by_pair[(dest, sku)].append((day, qty, unit))
    units = cost = 0.0
    for (dest, sku), rows in by_pair.items():
        left = max(float(end_stock[dest, sku]), 0.0)
        for _day, qty, unit in sorted(rows, key=lambda r: -r[0]):
            take = min(qty, left)
            units, cost, left = units + take, cost + take * unit, left - take
            if left <= 0:
                break
    return units, cost


def lane_days(ledger: Ledger, network: TwinNetwork) -> tuple[int, float]:
    """(own lanes with a fixed cost opened on a day inside the run, what opening them cost).

    A lane-day is billed its fixed cost once however much it carries: where transport costs more
    than the bound's, this says whether it is more lane-days or more units.
    """
    opened = {(s.lane, s.ship_day) for s in _billed_transfers(ledger) if network.lane_fixed[s.lane] > 0}
    return len(opened), float(sum(network.lane_fixed[ln] for ln, _ in opened))


def _billed_transfers(ledger: Ledger) -> list[Shipment]:
    """Transfers on the run's own lanes, shipped and landed inside the run: the ones its bill holds."""
    days = ledger.demand.shape[0]
    return [
        s for s in ledger.shipments if s.kind == "transfer" and s.lane >= 0 and 0 <= s.ship_day and s.arrive_day < days
    ]


def ping_pongs(ledger: Ledger, network: TwinNetwork, within_days: int) -> int:
    """Transfers A→B of a SKU followed by B→A of the same SKU within `within_days` days."""
    last: dict[tuple[int, int, int], list[int]] = defaultdict(list)  # (origin, dest, sku) -> ship days
    count = 0
    for s in sorted((s for s in ledger.shipments if s.kind == "transfer"), key=lambda s: s.ship_day):
        back = last.get((s.dest, s.origin, s.sku), [])
        if any(0 <= s.ship_day - d <= within_days for d in back):
            count += 1
        last[(s.origin, s.dest, s.sku)].append(s.ship_day)
    return count


def run_kpis(ledger: Ledger, network: TwinNetwork, ping_pong_days: int) -> dict[str, float]:
    """Service, cost and activity figures of one run (money in the items' currency)."""
    days = ledger.demand.shape[0]
    demand = float(ledger.demand.sum())
    unmet = float(ledger.unmet.sum())
    sold_value = float((ledger.sales.sum(axis=(0, 1)) * network.unit_cost).sum())
    stock_value = float((ledger.stock * network.unit_cost[None, None, :]).sum(axis=(1, 2)).mean())
    transfers = [s for s in ledger.shipments if s.kind == "transfer"]
    laterals = [s for s in transfers if network.kind[s.origin] == network.kind[s.dest]]
    purchases = [s for s in ledger.shipments if s.kind == "purchase"]
    opened, fixed = lane_days(ledger, network)
    arrivals = [
        (s.dest, s.sku, s.arrive_day, s.qty, float(network.lane_cost[s.lane])) for s in _billed_transfers(ledger)
    ]
    after_units, after_cost = transport_for_after_run(arrivals, ledger.stock[-1])
    return {
        "fill_rate": 1.0 - unmet / demand if demand else 1.0,
        "demand_units": demand,
        "lost_units": unmet,
        "stockout_days": float((ledger.unmet > 0).sum()),
        "holding_cost": float(ledger.holding_cost.sum()),
        "transport_cost": float(ledger.transport_cost.sum()),
        "lane_days": float(opened),
        "lane_fixed_cost": fixed,
        "units_for_after_run": after_units,
        "transport_for_after_run": after_cost,
        "cost_within_run": ledger.total_cost() - after_cost,
        "purchase_cost": float(ledger.purchase_cost.sum()),
        "shortage_cost": float(ledger.shortage_cost.sum()),
        "overflow_cost": float(ledger.overflow_cost.sum()) if ledger.overflow_cost is not None else 0.0,
        "overflow_volume_days": float(ledger.overflow.sum()) if ledger.overflow is not None else 0.0,
        "total_cost": ledger.total_cost(),
        "after_window_cost": float(ledger.after_window_cost.sum()) if ledger.after_window_cost is not None else 0.0,
        "inventory_turns": sold_value / stock_value * 365.0 / days if stock_value else 0.0,
        "transfers": float(len(transfers)),
        "transfer_value": float(sum(s.qty * network.unit_cost[s.sku] for s in transfers)),
        "lateral_transfers": float(len(laterals)),
        "purchases": float(len(purchases)),
        "ping_pongs": float(ping_pongs(ledger, network, ping_pong_days)),
        "orders": float(ledger.orders_submitted),
        "approval_share": ledger.orders_needing_approval / ledger.orders_submitted if ledger.orders_submitted else 0.0,
        "short_shipped_units": ledger.short_shipped_units,
        "refused_cycles": float(len(ledger.refused_cycles)),
    }


def solver_stops(attempts_per_plan: Iterable[Sequence[str]]) -> dict[str, float]:
    """How many of a run's cycles had a solve stopped by the clock, and how many by the node limit.

    `attempts_per_plan` holds each live plan's `solve.attempts` ("incumbent: kTimeLimit, ..."). A
    solve stopped by its time limit gives a plan that depends on how busy the machine was, so a twin
    figure with such cycles may not repeat on another run; one stopped by `solver.mip_max_nodes`
    (`kSolutionLimit`) repeats.
    """
    plans = [list(a) for a in attempts_per_plan]
    return {
        "planned_cycles": float(len(plans)),
        "clock_stopped_cycles": float(sum(any("kTimeLimit" in a for a in p) for p in plans)),
        "node_limited_cycles": float(sum(any("kSolutionLimit" in a for a in p) for p in plans)),
    }


def with_bound_ratios(kpis: dict[str, float], bound: dict[str, float] | None) -> dict[str, float]:
    """Add `<kpi>_vs_bound` = policy / bound for the cost and shortage KPIs (when the bound has them)."""
    out = dict(kpis)
    if not bound:
        return out
    for key in RATIO_KPIS:
        b = bound.get(key)
        if b is not None and abs(b) > 1e-9:
            out[f"{key}_vs_bound"] = kpis[key] / b
    if "fill_rate" in bound and bound["fill_rate"] > 0:
        out["fill_rate_vs_bound"] = kpis["fill_rate"] / bound["fill_rate"]
    return out


def ratios_to_bound_of_seed(runs: pl.DataFrame) -> pl.DataFrame:
    """`<kpi>_vs_bound` of every run from the bound's run of the same scenario and seed in `runs`
    (one row per run, a column per KPI), where that bound ran; elsewhere the ratio recorded with
    the run stays. Runs merged from separate homes have no ratio recorded."""
    if runs.is_empty() or "policy" not in runs.columns:
        return runs
    keys = [k for k in (*RATIO_KPIS, "fill_rate") if k in runs.columns]
    bound = runs.filter(pl.col("policy") == "bound").select(
        "scenario", "seed", *(pl.col(k).alias(f"{k}__bound") for k in keys)
    )
    if bound.is_empty():
        return runs
    joined = runs.join(bound, on=["scenario", "seed"], how="left")
    for k in keys:
        old = pl.col(f"{k}_vs_bound") if f"{k}_vs_bound" in runs.columns else pl.lit(None, dtype=pl.Float64)
        b = pl.col(f"{k}__bound")
        tiny = 1e-9 if k != "fill_rate" else 0.0
        fresh = pl.when((pl.col("policy") != "bound") & (b.abs() > tiny)).then(pl.col(k) / b)
        joined = joined.with_columns(pl.coalesce(fresh, old).alias(f"{k}_vs_bound"))
    return joined.drop([f"{k}__bound" for k in keys])


def stock_series(ledger: Ledger, nodes: list[int]) -> np.ndarray:
    """End-of-day units held at each of `nodes` [day, len(nodes)]."""
    return ledger.stock[:, nodes, :].sum(axis=2)


def most_affected(ledger: Ledger, top: int = 3) -> list[int]:
    """The nodes with the most unmet demand (then the largest stock swing)."""
    unmet = ledger.unmet.sum(axis=(0, 2))
    swing = np.ptp(ledger.stock.sum(axis=2), axis=0)
    order = np.lexsort((-swing, -unmet))
    return [int(n) for n in order[:top]]
