"""Plan lineage in MLflow: each published plan is a run that ties its orders to their inputs.

The run carries the digest of every staged extract the plan read (`mlflow.log_input`), the
policy file and version, the forecast run and forecaster version, the solver record and times,
the plan's KPIs, and the plan, its orders and its report as artifacts; tags name the plan id
and the Prefect flow run.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import polars as pl

from ballast.io import tracking
from ballast.settings import Settings


@contextmanager
def plan_run(settings: Settings, plan_id: str, mode: str, as_of: str, flow_run_id: str | None) -> Iterator[str]:
    """An MLflow run for one plan in the `ballast` experiment; yields its run id."""
    tags = {"plan_id": plan_id, "kind": "plan", "mode": mode, "as_of": as_of}
    if flow_run_id:
        tags["prefect_flow_run_id"] = flow_run_id
    with tracking.start_run(settings, run_name=f"plan-{plan_id}", tags=tags) as run:
        yield run.info.run_id


def log_plan_lineage(
    settings: Settings, plan: dict, orders: pl.DataFrame, policy_path: Path, report_path: Path | None
) -> None:
    """Log inputs, parameters, metrics and artifacts of `plan` into the active plan run."""
    import mlflow

    solve = plan["solve"]
    mlflow.log_params(
        {
            "policy_version": plan["policy_version"],
            "policy_sha256": plan["policy_sha256"],
            "code_version": plan["code_version"],
            "forecast_run_id": plan["forecast_run_id"],
            "forecaster": plan["forecaster"],
            "rung": solve.get("rung"),
            "solver_status": solve.get("status"),
        }
    )
    numeric = {k: float(v) for k, v in plan["kpis"].items() if isinstance(v, int | float)}
    for key in ("build_seconds", "handoff_seconds", "solve_seconds", "extract_seconds", "objective", "mip_gap"):
        if isinstance(solve.get(key), int | float):
            numeric[f"solver_{key}"] = float(solve[key])
    mlflow.log_metrics(numeric)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MLflow notes the source type of a local path
        for extract, fp in sorted(plan["inputs"].items()):
            dataset = mlflow.data.from_polars(
                pl.DataFrame({"extract": [extract], "file_name": [fp.get("file_name") or ""], "sha256": [fp["sha256"]]}),
                source=str(settings.archive_dir / extract / (fp.get("file_name") or "")),
                name=extract,
                digest=fp["sha256"][:16],
            )
            mlflow.log_input(dataset, context="planning")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        orders.write_csv(out / "orders.csv")
        (out / "plan.json").write_text(json.dumps(plan, indent=2, default=str))
        mlflow.log_artifacts(str(out), artifact_path="plan")
    mlflow.log_artifact(str(policy_path), artifact_path="policy")
    if report_path is not None and report_path.exists():
        mlflow.log_artifact(str(report_path), artifact_path="report")
