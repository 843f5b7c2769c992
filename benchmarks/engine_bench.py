"""Benchmark the rebalancing engine: build / handoff / solve / extract times, model size, peak memory.

Usage (from the repository root):

    .venv/bin/python benchmarks/engine_bench.py --sizes S,M,L --time-limit 60 [--persistent] [--mip] [--profile DIR]

Each size runs in its own process (peak RSS is per process). For every size it reports:

* the pipeline before the model: positions, agents (one per site), sparse inputs;
* the LP relaxation of the coordinator model — Pyomo build, handoff to HiGHS (Pyomo's
  `LinearStandardFormCompiler` → highspy `passModel`), HiGHS's own solve, loading the answer back
  and extracting the plan — and the modelling layer's time (build + handoff + extract) as a ratio of
  HiGHS's solve time;
* with ``--persistent``, the same model handed over by Pyomo's persistent `contrib.solver` HiGHS
  interface (`set_instance`), for comparison;
* the full engine run with its default options (the time-limited MIP seeded by the LP-rounded plan on
  models up to `EngineOptions.mip_max_columns`; above that the deterministic LP-rounded rung: slope
  scaling, rounding, LP repair; with ``--mip`` the MIP whatever the size), then fallback ladder,
  verification, whole units, explanations: rung, status, MIP gap, gap to the LP bound, whole-unit
  success, wall and CPU times.

The forecast is the simple one of the golden test (mean of the last 28 days), not the real forecaster.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_size(size: str, time_limit: float, persistent: bool, mip: bool = False, profile: str | None = None) -> dict:
    from ballast.models.coordinator import SolveOptions, build_model, extract_plan, solve
    from ballast.models.engine import EngineOptions, plan_network, prepare_network
    from ballast.models.network import sku_groups
    from ballast.models.policy import load_policy
    from ballast.models.sample import SIZES, generate_network
    from tests.models.test_engine_golden import simple_forecast, simple_targets

    out: dict = {"size": size}
    spec = SIZES[size]
    t = time.perf_counter()
    frames = generate_network(spec)
    out["generate_s"] = time.perf_counter() - t
    policy, _ = load_policy(ROOT / "policies" / "default.yaml")
    as_of = spec.as_of_date
    t = time.perf_counter()
    forecasts = simple_forecast(frames["demand"], as_of, policy.horizon_days)
    targets = simple_targets(forecasts, frames["sites"], frames["lanes"], policy)
    out["forecast_s"] = time.perf_counter() - t
    frames.pop("demand")
    gc.collect()
    out["sites"] = frames["sites"].height
    out["skus"] = frames["items"].height
    out["site_skus"] = frames["inventory"].select("site_id", "sku").unique().height

    prepared = prepare_network(frames, forecasts, targets, policy, as_of)
    inputs, proposals = prepared.inputs, prepared.proposals
    out.update({f"{k}_s": v for k, v in prepared.timings.items()}, proposals=proposals.height)
    out.update({("model_skus" if k == "skus" else k): v for k, v in inputs.size().items()})
    out["sku_groups"] = len(sku_groups(inputs))
    out["dense_columns_estimate"] = (
        frames["lanes"].height * out["skus"] * policy.horizon_days
        + 3 * out["site_skus"] * policy.horizon_days
    )

    # LP relaxation: the modelling layer against HiGHS's own time
    gc.collect()
    m = build_model(inputs)
    build_s = m._data.build_seconds
    lp = solve(
        m, SolveOptions(relax_integers=True, time_limit_seconds=max(time_limit, 600), allow_nonoptimal=True)
    )
    t = time.perf_counter()
    flows = extract_plan(m)
    extract_s = time.perf_counter() - t + lp.load_seconds
    modelling = build_s + lp.handoff_seconds + extract_s
    out["lp"] = {
        "build_s": build_s,
        "handoff_s": lp.handoff_seconds,
        "highs_solve_s": lp.solve_seconds,
        "extract_s": extract_s,
        "columns": lp.columns,
        "rows": lp.rows,
        "nonzeros": lp.nonzeros,
        "integers_in_mip": lp.integers,
        "status": lp.termination,
        "objective": lp.objective,
        "flows": flows.height,
        "modelling_over_highs": modelling / lp.solve_seconds if lp.solve_seconds > 0 else None,
    }
    out["rss_after_lp_mb"] = _rss_mb()
    if persistent:
        m2 = build_model(inputs)
        from pyomo.contrib.solver.solvers.highs import Highs

        opt = Highs()
        t = time.perf_counter()
        opt.set_instance(m2)
        out["persistent_set_instance_s"] = time.perf_counter() - t
        del m2, opt
    del m
    gc.collect()

    # the full engine with its default options: the MIP (seeded by the LP-rounded plan, time-limited)
    # on models up to `mip_max_columns`, else the deterministic LP-rounded rung; ladder, verification,
    # whole units, explanations
    options = EngineOptions(time_limit_seconds=time_limit)
    if mip:
        options = EngineOptions(time_limit_seconds=time_limit, mip_max_columns=None)
    profiler = None
    if profile:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.01)
        profiler.start()
    t, cpu = time.perf_counter(), time.process_time()
    result = plan_network(frames, forecasts, targets, policy, as_of, options=options)
    out["engine_total_s"] = time.perf_counter() - t
    if profiler is not None:
        profiler.stop()
        Path(profile).mkdir(parents=True, exist_ok=True)
        html = Path(profile) / f"engine_{size}.html"
        html.write_text(profiler.output_html())
        text = profiler.output_text(unicode=False, color=False, show_all=False)
        (Path(profile) / f"engine_{size}.txt").write_text(text)
        out["profile"] = str(html)
    out["engine_cpu_s"] = time.process_time() - cpu
    r = result.record
    flows = result.flows
    out["engine"] = {
        "rung": r.rung,
        "termination": r.termination,
        "mip_gap": r.mip_gap,
        "objective": r.objective,
        "lp_bound": r.lp_bound,
        "plan_cost": r.plan_cost,  # the published (whole-unit) plan, replayed
        "gap_to_lp_bound": (r.plan_cost - r.lp_bound) / abs(r.plan_cost)
        if r.plan_cost and r.lp_bound is not None
        else None,
        "whole_units": bool((flows["qty"] == flows["qty"].round(0)).all())
        and not any(a.startswith("quantities left fractional") for a in r.alerts),
        "alerts": list(r.alerts),
        "groups": r.groups,
        "build_s": r.build_seconds,
        "handoff_s": r.handoff_seconds,
        "solve_s": r.solve_seconds,
        "extract_s": r.extract_seconds,
        "verify_s": r.verify_seconds,
        "columns": r.columns,
        "rows": r.rows,
        "integers": r.integers,
        "verified": result.verification.ok,
        "orders": result.orders.height,
        "attempts": [f"{a.rung}: {a.outcome[:80]}" for a in r.attempts],
        "timings": result.timings,
    }
    out["peak_rss_mb"] = _rss_mb()
    return out


def _print(res: dict) -> None:
    lp, en = res["lp"], res["engine"]
    print(
        f"\n== {res['size']}: {res['sites']} sites x {res['skus']} SKUs ({res['site_skus']} site-SKUs with stock) =="
    )
    print(f"generate {res['generate_s']:.1f}s, simple forecast {res['forecast_s']:.1f}s")
    print(
        f"positions {res['positions_s']:.2f}s, agents {res['agents_s']:.2f}s ({res['proposals']} proposals), inputs {res['inputs_s']:.2f}s"
    )
    print(
        f"sparse model: {res['pairs']} site-SKU pairs, {res['ship_slots']} ship slots, {res['arcs']} arcs, "
        f"{res['sku_groups']} SKU groups (dense would be ~{res['dense_columns_estimate']:,} columns)"
    )
    print(
        f"LP: {lp['columns']:,} cols x {lp['rows']:,} rows, {lp['nonzeros']:,} nnz ({lp['integers_in_mip']} integers in the MIP)"
    )
    print(
        f"    build {lp['build_s']:.2f}s + handoff {lp['handoff_s']:.2f}s + extract {lp['extract_s']:.2f}s "
        f"vs HiGHS {lp['highs_solve_s']:.2f}s -> modelling/HiGHS = {lp['modelling_over_highs']:.2f}"
    )
    if "persistent_set_instance_s" in res:
        print(
            f"    persistent contrib HiGHS set_instance: {res['persistent_set_instance_s']:.2f}s (vs direct handoff {lp['handoff_s']:.2f}s)"
        )
    gap = en.get("gap_to_lp_bound")
    objective = "n/a" if en["objective"] is None else f"{en['objective']:,.0f}"
    cost = "n/a" if en.get("plan_cost") is None else f"{en['plan_cost']:,.0f}"
    bound = "n/a" if en.get("lp_bound") is None else f"{en['lp_bound']:,.0f}"
    print(
        f"engine: {res['engine_total_s']:.1f}s total ({res.get('engine_cpu_s', float('nan')):.1f}s CPU); "
        f"rung {en['rung']} ({en['termination']}), MIP gap {en['mip_gap']}, objective {objective}, "
        f"published plan {cost}, LP bound {bound}, published plan's gap to LP bound "
        f"{'n/a' if gap is None else f'{gap:.2%}'}; {en['orders']} orders, verified {en['verified']}, "
        f"whole units {en.get('whole_units')}"
    )
    print(
        f"    build {en['build_s']:.2f}s handoff {en['handoff_s']:.2f}s solve {en['solve_s']:.2f}s extract {en['extract_s']:.2f}s "
        f"verify {en['verify_s']:.2f}s; {en['columns']:,} cols, {en['integers']} integers, {en['groups']} bins"
    )
    print(f"    attempts: {en['attempts']}")
    if en.get("alerts"):
        print(f"    alerts: {en['alerts']}")
    print(f"peak RSS {res['peak_rss_mb']:,.0f} MB (after LP {res['rss_after_lp_mb']:,.0f} MB)")
    if "profile" in res:
        print(f"profile: {res['profile']} (and .txt beside it)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="S")
    ap.add_argument("--time-limit", type=float, default=60.0)
    ap.add_argument("--persistent", action="store_true")
    ap.add_argument("--mip", action="store_true", help="run the time-limited MIP whatever the model size")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--json", help="append results as JSON lines to this file")
    ap.add_argument("--profile", help="profile the engine run (pyinstrument): engine_<size>.html/.txt in this folder")
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_size(args.one, args.time_limit, args.persistent, args.mip, args.profile), default=str))
        return
    for size in args.sizes.split(","):
        cmd = [sys.executable, __file__, "--one", size, "--time-limit", str(args.time_limit)]
        if args.persistent:
            cmd.append("--persistent")
        if args.mip:
            cmd.append("--mip")
        if args.profile:
            cmd += ["--profile", str(Path(args.profile).resolve())]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        if proc.returncode != 0:
            print(f"== {size}: failed ==\n{proc.stderr[-3000:]}")
            continue
        res = json.loads(proc.stdout.strip().splitlines()[-1])
        if args.json:
            with open(args.json, "a") as fh:
                fh.write(json.dumps(res, default=str) + "\n")
        _print(res)


if __name__ == "__main__":
    main()
