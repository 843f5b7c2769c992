"""Prefect tasks around ingest and validation: open the warehouse, call the plain functions, log."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from ballast.io.data_docs import write_data_docs
from ballast.io.ingest import IngestReport, ingest_inbox
from ballast.io.staging import validate_pending
from ballast.io.warehouse import open_warehouse
from ballast.models.gates import GateResult
from ballast.models.policy import Policy
from ballast.settings import Settings


@task(name="ingest inbox")
def ingest_task(settings: Settings, now: datetime) -> IngestReport:
    """Land every delivered inbox file in the warehouse's raw tables."""
    logger = get_run_logger()
    with open_warehouse(settings.db_path) as con:
        report = ingest_inbox(con, settings.inbox_dir, settings.archive_dir, now)
    for outcome in report.outcomes:
        (logger.warning if outcome.status in ("rejected", "unrecognised") else logger.info)(outcome.message)
    return report


@task(name="validate extracts")
def validate_task(settings: Settings, policy: Policy, now: datetime) -> list[GateResult]:
    """Gate every landed file; stage what passes, quarantine what does not."""
    logger = get_run_logger()
    with open_warehouse(settings.db_path) as con:
        results = validate_pending(con, policy, now)
    for r in results:
        line = f"{r.extract} {r.file_name}: {r.outcome} ({r.rows_in} in, {r.rows_staged} staged, {r.rows_quarantined} quarantined)"
        (logger.warning if r.outcome == "block" else logger.info)(line + "".join(f"\n  {x}" for x in r.reasons))
    return results


@task(name="statistical suite (Great Expectations)", cache_policy=NO_CACHE)
def statistical_suite_task(settings: Settings, policy: Policy, gates: list[GateResult], run_name: str) -> Path | None:
    """Soft checks over the files staged in this run; writes Data Docs. Warns, never blocks."""
    logger = get_run_logger()
    report = write_data_docs(settings, policy, gates, run_name)
    if report is None:
        return None
    for failure in report.failures:
        logger.warning("soft check failed: %s.%s — %s", failure.suite, failure.check, failure.observed)
    logger.info("Data Docs: %s", report.docs_index)
    return report.docs_index
