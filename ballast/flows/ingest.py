"""The ingest flow: inbox → raw → gate → staged, with a gate report."""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import flow
from pydantic import BaseModel, ConfigDict

from ballast.models.policy import load_policy
from ballast.settings import Settings
from ballast.tasks.ingest import ingest_task, statistical_suite_task, validate_task


class IngestParams(BaseModel):
    """Deployment parameters: the clock to judge freshness by (default: now)."""

    model_config = ConfigDict(extra="forbid")
    now: datetime | None = None


@flow(name="ingest", log_prints=False)
def ingest_flow(params: IngestParams | None = None) -> dict[str, object]:
    """Ingest and validate every delivered extract; return the file outcomes and gate results."""
    params = params or IngestParams()
    settings = Settings()
    now = params.now or datetime.now(UTC)
    policy, _ = load_policy(settings.policy_path)
    report = ingest_task(settings, now)
    gates = validate_task(settings, policy, now)
    docs = statistical_suite_task(settings, policy, gates, now.strftime("%Y%m%dT%H%M%SZ"))
    return {"ingest": report, "gates": gates, "data_docs": docs}
