"""`ballast challenger …`, `ballast promote`, `ballast rollback`, `ballast champion`: safe rollout.

A challenger (a policy file and/or a registered forecaster version) runs in shadow beside the
champion in every live cycle; its plans are recorded and compared, never released. Planners
promote it, or roll back to the champion before, and every switch is in the audit log.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ballast.settings import Settings

ByOption = Annotated[str, typer.Option("--by", help="Who makes the change (kept in the audit log).")]
ReasonOption = Annotated[str, typer.Option("--reason", help="Why (kept in the audit log).")]
KindOption = Annotated[
    str | None,
    typer.Option("--kind", help="policy or forecaster (default: every kind registered, or the last promoted)."),
]


def _console():  # noqa: ANN202 - the CLI's rich console
    from ballast.cli import console

    return console


def _refuse(exc: Exception) -> typer.Exit:
    _console().print(f"[bold red]refused[/]: {exc}", highlight=False)
    return typer.Exit(code=1)


def _check_forecaster(settings: Settings, version: str) -> str:
    """The registered model name, if `version` of the forecaster exists; else a clear refusal."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from ballast.io import tracking

    tracking.init_tracking(settings)
    try:
        MlflowClient().get_model_version(tracking.FORECASTER_MODEL, version)
    except MlflowException as exc:
        raise _refuse(ValueError(
            f"forecaster version {version!r} is not in the model registry {settings.tracking_uri} "
            f"({tracking.FORECASTER_MODEL}); see `ballast forecast` runs"
        )) from exc
    return tracking.FORECASTER_MODEL


def challenger_set(
    by: ByOption,
    reason: ReasonOption,
    policy: Annotated[Path | None, typer.Option("--policy", help="A challenger policy file.")] = None,
    forecaster: Annotated[
        str | None, typer.Option("--forecaster", help="A registered forecaster version (MLflow model registry).")
    ] = None,
) -> None:
    """Register a challenger: it plans in shadow beside the champion in every live cycle, never released."""
    from ballast.io import rollout
    from ballast.io.warehouse import open_warehouse
    from ballast.models.policy import PolicyError

    settings = Settings()
    if policy is None and forecaster is None:
        raise _refuse(ValueError("name a challenger: --policy FILE and/or --forecaster VERSION"))
    if policy is not None and not policy.is_file():
        raise _refuse(FileNotFoundError(f"no policy file {policy}"))
    fc = (_check_forecaster(settings, forecaster), forecaster) if forecaster is not None else None
    with open_warehouse(settings.db_path) as con:
        try:
            ch = rollout.set_challenger(con, by=by, reason=reason, policy_path=policy, forecaster=fc)
        except (rollout.RolloutError, PolicyError) as exc:
            raise _refuse(exc) from None
    _console().print(f"challenger: {ch.describe()} — runs in shadow from the next live cycle", highlight=False)


def challenger_clear(by: ByOption, reason: ReasonOption, kind: KindOption = None) -> None:
    """Stop running the challenger in shadow."""
    from ballast.io import rollout
    from ballast.io.warehouse import open_warehouse

    with open_warehouse(Settings().db_path) as con:
        try:
            cleared = rollout.clear_challenger(con, by=by, reason=reason, kinds=[kind] if kind else None)
        except (rollout.RolloutError, ValueError) as exc:
            raise _refuse(exc) from None
    _console().print(f"challenger cleared: {', '.join(cleared)}")


def challenger_show(limit: Annotated[int, typer.Option(help="The last N shadow plans.")] = 10) -> None:
    """The registered challenger and its latest shadow plans beside the champion's."""
    from ballast.io import rollout
    from ballast.io.warehouse import open_warehouse

    console = _console()
    settings = Settings()
    if not settings.db_path.exists():
        console.print("no challenger registered (no warehouse yet)")
        return
    with open_warehouse(settings.db_path, read_only=True) as con:
        ch = rollout.challenger(con)
        runs = rollout.challenger_plans(con)
    if ch is None:
        console.print("no challenger registered")
    else:
        console.print(f"challenger in shadow: {ch.describe()}", highlight=False)
        for kind, v in (("policy", ch.policy), ("forecaster", ch.forecaster)):
            if v is not None:
                console.print(f"  {kind}: set {v.since:%Y-%m-%d %H:%M} UTC by {v.by} — {v.reason}", highlight=False)
    if not runs.is_empty():
        table = Table(title="shadow plans beside champion plans")
        for col in ("recorded (UTC)", "champion plan", "shadow plan", "status", "note"):
            table.add_column(col, overflow="fold")
        for r in runs.head(limit).iter_rows(named=True):
            table.add_row(f"{r['recorded_at']:%Y-%m-%d %H:%M}", r["champion_plan_id"], r["plan_id"] or "—",
                          r["status"], r["note"] or "")
        console.print(table)


def promote(by: ByOption, reason: ReasonOption, kind: KindOption = None) -> None:
    """Make the registered challenger champion (planners only; not the challenger policy's author)."""
    from ballast.io import rollout
    from ballast.io.warehouse import open_warehouse
    from ballast.models.governance import NotAllowed

    settings = Settings()
    with open_warehouse(settings.db_path) as con:
        try:
            events = rollout.promote(con, settings, by=by, reason=reason, kinds=[kind] if kind else None)
        except (rollout.RolloutError, NotAllowed, ValueError) as exc:
            raise _refuse(exc) from None
    for e in events:
        _console().print(f"[bold green]promoted[/] {e.kind} {e.label} ({e.ref[:12] if e.ref else ''}) by {by}: "
                         "the next live cycle plans with it", highlight=False)


def rollback(by: ByOption, reason: ReasonOption, kind: KindOption = None) -> None:
    """Go back to the champion before the current one (planners only)."""
    from ballast.io import rollout
    from ballast.io.warehouse import open_warehouse
    from ballast.models.governance import NotAllowed

    settings = Settings()
    with open_warehouse(settings.db_path) as con:
        try:
            e = rollout.rollback(con, settings, by=by, reason=reason, kind=kind)
        except (rollout.RolloutError, NotAllowed, ValueError) as exc:
            raise _refuse(exc) from None
    _console().print(f"[bold yellow]rolled back[/] {e.kind} to {e.label} ({(e.ref or '')[:12]}) by {by}",
                     highlight=False)


def champion(limit: Annotated[int, typer.Option(help="The last N registry entries.")] = 20) -> None:
    """What is in force (policy and forecaster) and the history of role changes."""
    from ballast.io import rollout
    from ballast.io.warehouse import open_warehouse
    from ballast.models.policy import load_policy

    console = _console()
    settings = Settings()
    policy_v = forecaster_v = None
    hist = None
    if settings.db_path.exists():
        with open_warehouse(settings.db_path, read_only=True) as con:
            policy_v, forecaster_v, hist = rollout.champion_policy(con), rollout.champion_forecaster(con), \
                rollout.history(con)
    if policy_v is not None:
        console.print(f"policy in force: {policy_v.version} (sha256 {policy_v.sha256[:12]}…), champion since "
                      f"{policy_v.since:%Y-%m-%d %H:%M} UTC by {policy_v.by} — {policy_v.reason}", highlight=False)
    else:
        policy, sha = load_policy(settings.policy_path)
        console.print(f"policy in force: {policy.version} (sha256 {sha[:12]}…) from {settings.policy_path} "
                      "(nothing promoted yet)", highlight=False)
    if forecaster_v is not None:
        console.print(f"forecaster in force: {forecaster_v.name}/{forecaster_v.version}, champion since "
                      f"{forecaster_v.since:%Y-%m-%d %H:%M} UTC by {forecaster_v.by}", highlight=False)
    else:
        console.print("forecaster in force: the `champion` alias of the registered forecaster (nothing promoted here)")
    if hist is not None and not hist.is_empty():
        table = Table(title="rollout history (newest first)")
        for col in ("when (UTC)", "kind", "role", "action", "version", "by", "reason", "audit #"):
            table.add_column(col, overflow="fold")
        for r in hist.head(limit).iter_rows(named=True):
            table.add_row(f"{r['since']:%Y-%m-%d %H:%M}", r["kind"], r["role"], r["action"], r["label"] or "—",
                          r["by"], r["reason"], str(r["audit_seq"]))
        console.print(table)


def register(app: typer.Typer) -> None:
    """Add the rollout commands to the `ballast` app."""
    challenger_app = typer.Typer(help="A challenger policy or forecaster in shadow: set, clear, show.",
                                 no_args_is_help=True)
    challenger_app.command("set")(challenger_set)
    challenger_app.command("clear")(challenger_clear)
    challenger_app.command("show")(challenger_show)
    app.add_typer(challenger_app, name="challenger")
    app.command("promote")(promote)
    app.command("rollback")(rollback)
    app.command("champion")(champion)
