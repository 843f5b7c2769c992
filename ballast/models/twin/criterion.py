"""The twin's yardstick for ballast, per scenario over seeds.

Is ballast cheaper than both baselines, does it serve at least as well as the better one, and
(steady state) is it within 10% of the perfect-information bound?

Means are over the seeds where ballast and both baselines ran (common random numbers make
each seed a paired comparison, so the per-seed win count is shown beside the means). Ballast's
ratio to the bound is taken per seed from the bound's run of that scenario and seed wherever it
ran (simulations merged from separate homes), else from the ratio recorded with the run; a
steady state with no bound to compare with does not meet the criterion.

Beside it, for information only (it decides nothing): the same ratio without the transport of units
still unsold when the run ends (`cost_within_run`, both sides), the part of a rolling planner's bill
that buys sales after the run, which the bound, knowing when the run ends, never pays. And the
bound's own open gap: the bound is the MIP's proven lower bound, and where the solve stopped at
its time limit the best perfect-information plan it found costs more (`incumbent_cost`); the mean
of incumbent / bound − 1 over the seeds says how much of ballast's ratio may be the bound's slack
rather than ballast's.
"""

from __future__ import annotations

from typing import Final

import polars as pl

from ballast.models.twin.kpis import ratios_to_bound_of_seed

BASELINES: Final = ("no_transfers", "reactive")
STEADY: Final = "steady"
BOUND_MARGIN: Final = 0.10  # steady state: within 10% of the perfect-information bound
MIN_SEEDS: Final = 5


def _bound_gaps(runs: pl.DataFrame) -> pl.DataFrame:
    """`scenario, seed, bound_gap`: the bound's best plan found / its proven bound − 1 (0 when solved
    to optimality within the MIP gap; null where the bound did not run or recorded no incumbent)."""
    if "incumbent_cost" not in runs.columns:
        schema = {"scenario": runs.schema["scenario"], "seed": runs.schema["seed"], "bound_gap": pl.Float64}
        return pl.DataFrame(schema=schema)
    return runs.filter((pl.col("policy") == "bound") & (pl.col("total_cost") > 0)).select(
        "scenario", "seed", (pl.col("incumbent_cost") / pl.col("total_cost") - 1.0).alias("bound_gap")
    )


def criterion_table(runs: pl.DataFrame) -> pl.DataFrame:
    """One row per scenario with ballast and both baselines: seeds, mean total cost of ballast and
    of the cheaper baseline, the change in %, seeds where ballast is cheaper than both, mean fill
    of ballast and of the better-serving baseline, the difference in points, ballast's mean cost /
    bound (and the bound's own open gap), whether each condition holds (`near_bound` only for
    steady state, else null) and `met`: all of them, on at least `MIN_SEEDS` seeds."""
    need = {"scenario", "seed", "policy", "total_cost", "fill_rate"}
    if runs.is_empty() or not need <= set(runs.columns):
        return pl.DataFrame()
    runs = ratios_to_bound_of_seed(runs)
    ratios = {"vs_bound": "total_cost_vs_bound", "within": "cost_within_run_vs_bound"}
    wide = (
        runs.filter(pl.col("policy").is_in(["ballast", *BASELINES]))
        .select(
            "scenario",
            "seed",
            "policy",
            "total_cost",
            "fill_rate",
            *(
                (pl.col(c) if c in runs.columns else pl.lit(None, dtype=pl.Float64)).alias(name)
                for name, c in ratios.items()
            ),
        )
        .pivot(on="policy", index=["scenario", "seed"], values=["total_cost", "fill_rate", *ratios])
    )
    cols = [f"{k}_{p}" for k in ("total_cost", "fill_rate") for p in ("ballast", *BASELINES)]
    if not set(cols) <= set(wide.columns):
        return pl.DataFrame()
    per_seed = (
        wide.drop_nulls(cols)
        .join(_bound_gaps(runs), on=["scenario", "seed"], how="left")
        .with_columns(
            (pl.col("total_cost_ballast") < pl.min_horizontal(*(f"total_cost_{b}" for b in BASELINES))).alias("win")
        )
        .rename({"within_ballast": "within_vs_bound_ballast"})
    )
    out = (
        per_seed.group_by("scenario")
        .agg(
            pl.len().alias("seeds"),
            pl.col("total_cost_ballast").mean().alias("ballast_cost"),
            *(pl.col(f"total_cost_{b}").mean().alias(f"{b}_cost") for b in BASELINES),
            pl.col("win").sum().alias("seeds_cheaper"),
            pl.col("fill_rate_ballast").mean().alias("ballast_fill"),
            *(pl.col(f"fill_rate_{b}").mean().alias(f"{b}_fill") for b in BASELINES),
            pl.col("vs_bound_ballast").mean().alias("ballast_vs_bound"),
            pl.col("within_vs_bound_ballast").mean().alias("within_run_vs_bound"),
            pl.col("bound_gap").mean().alias("bound_gap"),
        )
        .with_columns(
            pl.min_horizontal(*(f"{b}_cost" for b in BASELINES)).alias("best_baseline_cost"),
            pl.max_horizontal(*(f"{b}_fill" for b in BASELINES)).alias("best_baseline_fill"),
        )
        .with_columns(
            (pl.col("ballast_cost") / pl.col("best_baseline_cost") - 1.0).alias("cost_change"),
            (pl.col("ballast_fill") - pl.col("best_baseline_fill")).alias("fill_change"),
        )
        .with_columns(
            (pl.col("cost_change") < 0).alias("cheaper"),
            (pl.col("fill_change") >= 0).alias("fill_no_lower"),
            pl.when(pl.col("scenario") == STEADY)
            .then((pl.col("ballast_vs_bound") <= 1.0 + BOUND_MARGIN).fill_null(False))
            .alias("near_bound"),
        )
        .with_columns(
            (
                pl.col("cheaper")
                & pl.col("fill_no_lower")
                & pl.col("near_bound").fill_null(True)
                & (pl.col("seeds") >= MIN_SEEDS)
            ).alias("met")
        )
    )
    return out.select(
        "scenario",
        "seeds",
        "ballast_cost",
        "best_baseline_cost",
        "cost_change",
        "seeds_cheaper",
        "ballast_fill",
        "best_baseline_fill",
        "fill_change",
        "ballast_vs_bound",
        "within_run_vs_bound",
        "bound_gap",
        "cheaper",
        "fill_no_lower",
        "near_bound",
        "met",
    ).sort("scenario")


HEADERS: Final = (
    "scenario",
    "seeds",
    "ballast cost",
    "cheaper baseline",
    "change",
    "seeds cheaper",
    "ballast fill",
    "better baseline fill",
    "difference",
    "ballast / bound",
    "without transport for after the run",
    "bound's open gap",
    "met",
)


def criterion_rows(table: pl.DataFrame) -> list[list[str]]:
    """The criterion table's rows as text, in the order of `HEADERS`."""
    return [
        [
            r["scenario"],
            str(r["seeds"]),
            f"{r['ballast_cost']:,.0f}",
            f"{r['best_baseline_cost']:,.0f}",
            f"{r['cost_change']:+.1%}",
            f"{r['seeds_cheaper']}/{r['seeds']}",
            f"{r['ballast_fill']:.2%}",
            f"{r['best_baseline_fill']:.2%}",
            f"{100 * r['fill_change']:+.2f} pt",
            "—" if r["ballast_vs_bound"] is None else f"{r['ballast_vs_bound']:.3f}",
            "—" if r["within_run_vs_bound"] is None else f"{r['within_run_vs_bound']:.3f}",
            "—" if r["bound_gap"] is None else f"{r['bound_gap']:.1%}",
            "yes" if r["met"] else "no",
        ]
        for r in table.iter_rows(named=True)
    ]


def criterion_markdown(table: pl.DataFrame) -> str:
    """The criterion table as Markdown, for notes and the terminal."""
    lines = ["| " + " | ".join(HEADERS) + " |", "|---" * len(HEADERS) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in criterion_rows(table)]
    return "\n".join(lines)
