"""`ballast backfill`: replay the planning cycle over a stretch of history (registered by `ballast.cli`)."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

console = Console(width=None if sys.stdout.isatty() else 160)
EXAMPLE = "2026-11-23T06:00Z"


def _time(value: str, name: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not an ISO-8601 time such as {EXAMPLE}", param_hint=name) from None
    if parsed.tzinfo is None:
        raise typer.BadParameter(f"{value!r} has no time zone; write it in UTC, e.g. {EXAMPLE}", param_hint=name)
    return parsed.astimezone(UTC)


def backfill(
    start: Annotated[str, typer.Option("--start", help="First as-of, ISO-8601 with zone (e.g. 2026-11-16T00:00Z).")],
    end: Annotated[str, typer.Option("--end", help="Last as-of (included), ISO-8601 with zone.")],
    every: Annotated[str, typer.Option("--every", help="Step between as-ofs: 15m, 1h, 1d (any whole m/h/d).")] = "1h",
    policy: Annotated[Path | None, typer.Option(
        help="What-if: plan every as-of under this policy file instead of the one in force then.")] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Replan as-ofs already backfilled with the same inputs.")] = False,
    dask: Annotated[bool, typer.Option(
        "--dask", help="Plan on a local Dask cluster (prefect-dask) instead of in this process.")] = False,
    workers: Annotated[int, typer.Option(help="Dask worker processes (and plans in flight).", min=1)] = 2,
    dask_address: Annotated[str | None, typer.Option(
        "--dask-address", help="Use a running Dask scheduler, e.g. tcp://scheduler:8786 (implies --dask).")] = None,
    no_report: Annotated[bool, typer.Option("--no-report", help="Skip the HTML report.")] = False,
) -> None:
    """Replay the planning cycle at every as-of from --start to --end, as the warehouse knew it then.

    Inputs, demand history, policy and forecasts are those known at each as-of (never data that arrived later).
    Backfilled plans are marked as such: never released, never in the outbox.

    As-ofs already backfilled with the same inputs are skipped (--force redoes them), so a killed backfill
    resumes where it stopped when run again. Exits 1 if any as-of failed.
    """
    from ballast.cli import _quiet_prefect

    _quiet_prefect()
    # One line per task run would bury the progress bar; warnings and errors still show.
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from ballast.flows.backfill import BackfillParams, progress_listener
    from ballast.flows.backfill import backfill as backfill_flow
    from ballast.io.cycle_lock import CycleBusy
    from ballast.models.backfill import parse_every, schedule

    t0, t1 = _time(start, "--start"), _time(end, "--end")
    try:
        schedule(t0, t1, parse_every(every))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if policy is not None and not policy.is_file():
        raise typer.BadParameter(f"policy file {policy} does not exist", param_hint="--policy")
    params = BackfillParams(start=t0, end=t1, every=every, policy=policy, force=force, dask=dask or bool(dask_address),
                            workers=workers, dask_address=dask_address, report=not no_report)
    progress = Progress(
        TextColumn("[bold]backfill"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[counts]}"),
        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=console, transient=False,
    )
    counts: dict[str, int] = {"planned": 0, "skipped": 0, "blocked": 0, "failed": 0}
    bar: dict[str, Any] = {}

    def on_event(event: str, payload: Any) -> None:
        if event == "start":
            bar["id"] = progress.add_task("backfill", total=payload, counts="")
            return
        counts[payload.status] += 1
        shown = " ".join(f"{k} {v}" for k, v in counts.items() if v)
        progress.update(bar["id"], advance=1, counts=shown)
        if payload.status == "failed":
            progress.console.print(f"[red]failed[/] {payload.as_of:%Y-%m-%dT%H:%MZ}: {payload.reason}")

    with progress, progress_listener(on_event):
        state = backfill_flow(params, return_state=True)
    if not state.is_completed():
        try:
            state.result()
        except CycleBusy as exc:
            console.print(f"[bold yellow]not run[/]: {exc}")
            raise typer.Exit(code=3) from None
        raise
    summary = state.result()
    head, *failures = summary.lines()
    style = "bold green" if not summary.failed else "bold red"
    console.print(f"[{style}]{head}[/]")
    for line in failures:
        console.print(line)
    if summary.report:
        console.print(f"report: {summary.report}")
    if summary.failed:
        raise typer.Exit(code=1)


def register(app: typer.Typer) -> None:
    """Add `backfill` to the `ballast` command line."""
    app.command("backfill")(backfill)
