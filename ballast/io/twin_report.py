"""The simulation report: one self-contained HTML file (charts embedded as PNG).

KPI table per scenario and policy (mean ± sd over seeds, ratio to the bound), cost against fill
rate per policy, and stock over time at the most affected sites.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
from jinja2 import Environment, select_autoescape

from ballast.io.landing import atomic_write_bytes
from ballast.io.plan_report import png_b64
from ballast.models.twin.criterion import HEADERS, criterion_rows, criterion_table

KPI_COLUMNS = (
    ("total_cost", "total cost", "{:,.0f}"),
    ("total_cost_vs_bound", "cost / bound", "{:.3f}"),
    ("fill_rate", "fill rate", "{:.2%}"),
    ("lost_units", "lost units", "{:,.0f}"),
    ("stockout_days", "stock-out site-SKU-days", "{:,.0f}"),
    ("holding_cost", "holding", "{:,.0f}"),
    ("transport_cost", "transport", "{:,.0f}"),
    ("lane_days", "lane-days opened (fixed cost)", "{:,.0f}"),
    ("lane_fixed_cost", "fixed lane-day cost", "{:,.0f}"),
    ("transport_for_after_run", "transport of units left unsold at the end", "{:,.0f}"),
    ("cost_within_run_vs_bound", "cost without that / bound's", "{:.3f}"),
    ("purchase_cost", "purchase premium", "{:,.0f}"),
    ("shortage_cost", "shortage penalty", "{:,.0f}"),
    ("overflow_cost", "overflow storage", "{:,.0f}"),
    ("after_window_cost", "moves landing after the run (not in total)", "{:,.0f}"),
    ("overflow_volume_days", "volume-days over capacity", "{:,.0f}"),
    ("inventory_turns", "turns / yr", "{:.1f}"),
    ("transfers", "transfers", "{:,.0f}"),
    ("lateral_transfers", "laterals", "{:,.0f}"),
    ("transfer_value", "transfer value", "{:,.0f}"),
    ("ping_pongs", "ping-pongs", "{:,.0f}"),
    ("approval_share", "needing approval", "{:.1%}"),
    ("short_shipped_units", "short-shipped units", "{:,.0f}"),
    ("refused_cycles", "refused cycles", "{:,.0f}"),
    ("clock_stopped_cycles", "cycles a solver clock stopped (load-dependent)", "{:,.0f}"),
    ("node_limited_cycles", "cycles stopped at the node limit", "{:,.0f}"),
)
POLICY_ORDER = ("ballast", "no_transfers", "reactive", "bound")
COLORS = {"ballast": "#1f5fa8", "no_transfers": "#b00020", "reactive": "#e08a00", "bound": "#1b7f3b"}

TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ballast simulation {{ name }}</title>
<style>
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem;color:#1d2733;max-width:1400px}
h1{font-size:1.5rem} h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #d8dee6}
.meta{color:#5a6a7a} table{border-collapse:collapse;font-size:.82rem}
th,td{border-bottom:1px solid #e6eaef;padding:.3rem .5rem;text-align:right} th{background:#f4f6f9}
td.l,th.l{text-align:left} .charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(420px,1fr));gap:1rem}
img{max-width:100%}
</style></head><body>
<h1>Simulation {{ name }}</h1>
<p class="meta">{{ runs }} runs · scenarios {{ scenarios|join(', ') }} · seeds {{ seeds|join(', ') }}.
Every policy of a (scenario, seed) saw the same demand, lead times and capacities (common random numbers).
Costs: holding + transport (per unit and fixed per lane-day) + purchase premium over the cheapest supplier +
shortage penalty (the policy's per-unit penalty per lost unit) + overflow storage (volume above a site's storage
capacity, per volume-day). The bound is a perfect-information LP with
the same accounting. Values are mean ± sd over seeds.</p>
<p class="meta">Simulation assumptions: lots and expiry are not simulated (stock is available units);
storage capacity and lane minimum quantities are not enforced by the simulator (the planner still plans
with them); the TMS shows true arrival dates; an order the origin cannot fill is shipped short and the
rest dropped; the simulated planner approves every order awaiting approval inside the freeze window.</p>
{% if criterion %}
<h2>Is ballast better? (cost below both baselines, fill rate no lower than the better one,
steady state within 10% of the bound, at least 5 seeds)</h2>
<table><tr>{% for h in criterion.headers %}<th{% if loop.first %} class="l"{% endif %}>{{ h }}</th>{% endfor %}</tr>
{% for row in criterion.rows %}<tr>{% for c in row %}<td{% if loop.first %} class="l"{% endif %}>{{ c }}</td>{% endfor %}</tr>
{% endfor %}</table>
{% endif %}
{% for sc in tables %}
<h2>{{ sc.scenario }}</h2>
<table><tr><th class="l">policy</th>{% for h in headers %}<th>{{ h }}</th>{% endfor %}</tr>
{% for row in sc.rows %}<tr><td class="l">{{ row.policy }}</td>
{% for c in row.cells %}<td>{{ c }}</td>{% endfor %}</tr>{% endfor %}
</table>
<div class="charts">{% for c in sc.charts %}<figure>
<img alt="{{ c.title }}" src="data:image/png;base64,{{ c.png }}">
<figcaption>{{ c.title }}</figcaption></figure>{% endfor %}</div>
{% endfor %}
</body></html>
"""


def _cost_vs_fill(runs: pl.DataFrame, scenario: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=90)
    for policy in POLICY_ORDER:
        r = runs.filter(pl.col("policy") == policy)
        if r.height:
            ax.scatter(r["fill_rate"].to_list(), r["total_cost"].to_list(), label=policy, color=COLORS[policy], s=30)
    ax.set_xlabel("fill rate")
    ax.set_ylabel("total cost")
    ax.set_title(f"{scenario}: cost against fill rate (one dot per seed)", fontsize=10)
    ax.legend(fontsize=8)
    return png_b64(fig)


def _stock_chart(daily: pl.DataFrame, scenario: str, seed: int, site: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.0), dpi=90)
    d = daily.filter((pl.col("scenario") == scenario) & (pl.col("seed") == seed) & (pl.col("site_id") == site))
    for policy in POLICY_ORDER:
        p = d.filter(pl.col("policy") == policy).sort("day")
        if p.height:
            ax.step(p["day"].to_list(), p["units"].to_list(), where="post", label=policy, color=COLORS[policy])
    ax.set_xlabel("simulated day")
    ax.set_ylabel("units on hand (end of day)")
    ax.set_title(f"{scenario} · seed {seed} · {site}", fontsize=10)
    ax.legend(fontsize=8)
    return png_b64(fig)


def _fmt(fmt: str, mean: float | None, sd: float | None) -> str:
    if mean is None:
        return "—"
    text = fmt.format(mean)
    return text if not sd else f"{text} ± {fmt.format(sd)}"


def kpi_table(runs: pl.DataFrame) -> pl.DataFrame:
    """Mean and sd over seeds of every KPI, per scenario and policy."""
    cols = [c for c, _, _ in KPI_COLUMNS if c in runs.columns]
    return (
        runs.group_by("scenario", "policy")
        .agg(
            *[pl.col(c).mean().alias(c) for c in cols],
            *[pl.col(c).std().alias(f"{c}__sd") for c in cols],
            pl.len().alias("seeds"),
        )
        .sort("scenario", "policy")
    )


def _criterion(runs: pl.DataFrame) -> dict | None:
    """The criterion table's headers and rows, or None without ballast and both baselines."""
    table = criterion_table(runs)
    if table.is_empty():
        return None
    return {"headers": HEADERS, "rows": criterion_rows(table)}


def render_twin_report(name: str, runs: pl.DataFrame, daily: pl.DataFrame, path: Path, top_sites: int = 3) -> Path:
    table = kpi_table(runs)
    tables = []
    for scenario in sorted(runs["scenario"].unique().to_list()):
        rows = []
        for policy in POLICY_ORDER:
            r = table.filter((pl.col("scenario") == scenario) & (pl.col("policy") == policy))
            if not r.height:
                continue
            row = r.row(0, named=True)
            cells = [_fmt(fmt, row.get(c), row.get(f"{c}__sd")) for c, _, fmt in KPI_COLUMNS]
            rows.append({"policy": f"{policy} (n={row['seeds']})", "cells": cells})
        charts = [
            {
                "title": "cost against fill rate",
                "png": _cost_vs_fill(runs.filter(pl.col("scenario") == scenario), scenario),
            }
        ]
        d = daily.filter(pl.col("scenario") == scenario)
        if d.height:
            seed = int(d["seed"].min())
            worst = (
                d.filter(pl.col("seed") == seed)
                .group_by("site_id")
                .agg(pl.col("unmet").sum(), pl.col("units").std())
                .sort(["unmet", "units"], descending=True)
                .head(top_sites)["site_id"]
                .to_list()
            )
            charts += [
                {"title": f"stock at {site}", "png": _stock_chart(daily, scenario, seed, site)} for site in worst
            ]
        tables.append({"scenario": scenario, "rows": rows, "charts": charts})
    html = (
        Environment(autoescape=select_autoescape())
        .from_string(TEMPLATE)
        .render(
            name=name,
            runs=runs.height,
            scenarios=sorted(runs["scenario"].unique().to_list()),
            seeds=sorted(runs["seed"].unique().to_list()),
            headers=[h for _, h, _ in KPI_COLUMNS],
            tables=tables,
            criterion=_criterion(runs),
        )
    )
    atomic_write_bytes(path, html.encode())
    return path


def markdown_table(
    runs: pl.DataFrame,
    columns: tuple[str, ...] = (
        "total_cost",
        "total_cost_vs_bound",
        "fill_rate",
        "lost_units",
        "transport_cost",
        "holding_cost",
        "transfers",
        "approval_share",
    ),
) -> str:
    """The KPI table as Markdown (mean ± sd over seeds), for notes and the terminal."""
    table = kpi_table(runs)
    fmts = {c: f for c, _, f in KPI_COLUMNS}
    lines = ["| scenario | policy | seeds | " + " | ".join(columns) + " |", "|---" * (len(columns) + 3) + "|"]
    for row in table.iter_rows(named=True):
        cells = [_fmt(fmts[c], row.get(c), row.get(f"{c}__sd")) for c in columns]
        lines.append(f"| {row['scenario']} | {row['policy']} | {row['seeds']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
