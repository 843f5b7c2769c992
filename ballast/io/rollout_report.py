"""The champion plan report's comparison section: the challenger's plan on the same inputs.

The section is inserted into the champion's HTML report after the challenger has run (the
champion is published first and never waits for it); rerunning replaces it, never duplicates it.
"""

from __future__ import annotations

import re
from pathlib import Path

from jinja2 import Environment, select_autoescape

from ballast.models.rollout import Comparison

START, END = "<!-- challenger-comparison -->", "<!-- /challenger-comparison -->"

SECTION = """<h2>Challenger in shadow{% if plan_id %}: plan {{ plan_id }}{% endif %}</h2>
<p class="meta">{{ challenger }} · computed on the same inputs as this plan, recorded, never released.
{% if report %}Its report: <a href="{{ report }}">{{ report }}</a>{% endif %}</p>
{% if failed %}<p class="alert">The challenger did not produce a plan: {{ failed }}.
This plan was published as usual.</p>
{% else %}
<table><tr><th>KPI</th><th>champion (this plan)</th><th>challenger</th><th></th></tr>
{% for label, a, b, verdict in kpis %}<tr><td>{{ label }}</td><td class="num">{{ fmt(label, a) }}</td>
<td class="num">{{ fmt(label, b) }}</td><td>{{ verdict }}</td></tr>{% endfor %}</table>
<p class="meta">Each objective is priced by its own policy (shortage penalties, holding costs): compare the
objectives only when the two policies price alike; fill rate and transport cost are comparable always.</p>
<p>Orders: {{ counts.same }} the same, {{ counts.changed }} with another quantity, {{ counts.added }} only in the
challenger, {{ counts.removed }} only in this plan.</p>
{% if changes %}<table><tr><th>change</th><th>kind</th><th>sku</th><th>from → to</th><th>ship</th>
<th>qty champion</th><th>qty challenger</th></tr>
{% for c in changes %}<tr><td>{{ c.change }}</td><td>{{ c.kind }}</td><td>{{ c.sku }}</td>
<td>{{ c.origin }} → {{ c.destination }}</td><td>{{ c.ship_date }}</td>
<td class="num">{{ qty(c.qty_before) }}</td><td class="num">{{ qty(c.qty_after) }}</td></tr>{% endfor %}
</table>{% if more %}<p class="meta">… and {{ more }} more differences.</p>{% endif %}{% endif %}
{% endif %}"""


def _fmt(label: str, value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and "fill rate" in label:
        return f"{value:.2%}"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _qty(value: float | None) -> str:
    return "" if value is None else f"{value:,.1f}"


def comparison_html(
    challenger: str, plan_id: str | None, report: Path | None, comparison: Comparison | None, failed: str | None,
    max_rows: int = 200,
) -> str:
    """The section as HTML (between markers, so it can be replaced)."""
    env = Environment(autoescape=select_autoescape(default=True, default_for_string=True))
    changes = comparison.changes.to_dicts() if comparison is not None else []
    body = env.from_string(SECTION).render(
        challenger=challenger, plan_id=plan_id, report=report.name if report else None, failed=failed,
        kpis=comparison.kpis if comparison else (), counts=comparison.counts if comparison else {},
        changes=changes[:max_rows], more=max(0, len(changes) - max_rows), fmt=_fmt, qty=_qty,
    )
    return f"{START}\n{body}\n{END}"


def add_comparison(report: Path, section: str) -> Path:
    """Put `section` into the report before its lineage (replacing an earlier one); atomic rewrite."""
    html = report.read_text(encoding="utf-8")
    html = re.sub(re.escape(START) + ".*?" + re.escape(END) + "\n?", "", html, flags=re.S)
    anchor = "<h2>Lineage</h2>"
    html = html.replace(anchor, section + "\n" + anchor, 1) if anchor in html else html.replace(
        "</body>", section + "\n</body>", 1)
    tmp = report.with_name(f".{report.name}.part")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(report)
    return report
