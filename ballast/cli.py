"""`ballast`: the command line, one handle on the whole system.

Heavy libraries (Prefect, MLflow, StatsForecast) are imported inside the commands that need
them, so `ballast --help` and the quick commands answer at once.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ballast.settings import Settings

app = typer.Typer(
    name="ballast",
    help=(
        "ballast keeps a distribution network in balance: it ingests ERP/WMS/TMS extracts, gates them, "
        "forecasts demand, arbitrates hub surpluses and deficits and publishes explained transfer plans.\n\n"
        "Paths come from BALLAST_* environment variables (BALLAST_HOME, default: the current folder)."
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
)
# Wide enough for the gate report when output goes to a file or CI log instead of a terminal.
console = Console(width=None if sys.stdout.isatty() else 160)

OUTCOME_STYLE = {"pass": "green", "pass_with_quarantine": "yellow", "block": "bold red"}
STATUS_STYLE = {"landed": "green", "duplicate": "cyan", "pending": "yellow", "rejected": "bold red",
                "unrecognised": "red"}


def _parse_time(value: str | None) -> datetime | None:
    if value is None:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise typer.BadParameter(f"{value!r} has no time zone; write it in UTC, e.g. 2026-11-23T06:00:00Z")
    return parsed.astimezone(UTC)


def _quarter_hour(t: datetime) -> datetime:
    return t.replace(minute=t.minute - t.minute % 15, second=0, microsecond=0)


NowOption = Annotated[
    str | None,
    typer.Option("--now", help="Clock for freshness checks, ISO-8601 with zone (default: the real clock)."),
]


@app.command()
def sample(
    size: Annotated[str, typer.Option(help="Named size: S (default network), M (20 sites × 1,000 SKUs), L (50 × 5,000).")] = "S",
    seed: Annotated[int, typer.Option(help="Random seed; the same seed writes the same network.")] = 7,
    skus: Annotated[int | None, typer.Option(help="Override the number of SKUs.")] = None,
    hubs: Annotated[int | None, typer.Option(help="Override the number of hubs.")] = None,
    days: Annotated[int | None, typer.Option(help="Override the days of demand history.")] = None,
    fmt: Annotated[str, typer.Option("--format", help="csv, parquet or mixed (CSV master data, Parquet demand).")] = "mixed",
    as_of: Annotated[
        str | None,
        typer.Option(help="Snapshot time of the extracts, ISO-8601 with zone (default: now, on the quarter hour)."),
    ] = None,
) -> None:
    """Write a generated sample network into the inbox, as ERP/WMS/TMS dumps would arrive."""
    from dataclasses import replace

    from ballast.io.sample_writer import write_sample
    from ballast.models.sample import SIZES

    settings = Settings()
    if size not in SIZES:
        raise typer.BadParameter(f"unknown size {size!r}; choose one of {', '.join(SIZES)}")
    spec = replace(SIZES[size], seed=seed)
    snapshot = _parse_time(as_of) or _quarter_hour(datetime.now(UTC))
    overrides = {"skus": skus, "hubs": hubs, "history_days": days, "as_of": snapshot}
    spec = replace(spec, **{k: v for k, v in overrides.items() if v is not None})
    paths = write_sample(spec, settings.inbox_dir, fmt)
    console.print(f"wrote {len(paths)} extract files into [bold]{settings.inbox_dir}[/]:")
    for p in paths:
        console.print(f"  {p.relative_to(settings.inbox_dir)}  ({p.stat().st_size / 1e6:.1f} MB)")


def _print_ingest(report: object) -> None:
    table = Table(title="ingest", show_lines=False)
    for col in ("status", "file", "message"):
        table.add_column(col)
    for o in report.outcomes:  # type: ignore[attr-defined]
        table.add_row(f"[{STATUS_STYLE[o.status]}]{o.status}[/]", Path(o.file).name, o.message.split(": ", 1)[-1])
    if not report.outcomes:  # type: ignore[attr-defined]
        console.print("ingest: the inbox holds no delivered files")
    else:
        console.print(table)


def _print_gates(rows: list) -> None:
    table = Table(title="quality gates", show_lines=True)
    for col in ("extract", "file", "rows in", "staged", "quarantined", "outcome", "why / examples"):
        table.add_column(col, overflow="fold")
    for r in rows:
        detail = "\n".join([*r.reasons, *r.examples])
        table.add_row(
            r.extract, r.file_name, f"{r.rows_in:,}", f"{r.rows_staged:,}", f"{r.rows_quarantined:,}",
            f"[{OUTCOME_STYLE[r.outcome]}]{r.outcome}[/]", detail,
        )
    if rows:
        console.print(table)
    else:
        console.print("validate: no landed file was waiting for the gate")


def _print_data_docs(report: object | None) -> None:
    if report is None:
        return
    failed = report.failures  # type: ignore[attr-defined]
    console.print(
        f"statistical suite (Great Expectations): {len(failed)} soft check(s) failed"
        + "".join(f"\n  {f.suite}.{f.check}: {f.observed}" for f in failed)
    )
    console.print(f"Data Docs: {report.docs_index}")  # type: ignore[attr-defined]


@app.command()
def ingest(now: NowOption = None) -> None:
    """Land every delivered inbox file in the warehouse (raw tables), once; archive it."""
    from ballast.io.ingest import ingest_inbox
    from ballast.io.warehouse import open_warehouse

    settings = Settings()
    with open_warehouse(settings.db_path) as con:
        report = ingest_inbox(con, settings.inbox_dir, settings.archive_dir, _parse_time(now))
    _print_ingest(report)
    if report.by_status("rejected"):
        raise typer.Exit(code=1)


@app.command()
def validate(now: NowOption = None) -> None:
    """Gate every landed file (types, schema, references, freshness, reconciliation) and print the report.

    Exits with code 1 when a file is blocked.
    """
    from ballast.io.data_docs import write_data_docs
    from ballast.io.gate_report import gate_rows
    from ballast.io.staging import validate_pending
    from ballast.io.warehouse import open_warehouse
    from ballast.models.policy import load_policy

    settings = Settings()
    policy, _ = load_policy(settings.policy_path)
    clock = _parse_time(now) or datetime.now(UTC)
    with open_warehouse(settings.db_path) as con:
        results = validate_pending(con, policy, clock)
        rows = gate_rows(con, [r.file_id for r in results])
    _print_gates(rows)
    _print_data_docs(write_data_docs(settings, policy, results, clock.strftime("%Y%m%dT%H%M%SZ")))
    if any(r.outcome == "block" for r in results):
        raise typer.Exit(code=1)


@app.command()
def gates(all_files: Annotated[bool, typer.Option("--all", help="Every file ever gated, not only the latest per extract.")] = False) -> None:
    """Show the gate report of the warehouse (latest file per extract by default)."""
    from ballast.io.gate_report import gate_rows
    from ballast.io.warehouse import open_warehouse

    settings = Settings()
    with open_warehouse(settings.db_path, read_only=True) as con:
        rows = gate_rows(con)
    if not all_files:
        latest = {r.extract: r for r in rows}
        rows = list(latest.values())
    _print_gates(rows)


@app.command()
def quarantine(
    file: Annotated[str | None, typer.Option(help="Only this file name.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many lines.")] = 50,
) -> None:
    """List quarantined rows: file, row, column, rule and value."""
    from ballast.io.gate_report import quarantine_rows
    from ballast.io.warehouse import open_warehouse

    settings = Settings()
    with open_warehouse(settings.db_path, read_only=True) as con:
        lines = quarantine_rows(con, file, limit)
    for line in lines:
        console.print(line, markup=False, highlight=False)
    if not lines:
        console.print("quarantine is empty")


@app.command()
def forecast(
    report: Annotated[bool, typer.Option("--report", help="Print the accuracy report and write it as HTML with charts.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Refit every series, cached or not.")] = False,
    workers: Annotated[int, typer.Option(help="Processes for fitting.")] = 2,
    now: NowOption = None,
) -> None:
    """Refresh demand forecasts and stock targets (only series whose history changed are refitted)."""
    from ballast.flows.forecast_refresh import warehouse_inputs
    from ballast.io.forecast_report import build_report, render_text, write_html
    from ballast.io.warehouse import open_warehouse
    from ballast.models.policy import load_policy
    from ballast.tasks.forecast import run_forecast_refresh, summary

    settings = Settings()
    policy, _ = load_policy(settings.policy_path)
    clock = _parse_time(now) or datetime.now(UTC)
    with open_warehouse(settings.db_path) as con:
        inputs = warehouse_inputs(con, clock)
        if inputs["demand"].is_empty():
            console.print("no staged demand history: run `ballast ingest` and `ballast validate` first")
            raise typer.Exit(code=1)
        result = run_forecast_refresh(
            con, inputs["demand"], inputs["sites"], inputs["items"], inputs["lanes"], policy, settings,
            clock.date(), force, workers=workers,
        )
        console.print(json.dumps(summary(result), indent=1, default=str), markup=False, highlight=False)
        if report:
            rep = build_report(con, inputs["demand"])
            console.print(render_text(rep), markup=False, highlight=False)
            path = write_html(rep, settings.reports_dir / f"forecast_{rep.run['run_id']}.html")
            console.print(f"report: {path}")


@app.command()
def run(now: NowOption = None) -> None:
    """Run the main job once as a Prefect flow on the embedded defaults (ephemeral API, DuckDB file)."""
    _quiet_prefect()
    from ballast.flows.ingest import IngestParams, ingest_flow
    from ballast.io.gate_report import gate_rows
    from ballast.io.warehouse import open_warehouse

    settings = Settings()
    result = ingest_flow(IngestParams(now=_parse_time(now)))
    _print_ingest(result["ingest"])
    with open_warehouse(settings.db_path, read_only=True) as con:
        rows = gate_rows(con, [g.file_id for g in result["gates"]])
    _print_gates(rows)
    if result["data_docs"]:
        console.print(f"Data Docs: {result['data_docs']}")
    console.print(f"warehouse: {settings.db_path}")


@app.command()
def demo(
    now: NowOption = None,
) -> None:
    """Generate the default sample network (if the inbox is empty) and run the main job on it."""
    settings = Settings()
    if not any(settings.inbox_dir.glob("*/*")):
        sample(size="S", seed=7, skus=None, hubs=None, days=None, fmt="mixed", as_of=None)
    run(now=now)


def _quiet_prefect() -> None:
    """Embedded defaults for Prefect: ephemeral API, no anonymous usage reporting."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
