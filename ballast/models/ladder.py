"""The fallback ladder (DESIGN.md §4): MIP → best incumbent → LP rounded and repaired → greedy → empty.

Each rung produces a flow table that must pass `verify_plan` before the ladder stops; a rung that
fails (no solution, or a plan that does not verify) hands over to the next one. The record says
which rung answered, the solver status and gap, and the build / handoff / solve / extract times.

* ``mip``: the full model within the time limit, solved to the policy's MIP gap.
* ``incumbent``: the MIP stopped (time, node or solution limit) with a feasible solution; it is used,
  after a lane-day polish (`polish_lane_days`).
* ``lp_rounded``: the LP relaxation, then slope scaling of the lane-day fixed costs (a few
  warm-started LPs that gather flow onto fewer lane-days); every lane-day or order binary whose
  flow the best round uses is opened (and an order below its minimum is dropped), then the LP is
  solved again with the binaries fixed — the *repair*: it restores every constraint the rounding
  may have broken. Its gap is against the relaxation (`SolveRecord.lp_bound`). Deterministic: no
  clock decides it, so models above `mip_max_columns` take this rung instead of a time-limited MIP.

All solves of one model share one HiGHS instance (`ballast.models.coordinator`): compiled once,
re-solved from its last basis after each change of bounds or costs.
* ``greedy``: deficits in order of when they bite, each filled from its cheapest candidate slot
  that arrives in time, within every capacity and rule; no solver.
* ``empty``: no new orders, with an alert.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from typing import Literal

import polars as pl
import pyomo.environ as pyo

from ballast.models.coordinator import (
    EPS,
    SolveOptions,
    SolveResult,
    build_model,
    build_seconds,
    empty_flows,
    extract_plan,
    flows_frame,
    slope_scaling,
    solve,
)
from ballast.models.network import NetworkInputs
from ballast.models.verify import VerificationReport, verify_plan

logger = logging.getLogger(__name__)

Rung = Literal["mip", "incumbent", "lp_rounded", "greedy", "empty"]
RUNG_ORDER: tuple[Rung, ...] = ("mip", "incumbent", "lp_rounded", "greedy", "empty")


@dataclass(frozen=True, slots=True)
class LadderOptions:
    ladder: tuple[Rung, ...] = RUNG_ORDER
    time_limit_seconds: float = 60.0
    fallback_time_limit_seconds: float | None = None  # LP rung; None: the same as the MIP's
    mip_gap: float = 0.01
    threads: int = 1
    interface: Literal["direct", "persistent"] = "direct"
    highs_options: tuple[tuple[str, object], ...] = ()
    # seed the MIP: "lp_rounded" (default) solves the LP relaxation, rounds and repairs it first, so a
    # MIP that runs out of time still holds a good incumbent; "empty" seeds the do-nothing plan
    start: Literal["none", "empty", "lp_rounded"] = "lp_rounded"
    # the MIP rung only for models up to this many columns (None: always). Above it the plan comes
    # from the LP-rounded rung, which ends on its own criteria (deterministic), not on a clock
    mip_max_columns: int | None = None
    # slope-scaling rounds before the LP relaxation is rounded (each re-prices every lane-day's fixed
    # cost by the flow it carried in the round before; 0: round the plain relaxation)
    slope_scaling_rounds: int = 30
    # after a MIP stopped by its time or node limit: at most this many lane-day moves (close one, or
    # shift it a day), each a MIP with every lane-day fixed, kept when it lowers the objective (0:
    # none), in at most `polish_seconds` all told (not applied under a node limit: see below)
    polish_moves: int = 40
    polish_seconds: float = 15.0
    # a work limit on every MIP solve (HiGHS `mip_max_nodes`; None: none). It stops on a count, not
    # a clock, so the plan does not depend on machine load; the ladder then runs no clock of its
    # own either (the polish stops on its move count) and the time limits stay only as guards
    mip_max_nodes: int | None = None


@dataclass(frozen=True, slots=True)
class Attempt:
    rung: Rung
    outcome: str


@dataclass(frozen=True)
class SolveRecord:
    """How a plan (or one SKU group of it) was solved."""

    rung: Rung
    status: str
    termination: str
    objective: float | None
    mip_gap: float | None
    build_seconds: float
    handoff_seconds: float
    solve_seconds: float
    extract_seconds: float
    verify_seconds: float
    columns: int
    rows: int
    nonzeros: int
    integers: int
    verification: VerificationReport
    attempts: tuple[Attempt, ...] = ()
    alerts: tuple[str, ...] = ()
    groups: int = 1
    lp_bound: float | None = None  # the LP relaxation's objective: a lower bound on the MIP's
    plan_cost: float | None = None  # the published plan (whole units) priced by `verify.plan_cost`

    @property
    def modelling_seconds(self) -> float:
        return self.build_seconds + self.handoff_seconds + self.extract_seconds

    def as_dict(self) -> dict:
        return {
            "rung": self.rung,
            "status": self.status,
            "termination": self.termination,
            "objective": self.objective,
            "mip_gap": self.mip_gap,
            "build_seconds": round(self.build_seconds, 4),
            "handoff_seconds": round(self.handoff_seconds, 4),
            "solve_seconds": round(self.solve_seconds, 4),
            "extract_seconds": round(self.extract_seconds, 4),
            "verify_seconds": round(self.verify_seconds, 4),
            "columns": self.columns,
            "rows": self.rows,
            "nonzeros": self.nonzeros,
            "integers": self.integers,
            "groups": self.groups,
            "lp_bound": self.lp_bound,
            "plan_cost": self.plan_cost,
            "verified": self.verification.ok,
            "problems": list(self.verification.problems[:20]),
            "attempts": [f"{a.rung}: {a.outcome}" for a in self.attempts],
            "alerts": list(self.alerts),
        }


@dataclass
class _Clock:
    build: float = 0.0
    handoff: float = 0.0
    solve: float = 0.0
    extract: float = 0.0
    verify: float = 0.0
    last: SolveResult | None = None
    attempts: list[Attempt] = field(default_factory=list)
    lp_bound: float | None = None


def _opts(options: LadderOptions, *, relax: bool = False, time_limit: float | None = None) -> SolveOptions:
    return SolveOptions(
        time_limit_seconds=options.time_limit_seconds if time_limit is None else time_limit,
        mip_gap=options.mip_gap,
        threads=options.threads,
        relax_integers=relax,
        interface="direct" if relax else options.interface,
        allow_nonoptimal=True,
        highs_options=options.highs_options + _node_limit(options, relax),
        start="none" if relax else ("empty" if options.start == "empty" else "none"),
    )


def _node_limit(options: LadderOptions, relax: bool) -> tuple[tuple[str, object], ...]:
    return () if relax or options.mip_max_nodes is None else (("mip_max_nodes", int(options.mip_max_nodes)),)


def _record(rung: Rung, clock: _Clock, report: VerificationReport, alerts: tuple[str, ...] = ()) -> SolveRecord:
    r = clock.last
    objective = r.objective if r and r.has_solution and rung in ("mip", "incumbent", "lp_rounded") else None
    gap = r.mip_gap if r and rung in ("mip", "incumbent") else None
    if rung == "lp_rounded" and objective is not None and clock.lp_bound is not None:
        # the rounded plan's own solve is an LP (gap 0); what it may have lost is against the relaxation
        gap = max(objective - clock.lp_bound, 0.0) / max(abs(objective), 1e-9)
    return SolveRecord(
        rung=rung,
        status=r.status if r else "not_solved",
        termination=r.termination if r else "",
        objective=objective,
        mip_gap=gap,
        build_seconds=clock.build,
        handoff_seconds=clock.handoff,
        solve_seconds=clock.solve,
        extract_seconds=clock.extract,
        verify_seconds=clock.verify,
        columns=r.columns if r else 0,
        rows=r.rows if r else 0,
        nonzeros=r.nonzeros if r else 0,
        integers=r.integers if r else 0,
        verification=report,
        attempts=tuple(clock.attempts),
        alerts=alerts,
        lp_bound=clock.lp_bound,
    )


def _account(clock: _Clock, result: SolveResult, *, primary: bool = True) -> None:
    """Add a solve's times; a primary solve (not a repair) also sets the record's status and gap."""
    clock.handoff += result.handoff_seconds
    clock.solve += result.solve_seconds
    clock.extract += result.load_seconds
    if primary or clock.last is None:
        clock.last = result


def _extract_and_verify(
    model: pyo.ConcreteModel, inputs: NetworkInputs, clock: _Clock
) -> tuple[pl.DataFrame, VerificationReport]:
    if not inputs.exact_minimum_transfer:
        _enforce_minimum_transfer(model, inputs, clock)
    t0 = time.perf_counter()
    flows = extract_plan(model)
    if not inputs.exact_minimum_transfer and not flows.is_empty():
        # stragglers the repair could not settle are dropped; verification decides whether that holds
        keep = [
            not (inputs.arcs[a].minimum_transfer_applies and q < inputs.items[k].min_transfer_units - 1e-9)
            for a, k, q in flows.select("arc_id", "sku", "qty").iter_rows()
        ]
        flows = flows.filter(pl.Series(keep, dtype=pl.Boolean))
    t1 = time.perf_counter()
    report = verify_plan(inputs, flows)
    clock.extract += t1 - t0
    clock.verify += time.perf_counter() - t1
    return flows, report


def solve_with_ladder(inputs: NetworkInputs, options: LadderOptions) -> tuple[pl.DataFrame, SolveRecord]:
    """Walk the ladder until a rung returns a verified plan (the empty plan always ends it)."""
    clock = _Clock()
    rungs = [r for r in RUNG_ORDER if r in options.ladder]
    model = None
    mip_result: SolveResult | None = None
    if "mip" in rungs or "incumbent" in rungs:
        model = build_model(inputs)
        clock.build += build_seconds(model)
        columns = sum(len(v) for v in model.component_objects(pyo.Var))
        if options.mip_max_columns is not None and columns > options.mip_max_columns and "lp_rounded" in rungs:
            clock.attempts.append(
                Attempt("mip", f"skipped: {columns} columns above mip_max_columns {options.mip_max_columns}")
            )
            rungs = [r for r in rungs if r not in ("mip", "incumbent")]
    if "mip" in rungs or "incumbent" in rungs:
        assert model is not None
        mip_opts = _opts(options)
        if options.start == "lp_rounded" and (len(model.lane_open) or len(model.order_open)):
            seeded = _round_and_repair(model, inputs, options, clock, primary=False)
            if seeded:
                mip_opts = replace(mip_opts, start="current")
        mip_result = solve(model, mip_opts)
        _account(clock, mip_result)
        rung: Rung | None = None
        if mip_result.status == "optimal" and "mip" in rungs:
            rung = "mip"
        elif mip_result.status == "feasible" and "incumbent" in rungs:
            rung = "incumbent"
        polished = ""
        objective = mip_result.objective
        if rung == "incumbent" and options.polish_moves > 0 and len(model.lane_open) and objective is not None:
            outcome, results = polish_lane_days(model, inputs, options, objective)
            for result in results:
                _account(clock, result, primary=False)
            polished = f", {outcome.summary()}"
            if outcome.kept:
                mip_result = replace(mip_result, objective=outcome.after, mip_gap=_gap_after(mip_result, outcome.after))
                clock.last = mip_result
        if rung is not None:
            flows, report = _extract_and_verify(model, inputs, clock)
            if report.ok:
                clock.attempts.append(Attempt(rung, f"{mip_result.termination}{polished}, verified"))
                return flows, _record(rung, clock, report)
            clock.attempts.append(Attempt(rung, f"did not verify: {report.summary()}"))
            logger.warning("rung %s did not verify: %s", rung, report.summary())
        else:
            clock.attempts.append(Attempt("mip", f"{mip_result.status} ({mip_result.termination})"))
    if "lp_rounded" in rungs and (mip_result is None or mip_result.status != "infeasible"):
        if model is None:
            model = build_model(inputs)
            clock.build += build_seconds(model)
        flows, report = _lp_rounded(model, inputs, options, clock)
        if flows is not None and report is not None and report.ok:
            clock.attempts.append(Attempt("lp_rounded", "verified"))
            return flows, _record("lp_rounded", clock, report)
    elif "lp_rounded" in rungs:
        clock.attempts.append(Attempt("lp_rounded", "skipped: the MIP is infeasible, so is its relaxation"))
    if "greedy" in rungs:
        t0 = time.perf_counter()
        flows = greedy_plan(inputs)
        clock.solve += time.perf_counter() - t0
        t1 = time.perf_counter()
        report = verify_plan(inputs, flows)
        clock.verify += time.perf_counter() - t1
        if report.ok:
            clock.attempts.append(Attempt("greedy", f"{flows.height} flows, verified"))
            return flows, _record("greedy", clock, report)
        clock.attempts.append(Attempt("greedy", f"did not verify: {report.summary()}"))
    flows = empty_flows()
    report = verify_plan(inputs, flows)
    alert = "no rung produced a verified plan: publishing no new orders"
    if not report.ok:
        alert += f"; the inputs themselves break rules ({report.summary()})"
    clock.attempts.append(Attempt("empty", "no new orders"))
    logger.error(alert)
    return flows, _record("empty", clock, report, alerts=(alert,))


def _gap_after(result: SolveResult, objective: float) -> float | None:
    """The MIP's relative gap for a better plan found after it stopped, against its own dual bound."""
    if result.mip_gap is None or result.objective is None:
        return None
    bound = result.objective - result.mip_gap * abs(result.objective)
    return max(objective - bound, 0.0) / max(abs(objective), 1e-9)


def _lp_rounded(
    model: pyo.ConcreteModel, inputs: NetworkInputs, options: LadderOptions, clock: _Clock
) -> tuple[pl.DataFrame | None, VerificationReport | None]:
    if not _round_and_repair(model, inputs, options, clock):
        return None, None
    flows, report = _extract_and_verify(model, inputs, clock)
    if not report.ok:
        clock.attempts.append(Attempt("lp_rounded", f"did not verify: {report.summary()}"))
    return flows, report


def _round_and_repair(
    model: pyo.ConcreteModel,
    inputs: NetworkInputs,
    options: LadderOptions,
    clock: _Clock,
    *,
    primary: bool = True,
) -> bool:
    """LP relaxation, binaries rounded, LP re-solved with them fixed; the answer is left loaded in the model."""
    limit = (
        options.fallback_time_limit_seconds
        if options.fallback_time_limit_seconds is not None
        else options.time_limit_seconds
    )
    relaxed = solve(model, _opts(options, relax=True, time_limit=limit))
    _account(clock, relaxed, primary=primary)
    if not relaxed.has_solution:
        clock.attempts.append(Attempt("lp_rounded", f"relaxation {relaxed.status} ({relaxed.termination})"))
        return False
    if relaxed.status == "optimal":
        clock.lp_bound = relaxed.objective
    flow_on = _lane_flows(model)
    if options.slope_scaling_rounds > 0 and len(model.lane_open):
        flow_on = _slope_scaling(model, inputs, options, clock, limit)
    # round: open what carries flow; an order below its minimum is dropped (binary closed)
    for (a, t), y in model.lane_open.items():
        y.fix(1.0 if flow_on[(a, t)] > max(EPS, 0.5 * (inputs.arcs[a].min_units or 0.0)) else 0.0)
    for (a, k, t), z in model.order_open.items():
        shipped = sum((v.value or 0.0) for v in _slot_vars(model, a, k, t))
        need = inputs.items[k].min_transfer_units
        room = sum(v.ub if v.ub is not None else float("inf") for v in _slot_vars(model, a, k, t))
        z.fix(1.0 if shipped >= 0.5 * need and shipped > EPS and room >= need else 0.0)
    repaired = solve(model, _opts(options, relax=True, time_limit=limit))
    _account(clock, repaired, primary=primary)
    if not repaired.has_solution:
        # second chance: close every order binary the LP did not fill to its minimum
        for (a, k, t), z in model.order_open.items():
            shipped = sum((v.value or 0.0) for v in _slot_vars(model, a, k, t))
            if shipped < inputs.items[k].min_transfer_units:
                z.fix(0.0)
        for (a, t), y in model.lane_open.items():
            if flow_on[(a, t)] < (inputs.arcs[a].min_units or 0.0):
                y.fix(0.0)
        repaired = solve(model, _opts(options, relax=True, time_limit=limit))
        _account(clock, repaired, primary=primary)
    _unfix(model)
    if not repaired.has_solution:
        clock.attempts.append(Attempt("lp_rounded", f"repair {repaired.status} ({repaired.termination})"))
        return False
    return True


def _lane_flows(model: pyo.ConcreteModel) -> dict[tuple[str, int], float]:
    flow_on: dict[tuple[str, int], float] = defaultdict(float)
    for (a, _k, t), v in list(model.ship_units.items()) + list(model.short_dated_ship_units.items()):
        flow_on[(a, t)] += v.value or 0.0
    return flow_on


@dataclass(frozen=True, slots=True)
class PolishOutcome:
    """What `polish_lane_days` did to a time-limited incumbent."""

    tried: int
    kept: tuple[str, ...]  # the moves that lowered the objective, in order ("close a@t", "shift a@t→u")
    before: float
    after: float
    seconds: float

    def summary(self) -> str:
        if not self.kept:
            return f"polish: none of {self.tried} lane-day moves lowered the objective ({self.seconds:.1f} s)"
        return (
            f"polish: {len(self.kept)} of {self.tried} lane-day moves kept ({', '.join(self.kept)}), "
            f"objective {self.before:.1f} → {self.after:.1f} ({self.seconds:.1f} s)"
        )


def _lane_day_moves(
    open_days: list[tuple[str, int]], closed: set[tuple[str, int]], flow_on: dict[tuple[str, int], float], freeze: int
) -> list[tuple[str, dict[tuple[str, int], float]]]:
    """Close an open lane-day, or shift it to the closed day before or after on its lane.

    Lane-days inside the freeze window come first (their orders are released by this cycle, so
    waste there is paid for; a later one is re-planned by the next cycle anyway), then the rest;
    within each, the emptiest first (the likeliest to be a top-up another lane-day could carry)."""
    moves: list[tuple[str, dict[tuple[str, int], float]]] = []
    for a, t in sorted(open_days, key=lambda d: (d[1] >= freeze, flow_on.get(d, 0.0), d)):
        moves.append((f"close {a}@{t}", {(a, t): 0.0}))
        for u in (t + 1, t - 1):
            if (a, u) in closed:
                moves.append((f"shift {a}@{t}→{u}", {(a, t): 0.0, (a, u): 1.0}))
    return moves


def polish_lane_days(
    model: pyo.ConcreteModel, inputs: NetworkInputs, options: LadderOptions, incumbent: float
) -> tuple[PolishOutcome, list[SolveResult]]:
    """Local search over the lane-days of a MIP incumbent stopped by its time or node limit (loaded
    in `model`).

    A MIP stopped early may hold a lane-day it would have closed or moved with more time: two
    lane-days on one lane a day apart, or a top-up of a few units. Each move closes one open
    lane-day or shifts it a day (`_lane_day_moves`) and re-solves with every lane-day binary fixed
    (the order binaries stay free: a small MIP, about a second on the twin's network), warm started
    from the current plan. A move that lowers the objective is kept and the moves are drawn
    again from the new plan; the search stops after `options.polish_moves` moves or when no move
    helps, or when `options.polish_seconds` are spent (each move may use what is left of them; under
    `options.mip_max_nodes` only the move count and each move's node limit apply, so that the plan
    does not depend on how busy the machine is). The best plan found is left loaded in the model,
    every binary unfixed."""
    t0 = time.perf_counter()
    sub = replace(_opts(options), mip_gap=1e-4, start="current")
    variables = list(model.component_data_objects(pyo.Var, descend_into=True))
    best = incumbent
    best_values = [v.value for v in variables]
    state = {key: round(y.value or 0.0) for key, y in model.lane_open.items()}
    kept: list[str] = []
    tried: set[tuple[tuple[tuple[str, int], float], ...]] = set()
    results: list[SolveResult] = []
    improved = True
    while improved:  # the budgets are checked before each move
        improved = False
        flow_on = _lane_flows(model)
        open_days = [key for key, y in state.items() if y]
        closed = {key for key, y in state.items() if not y}
        for label, change in _lane_day_moves(open_days, closed, flow_on, inputs.freeze_days):
            signature = tuple(sorted({**state, **change}.items()))
            if signature in tried:
                continue
            if options.mip_max_nodes is None:
                left = options.polish_seconds - (time.perf_counter() - t0)
            else:  # under a work limit no clock decides the plan; the MIP's time limit stays a guard
                left = options.time_limit_seconds
            if len(results) >= options.polish_moves or left <= 0:
                break
            tried.add(signature)
            for key, y in model.lane_open.items():
                y.fix(float(change.get(key, state[key])))
            result = solve(model, replace(sub, time_limit_seconds=left))
            results.append(result)
            if result.has_solution and result.objective is not None and result.objective < best - max(
                1e-6 * abs(best), 1e-3
            ):
                best = result.objective
                best_values = [v.value for v in variables]
                state.update({key: int(val) for key, val in change.items()})
                kept.append(label)
                improved = True
                break
            for v, val in zip(variables, best_values, strict=True):  # back to the best plan
                if not v.fixed:
                    v.set_value(val, skip_validation=True)
    _unfix(model)
    for v, val in zip(variables, best_values, strict=True):
        v.set_value(val, skip_validation=True)
    return PolishOutcome(len(results), tuple(kept), incumbent, best, time.perf_counter() - t0), results


def _slope_scaling(
    model: pyo.ConcreteModel, inputs: NetworkInputs, options: LadderOptions, clock: _Clock, limit: float
) -> dict[tuple[str, int], float]:
    """Lane-day flows of the best slope-scaling round (see `ballast.models.coordinator.slope_scaling`)."""
    t0 = time.perf_counter()
    fixed = {id(y): inputs.arcs[a].fixed_cost for (a, _t), y in model.lane_open.items()}
    rounds, highs_seconds, best = slope_scaling(
        model, fixed, options.slope_scaling_rounds, _opts(options, relax=True, time_limit=limit)
    )
    clock.solve += highs_seconds
    clock.extract += time.perf_counter() - t0 - highs_seconds
    logger.info("slope scaling: %d rounds, best value %.1f", rounds, best)
    return _lane_flows(model)


def _enforce_minimum_transfer(model: pyo.ConcreteModel, inputs: NetworkInputs, clock: _Clock) -> None:
    """Orders below the policy minimum: at least half of it → raised to it, else dropped; an LP repairs the rest.

    Lane-day binaries stay as the solve left them, except that a lane-day whose kept flow falls under
    the lane minimum is closed. If raising proves infeasible, every small order is dropped instead —
    always feasible, since dropping a shipment only leaves stock where it was.
    """
    small: list[tuple[tuple[str, str, int], list, float, float]] = []
    flow: dict[tuple[str, int], float] = defaultdict(float)
    for key in set(model.ship_units) | set(model.short_dated_ship_units):
        a, k, t = key
        vs = _slot_vars(model, a, k, t)
        q = sum(v.value or 0.0 for v in vs)
        flow[(a, t)] += q
        need = inputs.items[k].min_transfer_units
        if inputs.arcs[a].minimum_transfer_applies and need > 0 and EPS < q < need - 1e-9:
            small.append((key, vs, q, need))
    if not small:
        return
    small.sort(key=lambda s: s[0])
    saved = {id(v): (v, v.lb, v.ub) for _, vs, _, _ in small for v in vs}
    for key in set(model.ship_units) | set(model.short_dated_ship_units):
        for v in _slot_vars(model, *key):
            saved.setdefault(id(v), (v, v.lb, v.ub))
    binaries = list(model.lane_open.values()) + list(model.order_open.values())
    for y in binaries:
        y.fix(round(y.value or 0.0))
    current = {
        key: sum(v.value or 0.0 for v in _slot_vars(model, *key))
        for key in set(model.ship_units) | set(model.short_dated_ship_units)
    }
    small_keys = {key for key, _, _, _ in small}
    # pass 1 raises or drops; pass 2 only drops; pass 3 also lets the other orders shrink (a site kept
    # fuller by a dropped order may need less inbound to stay within its storage)
    for raise_allowed, lock_others in ((True, True), (False, True), (False, False)):
        kept = dict(flow)
        # the repair may only adjust orders that already meet their minimum: no new small orders appear
        for key, q in current.items():
            if key in small_keys:
                continue
            vs = _slot_vars(model, *key)
            need = inputs.items[key[1]].min_transfer_units if inputs.arcs[key[0]].minimum_transfer_applies else 0.0
            if q <= EPS:
                for v in vs:
                    v.setub(0.0)
            elif need > 0 and len(vs) == 1 and lock_others:
                vs[0].setlb(min(need, q))
        for (a, _k, t), vs, q, need in small:
            if raise_allowed and q >= 0.5 * need:
                vs[0].setlb(need)
                kept[(a, t)] += need - q
            else:
                for v in vs:
                    v.setub(0.0)
                kept[(a, t)] -= q
        for (a, t), y in model.lane_open.items():
            if y.value and kept.get((a, t), 0.0) < (inputs.arcs[a].min_units or 0.0) - 1e-9:
                y.fix(0.0)
                for k in inputs.items:
                    for v in _slot_vars(model, a, k, t):
                        v.setlb(0.0)
                        v.setub(0.0)
        result = solve(model, SolveOptions(time_limit_seconds=60.0, allow_nonoptimal=True, relax_integers=True))
        _account(clock, result, primary=False)
        for v, lb, ub in saved.values():
            v.setlb(lb)
            v.setub(ub)
        if result.has_solution:
            break
        for y in model.lane_open.values():
            y.fix(round(y.value or 0.0))
    for y in binaries:
        y.unfix()


def _slot_vars(model: pyo.ConcreteModel, a: str, k: str, t: int) -> list:
    out = []
    if (a, k, t) in model.ship_units:
        out.append(model.ship_units[a, k, t])
    if (a, k, t) in model.short_dated_ship_units:
        out.append(model.short_dated_ship_units[a, k, t])
    return out


def _unfix(model: pyo.ConcreteModel) -> None:
    for v in list(model.lane_open.values()) + list(model.order_open.values()):
        v.unfix()


# ---------------------------------------------------------------------------------------------
# greedy heuristic
# ---------------------------------------------------------------------------------------------


def greedy_plan(inputs: NetworkInputs) -> pl.DataFrame:
    """Fill deficits in order of when they bite from the cheapest slot that arrives in time.

    Projections use mean demand; a slot is used only if the move costs less than the shortage it
    avoids, and every capacity, minimum and rule of `verify_plan` is respected as it goes.
    """
    H = inputs.horizon
    arcs, items, sites = inputs.arcs, inputs.items, inputs.sites
    lost = inputs.unmet_demand == "lost_sales"
    net: dict[tuple[str, str], list[float]] = {}
    for s, k in inputs.pairs:
        net[(s, k)] = [
            inputs.receipt_units.get((s, k, t), 0.0) - inputs.issue_units.get((s, k, t), 0.0) for t in range(H)
        ]

    projections: dict[tuple[str, str], list[float]] = {}  # cached until the pair's net flows change

    def projection(pair: tuple[str, str]) -> list[float]:
        """End-of-day stock under mean demand, negative where demand goes unmet (lost sales carry 0 on)."""
        cached = projections.get(pair)
        if cached is not None:
            return cached
        level = inputs.initial_units[pair]
        out = []
        for t in range(H):
            level += net[pair][t] - inputs.demand_units[pair][t]
            out.append(level)
            if lost:
                level = max(level, 0.0)
        projections[pair] = out
        return out

    def spare_from(pair: tuple[str, str], t: int) -> float:
        """What can leave on day t without making any later day's stock negative or short of safety stock."""
        level = inputs.initial_units[pair]
        low = float("inf")
        ss = inputs.safety_units[pair]
        for day in range(H):
            level += net[pair][day]
            if day >= t:
                low = min(low, level - (ss if day > t else 0.0))
            level -= min(inputs.demand_units[pair][day], max(level, 0.0))
        return max(low, 0.0)

    by_dest: dict[tuple[str, str], list[tuple[str, str, int]]] = defaultdict(list)
    for a, k, t in inputs.ship_slots:
        by_dest[(arcs[a].destination, k)].append((a, k, t))
    lane_vol: dict[tuple[str, int], float] = defaultdict(float)
    out_units: dict[tuple[str, int], float] = defaultdict(float)
    opened: set[tuple[str, int]] = set()
    pair_out: dict[tuple[str, str], float] = defaultdict(float)
    caps = dict(inputs.restrictions.outbound_caps)
    plan: dict[tuple[str, str, int], list[float]] = {}
    received: set[tuple[str, str]] = set()

    pairs_by_site: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for pair in inputs.pairs:
        pairs_by_site[pair[0]].append(pair)

    site_used: dict[str, list[float]] = {}  # projected stock volume per day, kept up to date by `move`

    def used_volume(site: str) -> list[float]:
        used = site_used.get(site)
        if used is None:
            used = [0.0] * H
            for pair in pairs_by_site[site]:
                v = items[pair[1]].unit_volume
                for t, level in enumerate(projection(pair)):
                    used[t] += max(level, 0.0) * v
            site_used[site] = used
        return used

    def move(pair: tuple[str, str], day: int, qty: float) -> None:
        """Change a pair's net flow on `day`; refresh its projection and its site's used volume."""
        before = projection(pair)
        net[pair][day] += qty
        projections.pop(pair, None)
        used = site_used.get(pair[0])
        if used is not None:
            v = items[pair[1]].unit_volume
            for t, level in enumerate(projection(pair)):
                used[t] += (max(level, 0.0) - max(before[t], 0.0)) * v

    def storage_ok(site: str, sku: str, arrive: int, qty: float) -> bool:
        """Whether `qty` more units arriving on `arrive` fit the site's storage room every day after."""
        if (site, arrive) not in inputs.storage_room:
            return True
        vol = items[sku].unit_volume * qty
        used = used_volume(site)
        return all(used[t] + vol <= inputs.storage_room[(site, t)] + 1e-6 for t in range(arrive, H))

    deficits = []
    for pair in inputs.pairs:
        proj = projection(pair)
        ss = inputs.safety_units[pair]
        bite = next((t for t in range(H) if proj[t] < ss - 1e-9), None)
        if bite is not None:
            deficits.append((bite, -items[pair[1]].shortage_penalty, pair))
    for _bite, _p, pair in sorted(deficits):
        dest, k = pair
        for a, _k, t in sorted(by_dest.get(pair, ()), key=lambda s: (arcs[s[0]].cost_per_unit, -s[2])):
            arc = arcs[a]
            proj = projection(pair)
            arrive = t + arc.lead_days
            ss = inputs.safety_units[pair]
            if lost:
                # each day's shortfall from the arrival on is lost separately; then top up to safety stock
                need = sum(max(-proj[d], 0.0) for d in range(arrive, H)) + max(ss - max(proj[H - 1], 0.0), 0.0)
            else:
                need = max((ss - proj[d] for d in range(arrive, H)), default=0.0)
            if need <= EPS:
                break
            origin = (arc.origin, k)
            if sites[arc.origin].kind == "supplier":
                avail = inputs.ship_upper.get((a, k), need)
            else:
                if origin in received:
                    continue  # no ping-pong inside the plan
                avail = spare_from(origin, t)
            qty = min(need, avail, inputs.ship_upper.get((a, k), need))
            if origin in caps:
                qty = min(qty, caps[origin] - pair_out[origin])
            room = inputs.lane_room.get((a, t))
            if room is not None:
                qty = min(qty, (room - lane_vol[(a, t)]) / items[k].unit_volume)
            oroom = inputs.outbound_room.get((arc.origin, t))
            if oroom is not None:
                qty = min(qty, oroom - out_units[(arc.origin, t)])
            if arc.minimum_transfer_applies and qty < items[k].min_transfer_units:
                continue
            if arc.min_units and (a, t) not in opened and qty < arc.min_units:
                continue
            fixed = arc.fixed_cost if arc.needs_binary and (a, t) not in opened else 0.0
            if qty <= EPS or arc.cost_per_unit * qty + fixed >= items[k].shortage_penalty * qty:
                continue
            if not storage_ok(dest, k, arrive, qty):
                continue
            plan.setdefault((a, k, t), [0.0, 0.0])[0] += qty
            lane_vol[(a, t)] += qty * items[k].unit_volume
            out_units[(arc.origin, t)] += qty
            pair_out[origin] += qty
            if arc.needs_binary:
                opened.add((a, t))
            if sites[arc.origin].kind != "supplier":
                move(origin, t, -qty)
            move(pair, arrive, qty)
            received.add(pair)
    return flows_frame(inputs, plan) if plan else empty_flows()


def combine_records(records: list[SolveRecord]) -> SolveRecord:
    """One record for a plan solved as several SKU groups: the worst rung, summed times and sizes."""
    if not records:
        return SolveRecord(
            rung="mip",
            status="optimal",
            termination="kModelEmpty",
            objective=0.0,
            mip_gap=0.0,
            build_seconds=0.0,
            handoff_seconds=0.0,
            solve_seconds=0.0,
            extract_seconds=0.0,
            verify_seconds=0.0,
            columns=0,
            rows=0,
            nonzeros=0,
            integers=0,
            verification=VerificationReport(True, (), 0),
            groups=0,
        )
    worst = max(records, key=lambda r: RUNG_ORDER.index(r.rung))
    objs = [r.objective for r in records]
    gaps = [r.mip_gap for r in records if r.mip_gap is not None]
    problems = tuple(p for r in records for p in r.verification.problems)
    bounds = [r.lp_bound for r in records]
    return replace(
        worst,
        lp_bound=sum(b for b in bounds if b is not None) if all(b is not None for b in bounds) else None,
        objective=sum(objs) if all(o is not None for o in objs) else None,
        mip_gap=max(gaps) if gaps else None,
        build_seconds=sum(r.build_seconds for r in records),
        handoff_seconds=sum(r.handoff_seconds for r in records),
        solve_seconds=sum(r.solve_seconds for r in records),
        extract_seconds=sum(r.extract_seconds for r in records),
        verify_seconds=sum(r.verify_seconds for r in records),
        columns=sum(r.columns for r in records),
        rows=sum(r.rows for r in records),
        nonzeros=sum(r.nonzeros for r in records),
        integers=sum(r.integers for r in records),
        verification=VerificationReport(not problems, problems, sum(r.verification.checks for r in records)),
        attempts=tuple(a for r in records for a in r.attempts),
        alerts=tuple(a for r in records for a in r.alerts),
        groups=len(records),
    )
