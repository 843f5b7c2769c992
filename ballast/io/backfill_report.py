"""The backfill report: one self-contained HTML file with KPIs over time (PNG charts), the steps
that were skipped, blocked or failed, and, where a live plan exists for the same as-of, how the
backfilled plan differs from it."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from jinja2 import Environment, select_autoescape

from ballast.io.plan_report import png_b64

TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ballast backfill {{ run.backfill_id }}</title>
<style>
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem;color:#1d2733;max-width:1300px}
h1{font-size:1.5rem;margin-bottom:.2rem} h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #d8dee6}
.meta{color:#5a6a7a} table{border-collapse:collapse;width:100%;font-size:.85rem}
th,td{border-bottom:1px solid #e6eaef;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f4f6f9} td.num{text-align:right;font-variant-numeric:tabular-nums}
.kpis{display:flex;flex-wrap:wrap;gap:.8rem} .kpi{background:#f4f6f9;border-radius:6px;padding:.6rem .9rem;min-width:9rem}
.kpi b{display:block;font-size:1.2rem} .same{color:#1b7f3b} .differs{color:#a15c00;font-weight:600}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:1rem} img{max-width:100%}
</style></head><body>
<h1>Backfill {{ run.backfill_id }}</h1>
<div class="meta">as-of {{ run.start }} → {{ run.end }} every {{ run.every }} · runner {{ run.runner }} ·
policy {{ run.policy or "in force at each as-of" }}{% if run.force %} · forced{% endif %}</div>
<h2>Summary</h2>
<div class="kpis">{% for k, v in counts %}<div class="kpi">{{ k }}<b>{{ v }}</b></div>{% endfor %}</div>
<p class="meta">Backfilled plans are marked <code>mode = backfill</code>: never released, never in the outbox, not for approval.</p>
<h2>KPIs over time</h2>
{% if charts %}<div class="charts">{% for c in charts %}<figure><img alt="{{ c.title }}" src="data:image/png;base64,{{ c.png }}"><figcaption>{{ c.title }}</figcaption></figure>{% endfor %}</div>
{% else %}<p>No backfilled plan in this range.</p>{% endif %}
<h2>Backfilled vs live plans at the same as-of</h2>
{% if not diffs %}<p>No live plan exists for any as-of of this backfill.</p>{% else %}
<table><tr><th>as of</th><th>live plan</th><th>backfilled plan</th><th>orders live / backfill</th><th>added</th><th>removed</th><th>changed</th></tr>
{% for d in diffs %}<tr><td>{{ d.as_of }}</td><td>{{ d.live_plan_id }}</td><td>{{ d.plan_id }}</td><td class="num">{{ d.live_orders }} / {{ d.orders }}</td>
<td class="num {{ 'same' if d.added == 0 else 'differs' }}">{{ d.added }}</td><td class="num {{ 'same' if d.removed == 0 else 'differs' }}">{{ d.removed }}</td>
<td class="num {{ 'same' if d.changed == 0 else 'differs' }}">{{ d.changed }}</td></tr>
{% for c in d.rows %}<tr><td></td><td colspan="2"><small>{{ c.change }} {{ c.sku }} {{ c.origin }} → {{ c.destination }} ship {{ c.ship_date }}</small></td>
<td class="num" colspan="4"><small>{{ c.qty_before if c.qty_before is not none else '—' }} → {{ c.qty_after if c.qty_after is not none else '—' }}</small></td></tr>{% endfor %}
{% endfor %}</table>{% endif %}
<h2>Steps not planned</h2>
{% if not problems %}<p>Every as-of was planned or already done.</p>{% else %}
<table><tr><th>as of</th><th>status</th><th>why</th></tr>
{% for s in problems %}<tr><td>{{ s.as_of }}</td><td>{{ s.status }}</td><td>{{ s.reason }}</td></tr>{% endfor %}</table>{% endif %}
</body></html>
"""

CHARTS = (
    ("Expected fill rate", ("expected_fill_rate", "expected_fill_rate_without_plan"), ("with plan", "without plan")),
    ("Orders per plan", ("transfers", "purchases"), ("transfers", "purchases")),
    ("Cost", ("transport_cost", "transfer_value"), ("transport cost", "transfer value")),
    ("Shortages avoided (units)", ("shortages_avoided_units",), ("units",)),
)


def _chart(kpis: pl.DataFrame, title: str, columns: tuple[str, ...], labels: tuple[str, ...]) -> str | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    present = [(c, label) for c, label in zip(columns, labels, strict=True) if c in kpis.columns]
    if not present:
        return None
    fig, ax = plt.subplots(figsize=(7, 2.8), dpi=90)
    x = kpis.get_column("as_of").to_list()
    for column, label in present:
        ax.plot(x, kpis.get_column(column).to_list(), marker="." if len(x) < 60 else None, label=label)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.autofmt_xdate()
    return png_b64(fig)


def render_backfill_report(
    run: dict, kpis: pl.DataFrame, steps: pl.DataFrame, diffs: list[dict], path: Path, max_diff_rows: int = 20
) -> Path:
    """Write the report of backfill `run` to `path`; `diffs` holds one dict per as-of with a live plan
    (as_of, live_plan_id, plan_id, live_orders, orders, changes: a `plan_diff.diff_orders` frame)."""
    env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
    charts = []
    if kpis.height:
        for title, columns, labels in CHARTS:
            png = _chart(kpis, title, columns, labels)
            if png:
                charts.append({"title": title, "png": png})
    counts = steps.group_by("status").len().sort("status").iter_rows() if steps.height else []
    rows = []
    for d in diffs:
        changes: pl.DataFrame = d["changes"]
        count = {c: int((changes.get_column("change") == c).sum()) if changes.height else 0
                 for c in ("added", "removed", "changed")}
        rows.append(d | count | {"rows": changes.head(max_diff_rows).to_dicts()})
    html = env.from_string(TEMPLATE).render(
        run=run,
        counts=list(counts),
        charts=charts,
        diffs=rows,
        problems=steps.filter(pl.col("status").is_in(["blocked", "failed"])).to_dicts() if steps.height else [],
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(path)
    return path
