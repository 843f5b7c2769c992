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
from rich.markup import escape as esc  # ids, file names and reasons are data, never rich markup
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
        table.add_row(
            f"[{STATUS_STYLE[o.status]}]{o.status}[/]", esc(Path(o.file).name), esc(o.message.split(": ", 1)[-1])
        )
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
            r.extract, esc(r.file_name), f"{r.rows_in:,}", f"{r.rows_staged:,}", f"{r.rows_quarantined:,}",
            f"[{OUTCOME_STYLE[r.outcome]}]{r.outcome}[/]", esc(detail),
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


DaskOption = Annotated[bool, typer.Option(
    "--dask", help="Map the flow's tasks onto a Dask cluster: a local one of --workers processes, or --dask-address.")]
DaskAddressOption = Annotated[str | None, typer.Option(
    "--dask-address",
    help="A running Dask scheduler, e.g. tcp://scheduler:8786 (implies --dask; default: $BALLAST_DASK_ADDRESS).")]


def _dask_runner(dask: bool, address: str | None, workers: int):  # noqa: ANN202 - prefect_dask.DaskTaskRunner | None
    """The Dask task runner the options ask for (BALLAST_DASK_ADDRESS counts as --dask-address), else None."""
    from ballast.tasks.runners import address_from_env, dask_task_runner

    address = address or address_from_env()
    if not (dask or address):
        return None
    try:
        return dask_task_runner(address, workers)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


@app.command()
def forecast(
    report: Annotated[bool, typer.Option("--report", help="Print the accuracy report and write it as HTML with charts.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Refit every series, cached or not.")] = False,
    workers: Annotated[int, typer.Option(help="Processes for fitting (with --dask: local Dask workers).")] = 2,
    now: NowOption = None,
    dask: DaskOption = False,
    dask_address: DaskAddressOption = None,
    dask_backend: Annotated[bool, typer.Option(
        "--dask-backend", help="Fit through StatsForecast's own Dask backend (Fugue) on the cluster (implies --dask).",
    )] = False,
) -> None:
    """Refresh demand forecasts and stock targets (only series whose history changed are refitted).

    With --dask the `forecast-refresh` flow runs its partition fits as tasks on a Dask cluster.
    """
    from ballast.flows.forecast_refresh import warehouse_inputs
    from ballast.io.forecast_report import build_report, render_text, write_html
    from ballast.io.warehouse import open_warehouse
    from ballast.models.policy import load_policy
    from ballast.tasks.forecast import run_forecast_refresh, summary

    settings = Settings()
    policy, _ = load_policy(settings.policy_path)
    clock = _parse_time(now) or datetime.now(UTC)
    runner = _dask_runner(dask or dask_backend, dask_address, workers)
    with open_warehouse(settings.db_path) as con:
        inputs = warehouse_inputs(con, clock)
        if inputs["demand"].is_empty():
            console.print("no staged demand history: run `ballast ingest` and `ballast validate` first")
            raise typer.Exit(code=1)
        if runner is None:
            done = summary(run_forecast_refresh(
                con, inputs["demand"], inputs["sites"], inputs["items"], inputs["lanes"], policy, settings,
                clock.date(), force, workers=workers,
            ))
    if runner is not None:  # the flow opens the warehouse itself
        _quiet_prefect()
        from ballast.flows.forecast_refresh import forecast_refresh

        done = forecast_refresh.with_options(task_runner=runner)(
            as_of=clock, force=force, backend="dask" if dask_backend else "local"
        )
    console.print(json.dumps(done, indent=1, default=str), markup=False, highlight=False)
    if report:
        with open_warehouse(settings.db_path) as con:
            rep = build_report(con, inputs["demand"])
            console.print(render_text(rep), markup=False, highlight=False)
            path = write_html(rep, settings.reports_dir / f"forecast_{rep.run['run_id']}.html")
            console.print(f"report: {path}")


@app.command()
def run(
    now: Annotated[str | None, typer.Option("--now", help="The cycle's as-of time, ISO-8601 with zone (default: now).")] = None,
    refit: Annotated[bool, typer.Option("--refit", help="Refit forecasts even if the cached ones are fresh.")] = False,
    no_ingest: Annotated[bool, typer.Option("--no-ingest", help="Plan on what is staged; do not read the inbox.")] = False,
    shadow: Annotated[bool, typer.Option("--shadow", help="Compute and record the plan, never release it.")] = False,
    policy: Annotated[Path | None, typer.Option(help="Plan under another policy file (e.g. a challenger in shadow).")] = None,
    dask: DaskOption = False,
    workers: Annotated[int, typer.Option(help="Local Dask worker processes (with --dask).")] = 2,
    dask_address: DaskAddressOption = None,
) -> None:
    """Run one planning cycle as a Prefect flow: ingest → gates → forecast → agents → coordinator → publish.

    With --dask (or BALLAST_DASK_ADDRESS set) the same flow maps its hub agents, SKU-group solves and
    forecast partitions onto a Dask cluster; the flow and every write stay in this process.

    Exits 2 when the data may not be planned on (a gate blocked, or a snapshot is stale): no plan
    is published and the previous plan stays in force.
    """
    _quiet_prefect()
    from ballast.flows.planning_cycle import CycleParams, planning_cycle
    from ballast.io.cycle_lock import CycleBusy
    from ballast.io.tracking import TrackingUnavailable
    from ballast.io.warehouse import WarehouseBusy
    from ballast.tasks.cycle import CycleBlocked

    settings = Settings()
    params = CycleParams(
        as_of=_parse_time(now), ingest=not no_ingest, refit_forecasts=refit, mode="shadow" if shadow else "live",
        policy=policy,
    )
    runner = _dask_runner(dask, dask_address, workers)
    cycle = planning_cycle.with_options(task_runner=runner) if runner is not None else planning_cycle
    state = cycle(params, return_state=True)
    if not state.is_completed():
        try:
            state.result()
        except CycleBlocked as exc:
            console.print(f"[bold red]cycle blocked[/]: {exc}")
            raise typer.Exit(code=2) from None
        except (CycleBusy, WarehouseBusy) as exc:
            console.print(f"[bold yellow]not run[/]: {exc}")
            raise typer.Exit(code=3) from None
        except TrackingUnavailable as exc:
            console.print(f"[bold red]not published[/]: {exc}")
            raise typer.Exit(code=1) from None
        raise
    outcome = state.result()
    if not outcome.created:
        console.print(f"plan {outcome.plan_id} already exists for these inputs: nothing new to publish")
        return
    console.print(f"[bold green]published[/] plan {outcome.plan_id}: {outcome.orders} orders, "
                  f"{outcome.released} released, {outcome.needs_approval} awaiting approval")
    for key, value in outcome.kpis.items():
        shown = f"{value:.1%}" if "fill_rate" in key else (f"{value:,.0f}" if isinstance(value, float) else value)
        console.print(f"  {key.replace('_', ' ')}: {shown}")
    console.print("steps:   " + ", ".join(f"{k} {v:.1f} s" for k, v in outcome.steps.items()))
    console.print(f"report:  {outcome.report}")
    if outcome.outbox_files:
        console.print("outbox:  " + ", ".join(str(p) for p in outcome.outbox_files))
    from ballast.io.tracking import redact

    store = redact(settings.tracking_uri)  # a server URI may carry credentials
    console.print(f"MLflow:  run {outcome.mlflow_run_id} in {store} (mlflow ui --backend-store-uri {store})")


plans_app = typer.Typer(help="Review plans: list, show, diff.", no_args_is_help=True)
app.add_typer(plans_app, name="plans")


@plans_app.command("list")
def plans_list(limit: Annotated[int, typer.Option(help="At most this many plans.")] = 20) -> None:
    """The latest plans, newest first."""
    from ballast.io.warehouse import open_warehouse, query_frame

    with open_warehouse(Settings().db_path, read_only=True) as con:
        rows = query_frame(
            con,
            """SELECT p.plan_id, strftime(p.as_of, '%Y-%m-%d %H:%M') AS "as of (UTC)", p.mode, p.policy_version,
                      json_extract_string(p.solve, '$.rung') AS rung,
                      (SELECT count(*) FROM transfer_orders o WHERE o.plan_id = p.plan_id) AS orders,
                      (SELECT count(*) FROM released_orders r WHERE r.plan_id = p.plan_id) AS released
               FROM plans p ORDER BY p.as_of DESC, p.created_at DESC LIMIT ?""",
            [limit],
        )
    table = Table(title="plans")
    for col in rows.columns:
        table.add_column(col)
    for r in rows.iter_rows():
        table.add_row(*[str(v) for v in r])
    console.print(table)


@plans_app.command("show")
def plans_show(plan_id: str, orders: Annotated[int, typer.Option(help="Show at most this many orders.")] = 30) -> None:
    """A plan's KPIs, solver record and orders with their explanations and approval status."""
    from ballast.io.plans import order_status
    from ballast.io.warehouse import open_warehouse, query_frame

    with open_warehouse(Settings().db_path, read_only=True) as con:
        plan = query_frame(con, "SELECT * FROM plans WHERE plan_id = ?", [plan_id])
        if plan.is_empty():
            console.print(f"no plan {plan_id!r} (see `ballast plans list`)", markup=False)
            raise typer.Exit(code=1)
        status = order_status(con, plan_id)
    p = plan.row(0, named=True)
    console.print(f"[bold]plan {esc(plan_id)}[/] as of {p['as_of']} ({p['mode']}), policy {p['policy_version']}")
    console.print(f"solve: {p['solve']}", markup=False, highlight=False)
    console.print(f"kpis:  {p['kpis']}", markup=False, highlight=False)
    if p["degraded"] != "[]":
        console.print(f"degraded: {p['degraded']}", markup=False)
    console.print(f"report: {p['report_path']}   MLflow run: {p['mlflow_run_id']}")
    table = Table(show_lines=True)
    for col in ("order", "status", "move", "ship", "qty", "value", "why"):
        table.add_column(col, overflow="fold")
    for o in status.head(orders).iter_rows(named=True):
        table.add_row(
            o["order_id"], o["status"] + (" · released" if o["released"] else ""),
            esc(f"{o['sku']} {o['origin']}→{o['destination']} ({o['mode']})"), str(o["ship_date"]), f"{o['qty']:,.0f}",
            f"{o['value'] or 0:,.0f}", esc(o["explanation"] or ""),
        )
    console.print(table)
    if status.height > orders:
        console.print(f"… {status.height - orders} more orders (see the report)")


@plans_app.command("diff")
def plans_diff(plan_a: str, plan_b: str) -> None:
    """Orders added, removed or changed from plan A to plan B."""
    from ballast.io.plans import order_status
    from ballast.io.warehouse import open_warehouse
    from ballast.models.plan_diff import diff_orders

    with open_warehouse(Settings().db_path, read_only=True) as con:
        a, b = order_status(con, plan_a), order_status(con, plan_b)
    for pid, frame in ((plan_a, a), (plan_b, b)):
        if frame.is_empty():
            console.print(f"plan {pid} has no orders (or does not exist)", markup=False)
    changes = diff_orders(a, b) if not (a.is_empty() and b.is_empty()) else None
    if changes is None or changes.is_empty():
        console.print("no order differs")
        return
    table = Table(title=esc(f"{plan_a} → {plan_b}"))
    for col in ("change", "sku", "move", "ship", "qty before", "qty after"):
        table.add_column(col)
    for c in changes.iter_rows(named=True):
        table.add_row(c["change"], esc(c["sku"]), esc(f"{c['origin']}→{c['destination']} ({c['mode']})"),
                      str(c["ship_date"]),
                      "" if c["qty_before"] is None else f"{c['qty_before']:,.0f}",
                      "" if c["qty_after"] is None else f"{c['qty_after']:,.0f}")
    console.print(table)


def _decide(decision: str, plan_id: str, order: list[str] | None, by: str, reason: str) -> None:
    from ballast.io.plans import decide_orders, deliver_outbox
    from ballast.io.rollout import champion_policy
    from ballast.io.warehouse import open_warehouse
    from ballast.models.governance import NotAllowed, check_approver
    from ballast.models.policy import load_policy

    settings = Settings()
    with open_warehouse(settings.db_path) as con:
        rows = con.execute("SELECT policy_version FROM plans WHERE plan_id = ?", [plan_id]).fetchall()
        if not rows:
            console.print(f"no plan {plan_id!r} (see `ballast plans list`)", markup=False)
            raise typer.Exit(code=1)
        # The planners of the policy in force: a promoted champion's, else the settings' policy file.
        champion = champion_policy(con)
        policy = champion.policy() if champion is not None else load_policy(settings.policy_path)[0]
        try:
            check_approver(by, policy)
            decided = decide_orders(con, plan_id, order or None, decision, by, reason, datetime.now(UTC))
        except (NotAllowed, KeyError, ValueError) as exc:
            console.print(f"[bold red]refused[/]: {esc(str(exc))}")
            raise typer.Exit(code=1) from None
        written = deliver_outbox(con, settings.outbox_dir, datetime.now(UTC))
    console.print(f"{decision} {len(decided)} order(s) of plan {plan_id} by {by}")
    for path in written:
        console.print(f"  outbox: {path}")


ByOption = Annotated[str, typer.Option("--by", help="Who decides (must hold the planner role; not the policy author).")]
ReasonOption = Annotated[str, typer.Option("--reason", help="Why (kept in the audit log).")]
OrderOption = Annotated[
    list[str] | None, typer.Option("--order", help="An order id (repeatable); default: every order awaiting approval.")
]


@app.command()
def approve(plan_id: str, by: ByOption, reason: ReasonOption, order: OrderOption = None) -> None:
    """Approve orders awaiting approval (maker-checker); approved orders in the freeze window are released."""
    _decide("approved", plan_id, order, by, reason)


@app.command()
def reject(plan_id: str, by: ByOption, reason: ReasonOption, order: OrderOption = None) -> None:
    """Reject orders awaiting approval; they are never released."""
    _decide("rejected", plan_id, order, by, reason)


audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")


@audit_app.command("verify")
def audit_verify() -> None:
    """Check that no audit entry was edited, deleted or reordered. Exits 1 if one was."""
    from ballast.io.plans import audit_entries, verify_audit
    from ballast.io.warehouse import open_warehouse

    with open_warehouse(Settings().db_path, read_only=True) as con:
        problems = verify_audit(con)
        n = len(audit_entries(con))
    if problems:
        for p in problems:
            console.print(f"[bold red]broken[/]: {p}")
        raise typer.Exit(code=1)
    console.print(f"audit log intact: {n} entries, every hash chains to the one before")


@audit_app.command("show")
def audit_show(limit: Annotated[int, typer.Option(help="The last N entries.")] = 20) -> None:
    """The latest audit entries."""
    from ballast.io.plans import audit_entries
    from ballast.io.warehouse import open_warehouse

    with open_warehouse(Settings().db_path, read_only=True) as con:
        entries = audit_entries(con)[-limit:]
    for e in entries:
        console.print(f"{e.seq:>5} {e.at:%Y-%m-%d %H:%M:%S} {e.actor:<14} {e.action:<14} {e.subject} {e.payload}",
                      markup=False, highlight=False)


@app.command()
def lineage(plan_id: str, order: Annotated[str | None, typer.Option(help="Trace one order.")] = None) -> None:
    """The chain from a plan (or one of its orders) back to the input files, forecast and policy."""
    import json as _json

    from ballast.io.warehouse import open_warehouse, query_frame

    settings = Settings()
    with open_warehouse(settings.db_path, read_only=True) as con:
        plan = query_frame(con, "SELECT * FROM plans WHERE plan_id = ?", [plan_id])
        if plan.is_empty():
            console.print(f"no plan {plan_id!r}", markup=False)
            raise typer.Exit(code=1)
        p = plan.row(0, named=True)
        files = query_frame(
            con,
            """SELECT extract, file_name, sha256, strftime(as_of, '%Y-%m-%dT%H:%M:%SZ') AS as_of,
                      strftime(ingested_at, '%Y-%m-%dT%H:%M:%SZ') AS ingested_at, rows_read FROM ingest_files
               WHERE list_contains(CAST(? AS VARCHAR[]), sha256)""",
            [[v["sha256"] for v in _json.loads(p["inputs"]).values()]],
        )
        chosen = None
        if order:
            o = query_frame(con, "SELECT * FROM transfer_orders WHERE plan_id = ? AND order_id = ?", [plan_id, order])
            if o.is_empty():
                console.print(f"plan {plan_id} has no order {order}", markup=False)
                raise typer.Exit(code=1)
            chosen = o.row(0, named=True)
    if chosen:
        console.print(f"[bold]order {esc(order)}[/]: {chosen['qty']:,.0f} × " + esc(
            f"{chosen['sku']} {chosen['origin']}→{chosen['destination']} ship {chosen['ship_date']}"))
        console.print(f"  why: {chosen['explanation']}", markup=False)
        console.print(f"  reason data: {chosen['reason']}", markup=False, highlight=False)
    console.print(f"[bold]plan {plan_id}[/] as of {p['as_of']} ({p['mode']})")
    console.print(f"  policy {p['policy_version']} sha256 {p['policy_sha256'][:16]}…")
    console.print(f"  forecast run {p['forecast_run_id']} by {p['forecaster']}")
    console.print(f"  solver {_json.loads(p['solve']).get('rung')} · code {p['code_version']} · MLflow run {p['mlflow_run_id']}")
    console.print("  input files:")
    for f in files.iter_rows(named=True):
        console.print(f"    {f['extract']:<16} {f['file_name']}  sha256 {f['sha256'][:16]}…  as of {f['as_of']}, "
                      f"ingested {f['ingested_at']}, {f['rows_read']:,} rows  (archive: "
                      f"{settings.archive_dir / f['extract'] / f['file_name']})", markup=False, highlight=False)


@app.command()
def demo(
    now: NowOption = None,
) -> None:
    """Generate the default sample network (if nothing was delivered yet) and run one planning cycle on it."""
    settings = Settings()
    if not any(settings.inbox_dir.glob("*/*")) and not settings.db_path.exists():
        sample(size="S", seed=7, skus=None, hubs=None, days=None, fmt="mixed", as_of=None)
    run(now=now, refit=False, no_ingest=False, shadow=False, policy=None)


def _quiet_prefect() -> None:
    """Embedded defaults for Prefect: ephemeral API, no anonymous usage reporting, and time for
    the temporary API server to start on a busy 2-core machine (its default is 20 s)."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")


from ballast.cli_backfill import register as _register_backfill  # noqa: E402

_register_backfill(app)

from ballast.cli_twin import register as _register_twin  # noqa: E402

_register_twin(app)

from ballast.cli_rollout import register as _register_rollout  # noqa: E402

_register_rollout(app)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
