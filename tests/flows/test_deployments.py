"""prefect.yaml parses, its entrypoints are real flows, and its schedules say what we promise."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml
from prefect import Flow

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def deployments() -> dict[str, dict]:
    doc = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    return {d["name"]: d for d in doc["deployments"]}


def test_every_entrypoint_is_a_prefect_flow(deployments):
    for name, d in deployments.items():
        path, attr = d["entrypoint"].split(":")
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        assert isinstance(getattr(module, attr), Flow), name


def test_planning_cycle_runs_every_15_minutes_and_never_twice_at_once(deployments):
    cycle = deployments["planning-cycle"]
    [schedule] = cycle["schedules"]
    assert (schedule["cron"], schedule["timezone"]) == ("*/15 * * * *", "UTC")
    assert cycle["concurrency_limit"] == {"limit": 1, "collision_strategy": "CANCEL_NEW"}


def test_deployment_parameters_validate_against_the_flow(deployments):
    from ballast.flows.planning_cycle import CycleParams

    CycleParams.model_validate(deployments["planning-cycle"]["parameters"]["params"])
    with pytest.raises(ValueError, match="extra"):
        CycleParams.model_validate({**deployments["planning-cycle"]["parameters"]["params"], "horizon": 3})


@pytest.mark.slow
def test_deployment_registers_with_its_schedule_and_limit(prefect_harness):
    """Register the planning-cycle deployment with a real (test) Prefect API and read it back."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import ConcurrencyLimitStrategy
    from prefect.client.schemas.schedules import CronSchedule

    from ballast.flows.planning_cycle import planning_cycle

    deployment = planning_cycle.to_deployment(
        name="planning-cycle", cron="*/15 * * * *", concurrency_limit=1,
    )
    deployment.concurrency_options = {"collision_strategy": ConcurrencyLimitStrategy.CANCEL_NEW}
    deployment_id = deployment.apply()
    with get_client(sync_client=True) as client:
        stored = client.read_deployment(deployment_id)
    [schedule] = stored.schedules
    assert isinstance(schedule.schedule, CronSchedule) and schedule.schedule.cron == "*/15 * * * *"
    assert stored.global_concurrency_limit is not None and stored.global_concurrency_limit.limit == 1
    assert stored.concurrency_options.collision_strategy == ConcurrencyLimitStrategy.CANCEL_NEW
