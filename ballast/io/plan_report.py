"""The planner's report: one self-contained HTML file per plan (charts embedded as PNG)."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import polars as pl
from jinja2 import Environment, select_autoescape

TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ballast plan {{ plan.plan_id }}</title>
<style>
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem;color:#1d2733;max-width:1300px}
h1{font-size:1.5rem;margin-bottom:.2rem} h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #d8dee6}
.meta{color:#5a6a7a} table{border-collapse:collapse;width:100%;font-size:.85rem}
th,td{border-bottom:1px solid #e6eaef;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f4f6f9} td.num{text-align:right;font-variant-numeric:tabular-nums}
.kpis{display:flex;flex-wrap:wrap;gap:.8rem} .kpi{background:#f4f6f9;border-radius:6px;padding:.6rem .9rem;min-width:9rem}
.kpi b{display:block;font-size:1.2rem} .needs_approval{color:#a15c00;font-weight:600} .rejected{color:#b00020}
.approved,.auto_approved{color:#1b7f3b} .alert{background:#fff4e5;border-left:4px solid #f0a030;padding:.6rem 1rem}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(400px,1fr));gap:1rem} img{max-width:100%}
</style></head><body>
<h1>Transfer plan {{ plan.plan_id }}</h1>
<div class="meta">as of {{ plan.as_of }} · mode {{ plan.mode }} · policy {{ plan.policy_version }} ·
solved by rung <b>{{ solve.rung }}</b> ({{ solve.status }}{% if solve.mip_gap is not none %}, gap {{ "%.2f%%"|format(100*solve.mip_gap) }}{% endif %})
{% if plan.mlflow_run_id %}· MLflow run {{ plan.mlflow_run_id }}{% endif %}</div>
{% for d in degraded %}<p class="alert">{{ d }}</p>{% endfor %}
<h2>Summary</h2>
<div class="kpis">{% for k, v in kpis %}<div class="kpi">{{ k }}<b>{{ v }}</b></div>{% endfor %}</div>
<h2>Projected stock at the most affected sites</h2>
<p class="meta">Stock position by day: sellable stock + known receipts − scheduled issues − forecast mean demand.
Below zero is demand the site cannot serve by then.</p>
<div class="charts">{% for c in charts %}<figure><img alt="{{ c.title }}" src="data:image/png;base64,{{ c.png }}"><figcaption>{{ c.title }}</figcaption></figure>{% endfor %}</div>
<h2>Orders ({{ orders|length }})</h2>
<table><tr><th>status</th><th>kind</th><th>sku</th><th>from → to</th><th>ship</th><th>arrive</th><th>qty</th><th>value</th><th>why</th></tr>
{% for o in orders %}<tr><td class="{{ o.status }}">{{ o.status.replace('_',' ') }}{% if o.released %} · released{% endif %}
{% for r in o.reasons %}<br><small>{{ r }}</small>{% endfor %}</td><td>{{ o.kind }}</td><td>{{ o.sku }}</td>
<td>{{ o.origin }} → {{ o.destination }} ({{ o.mode }})</td><td>{{ o.ship_date }}</td><td>{{ o.arrive_date }}</td>
<td class="num">{{ "{:,.0f}".format(o.qty) }}</td><td class="num">{{ "{:,.0f}".format(o.value or 0) }}</td><td>{{ o.explanation }}</td></tr>
{% endfor %}</table>
<h2>What changed since the previous plan{% if plan.previous_plan_id %} ({{ plan.previous_plan_id }}){% endif %}</h2>
{% if not plan.previous_plan_id %}<p>This is the first plan.</p>{% elif not changes %}<p>No order changed.</p>{% else %}
<table><tr><th>change</th><th>sku</th><th>from → to</th><th>ship</th><th>qty before</th><th>qty after</th></tr>
{% for c in changes %}<tr><td>{{ c.change }}</td><td>{{ c.sku }}</td><td>{{ c.origin }} → {{ c.destination }}</td><td>{{ c.ship_date }}</td>
<td class="num">{{ c.qty_before if c.qty_before is not none else '' }}</td><td class="num">{{ c.qty_after if c.qty_after is not none else '' }}</td></tr>{% endfor %}
</table>{% endif %}
<h2>Lineage</h2>
<table><tr><th>input</th><th>file</th><th>sha256</th><th>as of</th></tr>
{% for name, i in inputs %}<tr><td>{{ name }}</td><td>{{ i.file_name }}</td><td><code>{{ i.sha256[:16] }}…</code></td><td>{{ i.as_of }}</td></tr>{% endfor %}
</table>
<p class="meta">policy sha256 {{ plan.policy_sha256[:16] }}… · code {{ plan.code_version }} · forecast {{ plan.forecaster or '—' }} (run {{ plan.forecast_run_id or '—' }})</p>
<h2>Solver</h2><pre>{{ solve_json }}</pre>
</body></html>
"""


def _chart(projection: pl.DataFrame, site: str, sku: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    p = projection.filter((pl.col("site_id") == site) & (pl.col("sku") == sku)).sort("day")
    fig, ax = plt.subplots(figsize=(6, 2.8), dpi=90)
    days = p.get_column("day").to_list()
    ax.step(days, p.get_column("without_plan").to_list(), where="post", label="without plan", color="#b00020")
    ax.step(days, p.get_column("with_plan").to_list(), where="post", label="with plan", color="#1b7f3b")
    ax.axhline(0, color="#888", linewidth=0.8)
    ax.set_title(f"{site} · {sku}", fontsize=10)
    ax.set_ylabel("units")
    ax.legend(fontsize=8)
    fig.autofmt_xdate()
    return png_b64(fig)


def png_b64(fig) -> str:  # noqa: ANN001 - a matplotlib figure
    """Lay out, render and close a figure: a base64 PNG to embed in a self-contained HTML report."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def render_plan_report(
    plan: dict,
    orders: pl.DataFrame,
    projection: pl.DataFrame,
    affected: pl.DataFrame,
    changes: pl.DataFrame,
    path: Path,
) -> Path:
    """Write the report for `plan` (a plans-table row as dict) to `path`; return it."""
    env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
    solve = json.loads(plan["solve"]) if isinstance(plan["solve"], str) else plan["solve"]
    kpis = json.loads(plan["kpis"]) if isinstance(plan["kpis"], str) else plan["kpis"]
    inputs = json.loads(plan["inputs"]) if isinstance(plan["inputs"], str) else plan["inputs"]
    degraded = json.loads(plan["degraded"]) if isinstance(plan["degraded"], str) else plan["degraded"]
    rows = []
    for o in orders.to_dicts():
        reasons = o.get("approval_reasons") or "[]"
        o["reasons"] = json.loads(reasons) if isinstance(reasons, str) else list(reasons)
        o.setdefault("status", o.get("approval_status"))
        o.setdefault("released", False)
        rows.append(o)
    charts = [
        {"title": f"{site} · {sku}", "png": _chart(projection, site, sku)}
        for site, sku in affected.select("site_id", "sku").iter_rows()
    ]
    html = env.from_string(TEMPLATE).render(
        plan=plan,
        solve=solve,
        solve_json=json.dumps(solve, indent=2, default=str),
        kpis=[(k.replace("_", " "), _fmt(k, v)) for k, v in kpis.items()],
        inputs=sorted(inputs.items()),
        degraded=degraded,
        orders=rows,
        charts=charts,
        changes=changes.to_dicts(),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(path)
    return path


def _fmt(key: str, value: object) -> str:
    if isinstance(value, float):
        if "fill_rate" in key or key.endswith("share"):
            return f"{value:.1%}"
        return f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
