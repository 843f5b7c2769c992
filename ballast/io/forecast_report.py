"""The forecast accuracy report: text for the terminal, one self-contained HTML file for the browser.

Accuracy by demand class against SeasonalNaive (CV and the out-of-sample hold-out) and a few
example series with their recent history, forecast and 80/95% intervals. Charts are matplotlib
PNGs embedded as base64, so the file can be mailed or archived on its own.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from ballast.io import forecast_store
from ballast.models.forecast import accuracy_summary

HISTORY_DAYS = 56


@dataclass(frozen=True)
class ForecastReport:
    run: dict[str, Any]
    accuracy: pl.DataFrame
    model_counts: pl.DataFrame
    examples: list[tuple[dict[str, Any], pl.DataFrame, pl.DataFrame]]  # (series row, history, forecast)


def build_report(
    con: duckdb.DuckDBPyConnection, demand: pl.DataFrame, run_id: str | None = None, n_examples: int = 4
) -> ForecastReport:
    """Gather a run's accuracy, model counts and example series (default: the latest run)."""
    run = forecast_store.latest_run(con) if run_id is None else _run(con, run_id)
    if run is None:
        raise LookupError("no forecast run recorded yet: run `ballast forecast` first")
    series = forecast_store.run_series(con, run["run_id"])
    forecasts = forecast_store.run_forecasts(con, run["run_id"])
    volume = demand.group_by("site_id", "sku").agg(pl.col("qty").sum().alias("volume"))
    ranked = series.join(volume, on=["site_id", "sku"], how="left").sort(
        "volume", descending=True, nulls_last=True
    )
    picks = ranked.group_by("demand_class", maintain_order=True).first().head(n_examples)
    examples = []
    start = run["as_of"] - timedelta(days=HISTORY_DAYS)
    for row in picks.iter_rows(named=True):
        key = (pl.col("site_id") == row["site_id"]) & (pl.col("sku") == row["sku"])
        hist = demand.filter(key & (pl.col("date") >= start) & (pl.col("date") < run["as_of"])).sort("date")
        examples.append((row, hist, forecasts.filter(key)))
    counts = (
        series.group_by("demand_class", "model").len().sort("demand_class", "len", descending=[False, True])
    )
    return ForecastReport(run, accuracy_summary(series), counts, examples)


def _run(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, Any] | None:
    rel = con.execute("SELECT * FROM fc_runs WHERE run_id = ?", [run_id])
    rows = rel.fetchall()
    return dict(zip([d[0] for d in rel.description], rows[0], strict=True)) if rows else None


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


ACC_COLUMNS = (
    "demand_class",
    "n_series",
    "mase",
    "snaive_mase",
    "mase_holdout",
    "snaive_mase_holdout",
    "beats_snaive_share",
    "rmsse",
    "bias",
    "cov80",
    "cov95",
)


def render_text(report: ForecastReport) -> str:
    """The accuracy table as plain text (what `ballast forecast --report` prints)."""
    run = report.run
    lines = [
        f"forecast run {run['run_id']}  as of {run['as_of']}  horizon {run['horizon_days']} d  "
        f"forecaster {run['model_name']}/{run['model_version']}  "
        f"series {run['n_series']} (refit {run['n_refit']})",
        "",
    ]
    cols = [c for c in ACC_COLUMNS if c in report.accuracy.columns]
    rows = [[_fmt(r.get(c)) for c in cols] for r in report.accuracy.iter_rows(named=True)]
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(cols)]
    lines.append("  ".join(c.rjust(w) for c, w in zip(cols, widths, strict=True)))
    lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)) for r in rows]
    lines += [
        "",
        "MASE/RMSSE: mean over series; *_holdout: model chosen without the last CV window, scored on it;",
        "bias: Σ(forecast − actual)/Σ actual; cov80/cov95: share of CV days inside the interval.",
    ]
    return "\n".join(lines)


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _accuracy_chart(acc: pl.DataFrame) -> str:
    import matplotlib.pyplot as plt

    rows = acc.filter(pl.col("mase_holdout").is_not_null())
    labels = rows["demand_class"].to_list()
    x = range(len(labels))
    fig, ax = plt.subplots(figsize=(7, 3.2))
    ax.bar([i - 0.2 for i in x], rows["mase_holdout"].to_list(), width=0.4, label="chosen model")
    ax.bar([i + 0.2 for i in x], rows["snaive_mase_holdout"].to_list(), width=0.4, label="SeasonalNaive")
    ax.set_xticks(list(x), labels)
    ax.set_ylabel("MASE (hold-out)")
    ax.axhline(1.0, color="grey", lw=0.6, ls=":")
    ax.legend()
    return _png(fig)


def _example_chart(row: dict[str, Any], hist: pl.DataFrame, fcst: pl.DataFrame) -> str:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 2.8))
    ax.plot(hist["date"].to_list(), hist["qty"].to_list(), color="black", lw=1, label="history")
    days = fcst["day"].to_list()
    ax.fill_between(days, fcst["lo95"].to_list(), fcst["hi95"].to_list(), alpha=0.2, label="95%")
    ax.fill_between(days, fcst["lo80"].to_list(), fcst["hi80"].to_list(), alpha=0.35, label="80%")
    ax.plot(days, fcst["mean"].to_list(), lw=1.5, label="forecast")
    ax.set_title(f"{row['site_id']} · {row['sku']} · {row['demand_class']} · {row['model']}", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    fig.autofmt_xdate()
    return _png(fig)


def write_html(report: ForecastReport, path: Path) -> Path:
    """Write the report as one self-contained HTML file; return its path."""
    import matplotlib

    matplotlib.use("Agg")
    run = report.run
    cols = [c for c in ACC_COLUMNS if c in report.accuracy.columns]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(r.get(c)))}</td>" for c in cols) + "</tr>"
        for r in report.accuracy.iter_rows(named=True)
    )
    counts = "".join(
        f"<tr><td>{html.escape(str(c))}</td><td>{html.escape(str(m))}</td><td>{n}</td></tr>"
        for c, m, n in report.model_counts.iter_rows()
    )
    examples = "".join(
        f'<img alt="{html.escape(r["site_id"])} {html.escape(r["sku"])}" '
        f'src="data:image/png;base64,{_example_chart(r, h, f)}">'
        for r, h, f in report.examples
    )
    title = html.escape(run["run_id"])
    doc = f"""<!doctype html><html><head><meta charset="utf-8"><title>ballast forecast {title}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:60em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 8px;text-align:right}}
img{{display:block;margin:1em 0}}</style></head><body>
<h1>Forecast accuracy</h1>
<p>run <code>{html.escape(run["run_id"])}</code> · as of {run["as_of"]} · horizon {run["horizon_days"]} days ·
forecaster {html.escape(str(run["model_name"]))} v{html.escape(str(run["model_version"]))} ·
{run["n_series"]} series ({run["n_refit"]} refit)</p>
<h2>By demand class, against SeasonalNaive</h2><table><tr>{head}</tr>{body}</table>
<p>MASE/RMSSE: mean over series. <em>holdout</em>: the model chosen without the last CV window, scored on it.
bias: Σ(forecast − actual)/Σ actual. cov80/cov95: share of CV days inside the 80%/95% interval.</p>
<img alt="MASE by class" src="data:image/png;base64,{_accuracy_chart(report.accuracy)}">
<h2>Chosen models</h2><table><tr><th>class</th><th>model</th><th>series</th></tr>{counts}</table>
<h2>Examples</h2>{examples}
</body></html>"""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(doc, encoding="utf-8")
    tmp.replace(path)
    return path
