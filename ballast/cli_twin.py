"""`ballast simulate`: the digital twin from the command line (registered on the main app)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console()


def _seeds(seed: int | None, seeds: int | None) -> tuple[int, ...]:
    if seed is not None and seeds is not None:
        raise typer.BadParameter("give --seed S or --seeds K, not both")
    if seeds is not None:
        if seeds < 1:
            raise typer.BadParameter("--seeds must be >= 1")
        return tuple(range(1, seeds + 1))
    return (seed if seed is not None else 1,)


def simulate(
    scenario: Annotated[str, typer.Option(help="A scenario name, a comma-separated list, or 'all'.")] = "steady",
    days: Annotated[int | None, typer.Option(help="Simulated days (default: the twin settings').")] = None,
    seed: Annotated[int | None, typer.Option(help="One evaluation seed.")] = None,
    seeds: Annotated[int | None, typer.Option(help="Evaluate seeds 1..K.")] = None,
    policy: Annotated[
        Path | None, typer.Option(help="The ballast policy under test (default: the home's policy).")
    ] = None,
    policies: Annotated[
        str, typer.Option(help="Comma-separated: ballast,no_transfers,reactive,bound.")
    ] = "ballast,no_transfers,reactive,bound",
    twin: Annotated[
        Path | None, typer.Option(help="Twin settings file (default: ballast/models/twin/defaults.yaml).")
    ] = None,
    size: Annotated[
        str | None, typer.Option(help="Simulate a named sample network (S, M, L) instead of the twin's small one.")
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Folder under BALLAST_HOME/simulations (default: sim-<UTC time>).")
    ] = None,
) -> None:
    """Simulate the network day by day: the real planning cycle against baselines and the perfect-information bound."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
    from ballast.models.twin.scenarios import scenario_names

    try:
        names = scenario_names(scenario)
    except KeyError as exc:
        raise typer.BadParameter(str(exc.args[0])) from None
    chosen_seeds = _seeds(seed, seeds)

    from ballast.flows.simulate import SimulateParams
    from ballast.flows.simulate import simulate as simulate_flow
    from ballast.io.twin_report import markdown_table
    from ballast.io.twin_store import SimulationHome, load_results
    from ballast.settings import Settings

    params = SimulateParams(
        name=name or f"sim-{datetime.now(UTC):%Y%m%dT%H%M%S}",
        scenarios=tuple(names),
        seeds=chosen_seeds,
        days=days,
        policy=policy,
        twin=twin,
        size=size,
        policies=tuple(p.strip() for p in policies.split(",") if p.strip()),
        progress=True,
    )
    out = simulate_flow(params)
    runs, _ = load_results(SimulationHome(Path(out["root"])))
    typer.echo(markdown_table(runs))
    console.print(f"[bold green]simulation[/] {params.name}: {out['runs']} runs · report {out['report']}")
    console.print(
        f"results: {Path(out['root']) / 'results.duckdb'} · MLflow: {Settings(home=Path(out['root'])).tracking_uri}"
        " (experiment ballast-twin)",
        markup=False,
    )


def simulate_report(
    paths: Annotated[
        list[Path],
        typer.Argument(help="Simulation folders, or BALLAST_HOMEs whose simulations/ to take them all from."),
    ],
    out: Annotated[Path, typer.Option(help="Where to write the merged HTML report.")] = Path("simulation-report.html"),
) -> None:
    """One table and report over simulations run apart (e.g. seeds run side by side in separate homes)."""
    from ballast.io.twin_report import markdown_table, render_twin_report
    from ballast.io.twin_store import load_many
    from ballast.models.twin.criterion import criterion_markdown, criterion_table

    try:
        runs, daily = load_many(paths)
    except (FileNotFoundError, ValueError) as exc:
        console.print(f"[bold red]cannot merge:[/] {exc}")
        raise typer.Exit(1) from None
    if runs.is_empty():
        console.print("[bold red]cannot merge:[/] the simulations recorded no runs")
        raise typer.Exit(1)
    typer.echo(criterion_markdown(criterion_table(runs)) + "\n\n" + markdown_table(runs))
    name = f"{runs['simulation'].n_unique()} simulations"
    render_twin_report(name, runs, daily, out)
    console.print(f"[bold green]report[/] {out} · {runs.height} runs")


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate)
    app.command("simulate-report")(simulate_report)
