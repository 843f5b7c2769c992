"""May a cycle plan? The hard stop before any plan (DESIGN.md §6).

No plan is published from data that failed a hard gate or is older than its staleness budget:
the cycle says why and the previous plan stays in force.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ballast.models.contract import EXTRACTS
from ballast.models.policy import Policy


@dataclass(frozen=True, slots=True)
class LatestFile:
    """The newest file of an extract delivered as of the cycle, and its gate outcome."""

    extract: str
    file_name: str
    as_of: datetime
    outcome: str


def readiness_problems(
    latest: list[LatestFile], passing_as_of: dict[str, datetime], as_of: datetime, policy: Policy
) -> list[str]:
    """Every reason the cycle must not plan; empty when it may.

    `latest` holds each extract's newest gated file; `passing_as_of` the as_of of each
    extract's newest file that passed its gate.
    """
    problems: list[str] = []
    for f in latest:
        if f.outcome == "block":
            problems.append(f"{f.extract}: latest file {f.file_name} was blocked by its quality gate")
    for name, spec in EXTRACTS.items():
        have = passing_as_of.get(name)
        if have is None:
            if not spec.optional:
                problems.append(f"{name}: no file has passed its quality gate yet")
            continue
        budget = policy.staleness_budget(name)
        if budget is not None:
            age = (as_of - have).total_seconds() / 3600
            if age > budget:
                problems.append(
                    f"{name}: newest good snapshot is from {have:%Y-%m-%dT%H:%M:%SZ}, {age:.1f} h before the "
                    f"cycle's as-of, beyond the {budget:g} h staleness budget"
                )
    return problems
