"""Run the soft statistical suite over what a validation run staged and write Data Docs."""

from __future__ import annotations

from ballast.io.expectations import SuiteReport, SuiteThresholds, run_statistical_suite
from ballast.io.staging import staged_frames
from ballast.io.warehouse import open_warehouse
from ballast.models.gates import GateResult
from ballast.models.policy import Policy
from ballast.settings import Settings


def write_data_docs(settings: Settings, policy: Policy, gates: list[GateResult], run_name: str) -> SuiteReport | None:
    """Great Expectations over the files staged by `gates` (None if nothing was staged)."""
    staged_ids = {g.extract: g.file_id for g in gates if g.outcome != "block"}
    if not staged_ids:
        return None
    with open_warehouse(settings.db_path, read_only=True) as con:
        staged, reference = staged_frames(con, staged_ids)
    docs_dir = settings.reports_dir / "data-docs" / run_name
    return run_statistical_suite(staged, reference, docs_dir, run_name, thresholds=SuiteThresholds.from_policy(policy))
