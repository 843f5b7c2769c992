"""Prefect tasks around the rebalancing engine: one mapped task per hub agent, one per SKU-group bin.

The logic is `ballast.models.engine.plan_network`; these tasks only hand it Prefect mappers, so a
Dask or Ray task runner (prefect-dask / prefect-ray) spreads the agents and the solves of a flow.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import polars as pl
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from ballast.models.agents import AgentReport, SiteSlice, run_agent
from ballast.models.engine import EngineOptions, EngineResult, plan_network
from ballast.models.ladder import LadderOptions, SolveRecord, solve_with_ladder
from ballast.models.negotiation import LocalRules
from ballast.models.network import NetworkInputs
from ballast.models.policy import Policy


@task(name="hub agent", cache_policy=NO_CACHE)
def hub_agent_task(site: SiteSlice) -> AgentReport:
    """One site states its surplus or deficit per SKU and proposes moves."""
    return run_agent(site)


@task(name="solve SKU group", cache_policy=NO_CACHE)
def solve_group_task(inputs: NetworkInputs, options: LadderOptions) -> tuple[pl.DataFrame, SolveRecord]:
    """Solve one independent SKU-group bin down the fallback ladder; the plan comes back verified."""
    flows, record = solve_with_ladder(inputs, options)
    logger = get_run_logger()
    (logger.info if record.rung in ("mip", "incumbent") else logger.warning)(
        "group of %d SKUs: rung %s, %s, gap %s, %d columns",
        len(inputs.items),
        record.rung,
        record.termination,
        record.mip_gap,
        record.columns,
    )
    return flows, record


def _map_agents(slices: Sequence[SiteSlice]) -> list[AgentReport]:
    return [f.result() for f in hub_agent_task.map(list(slices))]


def _map_groups(groups: Sequence[NetworkInputs], options: LadderOptions) -> list[tuple[pl.DataFrame, SolveRecord]]:
    futures = [solve_group_task.submit(g, options) for g in groups]
    return [f.result() for f in futures]


@task(name="coordinate network", cache_policy=NO_CACHE)
def coordinate_task(
    frames: dict[str, pl.DataFrame],
    forecasts: pl.DataFrame,
    targets: pl.DataFrame,
    policy: Policy,
    as_of: date,
    released_orders: pl.DataFrame | None = None,
    local_rules: dict[str, LocalRules] | None = None,
    options: EngineOptions | None = None,
    previous_orders: pl.DataFrame | None = None,
) -> EngineResult:
    """Agents (mapped) → coordinator (one mapped solve per SKU-group bin) → negotiation → explained orders."""
    logger = get_run_logger()
    result = plan_network(
        frames,
        forecasts,
        targets,
        policy,
        as_of,
        released_orders=released_orders,
        previous_orders=previous_orders,
        local_rules=local_rules,
        options=options or EngineOptions(),
        map_agents=_map_agents,
        solve_groups=_map_groups,
    )
    r = result.record
    (logger.info if result.verification.ok else logger.error)(
        "plan: %d orders, rung %s (%s), gap %s, verified %s; build %.2fs handoff %.2fs solve %.2fs extract %.2fs",
        result.orders.height,
        r.rung,
        r.termination,
        r.mip_gap,
        result.verification.ok,
        r.build_seconds,
        r.handoff_seconds,
        r.solve_seconds,
        r.extract_seconds,
    )
    for alert in r.alerts:
        logger.warning(alert)
    return result
