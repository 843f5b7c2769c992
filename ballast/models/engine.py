"""The rebalancing engine's one entry point: `plan_network(...) -> EngineResult`.

positions → hub agents (one per own site) → proposals → sparse `NetworkInputs` → independent
SKU groups, each solved down the fallback ladder and verified → negotiation rounds → explained
orders. The planning cycle calls this; Prefect tasks (`ballast.tasks.engine`) pass their own
mappers so agents and SKU groups spread over a task runner.
"""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import date
from graphlib import CycleError, TopologicalSorter
from typing import Literal

import polars as pl

from ballast.models.agents import (
    AgentReport,
    SiteSlice,
    match_proposals,
    run_agent,
    site_slices,
    statements_frame,
)
from ballast.models.contract import EXTRACTS
from ballast.models.coordinator import FLOW_SCHEMA, flows_frame
from ballast.models.explain import build_orders
from ballast.models.ladder import LadderOptions, SolveRecord, combine_records, solve_with_ladder
from ballast.models.negotiation import LocalRules, Rejection, drop_rejected, review_all
from ballast.models.network import NetworkInputs, build_inputs, sku_groups
from ballast.models.policy import Policy
from ballast.models.positions import Positions, build_positions, empty_released_orders
from ballast.models.verify import VerificationReport, plan_cost, verify_plan

logger = logging.getLogger(__name__)

AgentMapper = Callable[[Sequence[SiteSlice]], list[AgentReport]]
GroupSolver = Callable[[Sequence[NetworkInputs], LadderOptions], list[tuple[pl.DataFrame, SolveRecord]]]


@dataclass(frozen=True, slots=True)
class EngineOptions:
    """Knobs of the run, not of the policy (those stay in the policy file)."""

    interface: Literal["direct", "persistent"] = "direct"
    workers: int = 2  # SKU-group bins solved at once (HiGHS releases the GIL while it solves)
    max_bin_slots: int = 250_000  # ship slots per model before another bin is started
    decompose: bool = True
    time_limit_seconds: float | None = None  # None: policy.solver.time_limit_seconds
    fallback_time_limit_seconds: float | None = None
    highs_options: tuple[tuple[str, object], ...] = ()
    ladder: tuple[str, ...] | None = None  # None: policy.fallback.ladder
    # models above this many columns skip the MIP (time-limited, so not repeatable unless the policy
    # sets `solver.mip_max_nodes`) and take the deterministic LP-rounded rung: slope scaling,
    # rounding, LP repair. None: always try the MIP.
    mip_max_columns: int | None = 20_000
    slope_scaling_rounds: int = 30
    # lane-day moves tried on a MIP incumbent stopped by its time limit (`ladder.polish_lane_days`)
    polish_moves: int = 40


@dataclass(frozen=True)
class NegotiationRound:
    round: int
    rejections: tuple[Rejection, ...]
    groups_resolved: int


@dataclass(frozen=True)
class EngineResult:
    orders: pl.DataFrame
    proposals: pl.DataFrame
    statements: pl.DataFrame
    flows: pl.DataFrame
    record: SolveRecord
    group_records: tuple[SolveRecord, ...]
    verification: VerificationReport
    inputs: NetworkInputs
    positions: Positions
    rounds: tuple[NegotiationRound, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def publishable(self) -> bool:
        """Verified plans only; the empty plan is publishable as 'no new orders' with its alert."""
        return self.verification.ok or self.record.rung == "empty"


def contract_frames(**rows: list[dict]) -> dict[str, pl.DataFrame]:
    """Typed frames with exactly the contract's columns from lists of row dicts (nullable columns may be left out)."""
    types = {
        "str": pl.String,
        "int": pl.Int64,
        "float": pl.Float64,
        "date": pl.Date,
        "timestamp": pl.Datetime("us", "UTC"),
    }
    out = {}
    for name, extract in EXTRACTS.items():
        if name not in rows and extract.optional:
            continue
        schema = {c.name: types[c.kind.value] for c in extract.columns}
        data = [{c: r.get(c) for c in schema} for r in rows.get(name, [])]
        out[name] = pl.DataFrame(data, schema=schema, orient="row") if data else pl.DataFrame(schema=schema)
    return out


def serial_agents(slices: Sequence[SiteSlice]) -> list[AgentReport]:
    return [run_agent(s) for s in slices]


def threaded_groups(workers: int) -> GroupSolver:
    def run(
        groups: Sequence[NetworkInputs], options: LadderOptions
    ) -> list[tuple[pl.DataFrame, SolveRecord]]:
        if workers <= 1 or len(groups) <= 1:
            return [solve_with_ladder(g, options) for g in groups]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(lambda g: solve_with_ladder(g, options), groups))

    return run


def ladder_options(policy: Policy, options: EngineOptions, workers_sharing: int = 1) -> LadderOptions:
    return LadderOptions(
        ladder=tuple(options.ladder or policy.fallback.ladder),  # type: ignore[arg-type]
        time_limit_seconds=options.time_limit_seconds
        if options.time_limit_seconds is not None
        else policy.solver.time_limit_seconds,
        fallback_time_limit_seconds=options.fallback_time_limit_seconds,
        mip_gap=policy.solver.mip_gap,
        threads=max(1, policy.solver.threads // max(workers_sharing, 1)),
        interface=options.interface,
        highs_options=options.highs_options,
        mip_max_columns=options.mip_max_columns,
        slope_scaling_rounds=options.slope_scaling_rounds,
        polish_moves=options.polish_moves,
        mip_max_nodes=policy.solver.mip_max_nodes,
    )


def bins(inputs: NetworkInputs, options: EngineOptions) -> list[NetworkInputs]:
    """SKU groups packed into a few block-diagonal models (fewer handoffs, still parallel)."""
    if not options.decompose:
        return [inputs]
    groups = sku_groups(inputs)
    if len(groups) <= 1:
        return [inputs]
    weight: dict[str, int] = {}
    for _a, k, _t in inputs.ship_slots:
        weight[k] = weight.get(k, 0) + 1
    sized = sorted(
        ((sum(weight.get(k, 0) for k in g) + len(g), g) for g in groups), key=lambda x: (-x[0], min(x[1]))
    )
    total = sum(w for w, _ in sized)
    n = max(options.workers, -(-total // max(options.max_bin_slots, 1)))
    n = min(n, len(sized))
    loads = [0] * n
    members: list[set[str]] = [set() for _ in range(n)]
    for w, g in sized:  # largest first into the lightest bin: deterministic and balanced
        i = min(range(n), key=lambda j: (loads[j], j))
        loads[i] += w
        members[i] |= g
    return [inputs.subset(frozenset(m)) for m in members if m]


def _solve_bins(
    parts: list[NetworkInputs], solver: GroupSolver, lopts: LadderOptions
) -> tuple[list[pl.DataFrame], list[SolveRecord]]:
    answers = solver(parts, lopts)
    return [f for f, _ in answers], [r for _, r in answers]


@dataclass(frozen=True)
class Prepared:
    """What the coordinator solves, and what led to it: positions, agent statements, proposals."""

    positions: Positions
    statements: pl.DataFrame
    proposals: pl.DataFrame
    inputs: NetworkInputs
    timings: dict[str, float]


def prepare_network(
    frames: dict[str, pl.DataFrame],
    forecasts: pl.DataFrame,
    targets: pl.DataFrame,
    policy: Policy,
    as_of: date,
    *,
    released_orders: pl.DataFrame | None = None,
    previous_orders: pl.DataFrame | None = None,
    map_agents: AgentMapper | None = None,
) -> Prepared:
    """Positions → hub agents → proposals → the coordinator's frozen inputs (timed)."""
    t0 = time.perf_counter()
    released = released_orders if released_orders is not None else empty_released_orders()
    positions = build_positions(
        frames["inventory"],
        frames["in_transit"],
        frames["purchase_orders"],
        as_of,
        released_orders=released,
        forecasts=forecasts,
    )
    t1 = time.perf_counter()
    slices = site_slices(
        frames["sites"],
        frames["lanes"],
        positions.positions,
        positions.receipts,
        positions.issues,
        forecasts,
        targets,
        policy,
        as_of,
    )
    reports = (map_agents or serial_agents)(slices)
    statements = statements_frame(reports)
    proposals = match_proposals(reports, frames["sites"])
    t2 = time.perf_counter()
    inputs = build_inputs(
        sites=frames["sites"],
        items=frames["items"],
        lanes=frames["lanes"],
        positions=positions,
        forecasts=forecasts,
        targets=targets,
        statements=statements,
        proposals=proposals,
        policy=policy,
        as_of=as_of,
        released_orders=released,
        in_transit=frames["in_transit"],
        previous_orders=previous_orders,
    )
    t3 = time.perf_counter()
    return Prepared(
        positions, statements, proposals, inputs,
        {"positions": t1 - t0, "agents": t2 - t1, "inputs": t3 - t2},
    )


def plan_network(
    frames: dict[str, pl.DataFrame],
    forecasts: pl.DataFrame,
    targets: pl.DataFrame,
    policy: Policy,
    as_of: date,
    *,
    released_orders: pl.DataFrame | None = None,
    previous_orders: pl.DataFrame | None = None,
    local_rules: dict[str, LocalRules] | None = None,
    options: EngineOptions = EngineOptions(),
    map_agents: AgentMapper | None = None,
    solve_groups: GroupSolver | None = None,
) -> EngineResult:
    """Plan transfers and purchases for the network at `as_of` (see module docstring)."""
    t0 = time.perf_counter()
    prepared = prepare_network(
        frames, forecasts, targets, policy, as_of, released_orders=released_orders,
        previous_orders=previous_orders, map_agents=map_agents,
    )
    positions, statements, proposals, inputs = (
        prepared.positions, prepared.statements, prepared.proposals, prepared.inputs
    )
    timings: dict[str, float] = dict(prepared.timings)
    t3 = time.perf_counter()
    parts = bins(inputs, options)
    lopts = ladder_options(policy, options, workers_sharing=min(options.workers, len(parts)))
    solver = solve_groups or threaded_groups(options.workers)
    flows_by_part, records = _solve_bins(parts, solver, lopts)
    t4 = time.perf_counter()

    # negotiation: agents with local rules review; refusals become restrictions; touched bins re-solve
    rules = local_rules or {}
    settled: dict[tuple[str, str, int], tuple[float, int]] = {}

    def note(round_no: int) -> None:
        for f in flows_by_part:
            for a, k, t, q in f.select("arc_id", "sku", "ship_day", "qty").iter_rows():
                prev = settled.get((a, k, t))
                if prev is None or abs(prev[0] - q) > 1e-6:
                    settled[(a, k, t)] = (q, round_no)

    note(0)
    rounds: list[NegotiationRound] = []
    leftover: list[Rejection] = []
    for round_no in range(1, policy.negotiation_max_rounds + 2):
        if not rules:
            break
        flows_now = _concat(flows_by_part)
        rejections, restrictions = review_all(rules, flows_now, inputs)
        if not rejections:
            break
        if round_no > policy.negotiation_max_rounds:
            leftover = rejections
            rounds.append(NegotiationRound(round_no, tuple(rejections), 0))
            break
        inputs = inputs.restrict(restrictions)
        touched_skus = {r.sku for r in rejections}
        redo = [i for i, p in enumerate(parts) if touched_skus & set(p.items)]
        for i in redo:
            parts[i] = parts[i].restrict(restrictions)
        new_flows, new_records = _solve_bins([parts[i] for i in redo], solver, lopts)
        for i, f, r in zip(redo, new_flows, new_records, strict=True):
            flows_by_part[i], records[i] = f, r
        rounds.append(NegotiationRound(round_no, tuple(rejections), len(redo)))
        note(round_no)
        logger.info(
            "negotiation round %d: %d rejections, %d groups re-solved", round_no, len(rejections), len(redo)
        )
    t5 = time.perf_counter()

    flows = _concat(flows_by_part)
    alerts: tuple[str, ...] = ()
    if leftover:
        flows = drop_rejected(flows, leftover)
        alerts = (
            f"negotiation did not settle in {policy.negotiation_max_rounds} rounds: {len(leftover)} flows dropped",
        )
    verification = verify_plan(inputs, flows)
    if verification.ok:
        flows, verification, unit_note = whole_units(inputs, flows, verification)
        if unit_note:
            alerts = (*alerts, unit_note)
    record = combine_records(records)
    if alerts:
        record = replace(record, alerts=record.alerts + alerts)
    if verification.ok:
        record = replace(record, plan_cost=plan_cost(inputs, flows))
    orders = build_orders(
        inputs, flows, statements, settled_round={key: rnd for key, (_q, rnd) in settled.items()}
    )
    t6 = time.perf_counter()
    timings.update(
        solve=t4 - t3,
        negotiation=t5 - t4,
        explain=t6 - t5,
        total=t6 - t0,
    )
    return EngineResult(
        orders=orders,
        proposals=proposals,
        statements=statements,
        flows=flows,
        record=record,
        group_records=tuple(records),
        verification=verification,
        inputs=inputs,
        positions=positions,
        rounds=tuple(rounds),
        timings=timings,
    )


def whole_units(
    inputs: NetworkInputs, flows: pl.DataFrame, verified: VerificationReport
) -> tuple[pl.DataFrame, VerificationReport, str | None]:
    """Orders in whole units, as warehouses ship them. Tried in turn, the first that verifies wins:
    rounded to the nearest unit; the echelon-ordered repair of the nearest and then of the rounded-down
    plan (`echelon_round`: arrivals rounded, departures shrunk wherever a site would send stock it does
    not have); rounded down with the lane-days that then fall under their lane's minimum left out.
    Moves under one unit vanish. If none verifies, the fractional plan stands and the plan says so."""
    if flows.is_empty():
        return flows, verified, None
    problems: tuple[str, ...] = ()
    attempts = ("round", "repair_round", "repair_floor", "floor_within_lane_minimums")
    for rounding in attempts:
        if rounding.startswith("repair_"):
            candidate = echelon_round(inputs, flows, "floor" if rounding == "repair_floor" else "round")
        else:
            whole = (lambda c: pl.col(c).round(0)) if rounding == "round" else (lambda c: pl.col(c).floor())
            candidate = (
                flows.with_columns(whole("qty").alias("qty"), whole("short_dated_qty").alias("short_dated_qty"))
                .filter(pl.col("qty") >= 1.0)
                .with_columns(pl.min_horizontal("short_dated_qty", "qty").alias("short_dated_qty"))
            )
            if rounding == "floor_within_lane_minimums":
                candidate = _drop_lane_days_under_minimum(inputs, candidate)
        report = verify_plan(inputs, candidate)
        if report.ok:
            if rounding != "round":
                logger.info("whole units by %s", rounding)
            return candidate, report, None
        problems = tuple(report.problems[:3])
    return flows, verified, (
        "quantities left fractional: no whole-unit rounding of the plan passed verification ("
        + "; ".join(problems) + ")"
    )


def echelon_round(inputs: NetworkInputs, flows: pl.DataFrame, rounding: Literal["round", "floor"]) -> pl.DataFrame:
    """Whole units in the order goods move: the sites of each SKU in topological order of its flows
    (plants, then DCs, then hubs). Every shipment is first rounded (`rounding`, never above its slot's
    bound; short-dated units, which leave a pool and not stock, are rounded down), and a lane-day that
    this took under its lane minimum gets back to it (rows rounded down go up one unit), and one it took
    over its lane or outbound capacity comes back under it (rows rounded up go down one). A site's
    arrivals are final once every site upstream of it is done; wherever its projected stock would go
    negative its departures shrink — the latest before the shortfall first, and on one day those that
    stay above their minimum transfer and keep their lane-day above the lane minimum first — and an
    order under the minimum transfer goes. Lane-days left under their lane's minimum are dropped, and
    the passes repeat until nothing changes (after the first rounding quantities only go down)."""
    arcs, sites = inputs.arcs, inputs.sites
    keys: list[tuple[str, str, int]] = []
    wanted: list[float] = []
    regular: list[int] = []
    dated: list[int] = []
    for a, k, t, q, sd in flows.select("arc_id", "sku", "ship_day", "qty", "short_dated_qty").iter_rows():
        r = max(q - sd, 0.0)
        ri = math.floor(r + 1e-9) if rounding == "floor" else math.floor(r + 0.5)
        up = inputs.ship_upper.get((a, k))
        if up is not None and ri > up + 1e-9:
            ri = math.floor(up + 1e-9)
        keys.append((a, k, t))
        wanted.append(r)
        regular.append(max(ri, 0))
        dated.append(max(math.floor(sd + 1e-9), 0))
    by_sku: dict[str, list[int]] = defaultdict(list)
    for i, (_a, k, _t) in enumerate(keys):
        by_sku[k].append(i)

    def minimum(i: int) -> float:
        a, k, _t = keys[i]
        return inputs.items[k].min_transfer_units if arcs[a].minimum_transfer_applies else 0.0

    # a lane-day the fractional plan filled to its lane minimum keeps it: rounding down may take it
    # under, so the rows rounded down go up by one (largest fraction first) until it is met again
    lane_total: dict[tuple[str, int], float] = defaultdict(float)
    lane_rows: dict[tuple[str, int], list[int]] = defaultdict(list)
    for i, (a, _k, t) in enumerate(keys):
        lane_total[(a, t)] += regular[i] + dated[i]
        lane_rows[(a, t)].append(i)
    fraction = [r - ri for r, ri in zip(wanted, regular, strict=True)]
    for (a, t), rows in lane_rows.items():
        lane_min = arcs[a].min_units or 0.0
        for i in sorted(rows, key=lambda i: (-fraction[i], keys[i][1])):
            if lane_total[(a, t)] >= lane_min - 1e-9:
                break
            up = inputs.ship_upper.get((a, keys[i][1]))
            if fraction[i] > 1e-9 and (up is None or regular[i] + 1 <= up + 1e-9):
                regular[i] += 1
                lane_total[(a, t)] += 1
    fraction = [r - ri for r, ri in zip(wanted, regular, strict=True)]

    # and a lane-day or a site's day that rounding up took over its capacity comes back under it: the
    # rows rounded up go down by one (most rounded up first)
    def trim(rows: list[int], weight: Callable[[int], float], room: float) -> None:
        load = sum((regular[i] + dated[i]) * weight(i) for i in rows)
        for i in sorted(rows, key=lambda i: (fraction[i], keys[i])):
            if load <= room + 1e-6 * max(1.0, room) or fraction[i] >= -1e-9:
                break
            regular[i] -= 1
            fraction[i] += 1
            load -= weight(i)

    for (a, t), rows in lane_rows.items():
        if (a, t) in inputs.lane_room:
            trim(rows, lambda i: inputs.items[keys[i][1]].unit_volume, inputs.lane_room[(a, t)])
    site_rows: dict[tuple[str, int], list[int]] = defaultdict(list)
    for i, (a, _k, t) in enumerate(keys):
        site_rows[(arcs[a].origin, t)].append(i)
    for (site, t), rows in site_rows.items():
        if (site, t) in inputs.outbound_room:
            trim(rows, lambda _i: 1.0, inputs.outbound_room[(site, t)])
    lane_total.clear()
    for i, (a, _k, t) in enumerate(keys):
        lane_total[(a, t)] += regular[i] + dated[i]

    def site_order(rows: list[int]) -> list[str]:
        graph: dict[str, set[str]] = defaultdict(set)
        for i in rows:
            arc = arcs[keys[i][0]]
            graph[arc.destination].add(arc.origin)
            graph.setdefault(arc.origin, set())
        try:
            return list(TopologicalSorter({n: sorted(graph[n]) for n in sorted(graph)}).static_order())
        except CycleError:  # not expected (no ping-pong inside a plan); the passes still converge
            return sorted(graph, key=lambda n: (sites[n].echelon, n))

    H = inputs.horizon
    for _pass in range(50):
        changed = False
        for k in sorted(by_sku):
            rows = by_sku[k]
            leaving: dict[str, list[int]] = defaultdict(list)
            arriving: dict[str, list[int]] = defaultdict(list)
            for i in rows:
                arc = arcs[keys[i][0]]
                leaving[arc.origin].append(i)
                arriving[arc.destination].append(i)
            for s in site_order(rows):
                if sites[s].kind == "supplier" or not leaving.get(s):
                    continue
                inflow = [inputs.receipt_units.get((s, k, t), 0.0) for t in range(H)]
                for i in arriving.get(s, ()):
                    inflow[keys[i][2] + arcs[keys[i][0]].lead_days] += regular[i] + dated[i]
                outflow = [inputs.issue_units.get((s, k, t), 0.0) for t in range(H)]
                for i in leaving[s]:
                    outflow[keys[i][2]] += regular[i]
                level = inputs.initial_units.get((s, k), 0.0)
                for t in range(H):
                    level += inflow[t] - outflow[t]
                    if level >= -1e-9:
                        continue
                    need = math.ceil(-level - 1e-9)
                    # shrink the latest departures on or before day t first (the least urgent), and on
                    # one day those that stay above their minimum transfer first
                    def order(i: int, need: int = need) -> tuple:
                        cut = min(need, regular[i])
                        a, _k, day = keys[i]
                        drops = regular[i] - cut + dated[i] < minimum(i) or (
                            lane_total[(a, day)] - cut < (arcs[a].min_units or 0.0) - 1e-9
                        )
                        return (-day, drops, a)

                    for i in sorted((i for i in leaving[s] if keys[i][2] <= t and regular[i] > 0), key=order):
                        cut = min(need, regular[i])
                        if regular[i] - cut + dated[i] < minimum(i):
                            cut = regular[i]  # under the minimum transfer: the order goes
                        regular[i] -= cut
                        lane_total[(keys[i][0], keys[i][2])] -= cut
                        outflow[keys[i][2]] -= cut
                        level += cut
                        need -= cut
                        changed = True
                        if need <= 0:
                            break
        # lane-days under their lane's minimum, and orders under the minimum transfer, go
        lane_units: dict[tuple[str, int], float] = defaultdict(float)
        for i, (a, _k, t) in enumerate(keys):
            lane_units[(a, t)] += regular[i] + dated[i]
        for i, (a, _k, t) in enumerate(keys):
            q = regular[i] + dated[i]
            if q <= 0:
                continue
            lane_min = arcs[a].min_units or 0.0
            if q < minimum(i) - 1e-9 or lane_units[(a, t)] < lane_min - 1e-9:
                regular[i] = dated[i] = 0
                changed = True
        lane_total.clear()
        for i, (a, _k, t) in enumerate(keys):
            lane_total[(a, t)] += regular[i] + dated[i]
        if not changed:
            break
    merged = {
        keys[i]: [float(regular[i]), float(dated[i])] for i in range(len(keys)) if regular[i] + dated[i] >= 1
    }
    return flows_frame(inputs, merged) if merged else flows.clear()


def _drop_lane_days_under_minimum(inputs: NetworkInputs, flows: pl.DataFrame) -> pl.DataFrame:
    minimums = pl.DataFrame(
        {"arc_id": list(inputs.arcs), "_min": [a.min_units or 0.0 for a in inputs.arcs.values()]},
        schema={"arc_id": pl.String, "_min": pl.Float64},
    )
    short = (
        flows.group_by("arc_id", "ship_day")
        .agg(pl.col("qty").sum().alias("_total"))
        .join(minimums, on="arc_id", how="left")
        .filter(pl.col("_total") < pl.col("_min").fill_null(0.0))
        .select("arc_id", "ship_day")
    )
    return flows.join(short, on=["arc_id", "ship_day"], how="anti")


def _concat(frames: list[pl.DataFrame]) -> pl.DataFrame:
    non_empty = [f for f in frames if not f.is_empty()]
    if not non_empty:
        return pl.DataFrame(schema=FLOW_SCHEMA)
    return pl.concat(non_empty).sort("sku", "arc_id", "ship_day")
