"""Safe rollout, the pure part: which version is champion after a history of role changes, who
may switch versions, and how a challenger's plan compares with the champion's.

A champion history is a stack: a promotion (or the baseline recorded before the first one)
pushes a version, a rollback pops back to the one before it. Replaying the history up to any
moment gives the version in force then, which is how a backfill replays the past exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final, Literal

import polars as pl

from ballast.models.governance import NotAllowed
from ballast.models.plan_diff import diff_orders
from ballast.models.policy import Policy

Kind = Literal["policy", "forecaster"]
KINDS: Final = ("policy", "forecaster")
PUSHES: Final = frozenset({"baseline", "promote"})

# KPIs shown side by side in the champion's report: (key, label, better when higher?)
COMPARED_KPIS: Final = (
    ("expected_fill_rate", "expected fill rate", True),
    ("transport_cost", "transport cost", False),
    ("plan_objective", "objective", False),
    ("transfers", "transfers", None),
    ("purchases", "purchases", None),
    ("orders_needing_approval", "orders needing approval", False),
)


@dataclass(frozen=True, slots=True)
class VersionEvent:
    """One row of the rollout registry: a version taking (or leaving) a role."""

    seq: int
    kind: str
    role: str  # champion | challenger
    action: str  # baseline | promote | rollback | set_challenger | clear_challenger
    ref: str | None  # policy sha256 | forecaster model version; None when a role is cleared
    label: str | None  # policy `version` field | registered model name/version
    yaml_text: str | None
    since: datetime
    by: str
    reason: str
    audit_seq: int


def champion_stack(events: Iterable[VersionEvent], kind: str, at: datetime | None = None) -> list[VersionEvent]:
    """The champion stack of `kind` after replaying its history (up to `at`); the top is in force."""
    stack: list[VersionEvent] = []
    for e in sorted(events, key=lambda e: e.seq):
        if e.kind != kind or e.role != "champion" or (at is not None and e.since > at):
            continue
        if e.action in PUSHES:
            stack.append(e)
        elif e.action == "rollback" and len(stack) > 1:
            stack.pop()
            # The rollback row names the restored version (and its text): keep it as the top.
            stack[-1] = e
    return stack


def current_challenger(events: Iterable[VersionEvent], kind: str) -> VersionEvent | None:
    """The registered challenger of `kind`, or None (never set, cleared or promoted)."""
    latest = None
    for e in sorted(events, key=lambda e: e.seq):
        if e.kind == kind and e.role == "challenger":
            latest = e
    return latest if latest is not None and latest.ref is not None else None


def check_rollout_role(
    by: str, in_force: Policy, author_of_new: str | None = None, registered_by: tuple[str, ...] = ()
) -> None:
    """Promotion and rollback are for planners of the policy in force; nobody promotes their own policy.

    "Their own" is both the author the policy file names and whoever registered the challenger
    (the file's `author:` is self-declared; the registry's `by` is what we recorded).
    """
    if not by.strip():
        raise NotAllowed("say who switches versions (--by)")
    if by not in in_force.approval.planners:
        raise NotAllowed(
            f"{by!r} does not hold the planner role in policy {in_force.version} "
            f"(planners: {', '.join(in_force.approval.planners) or 'none'}); only planners promote or roll back"
        )
    if author_of_new is not None and by == author_of_new:
        raise NotAllowed(f"{by!r} wrote the challenger policy and may not promote it (maker-checker)")
    if by in registered_by:
        raise NotAllowed(f"{by!r} registered the challenger and may not promote it (maker-checker)")


@dataclass(frozen=True)
class Comparison:
    """Champion against challenger on the same inputs."""

    kpis: tuple[tuple[str, float | int | None, float | int | None, str], ...]  # label, champion, challenger, verdict
    changes: pl.DataFrame  # diff_orders(champion, challenger)
    counts: dict[str, int]  # added / removed / changed / same


def compare_plans(
    champion_kpis: dict, challenger_kpis: dict, champion_orders: pl.DataFrame, challenger_orders: pl.DataFrame
) -> Comparison:
    """KPIs side by side (with which side is better where it is clear) and the order-level diff."""
    rows = []
    for key, label, higher in COMPARED_KPIS:
        a, b = champion_kpis.get(key), challenger_kpis.get(key)
        rows.append((label, a, b, _verdict(a, b, higher)))
    changes = diff_orders(champion_orders, challenger_orders) if champion_orders.height or challenger_orders.height \
        else pl.DataFrame({"change": []}, schema={"change": pl.String})
    counts = {c: int((changes.get_column("change") == c).sum()) for c in ("added", "removed", "changed")}
    counts["same"] = champion_orders.height - counts["removed"] - counts["changed"]
    return Comparison(tuple(rows), changes, counts)


def _verdict(a: object, b: object, higher: bool | None) -> str:
    if not isinstance(a, int | float) or not isinstance(b, int | float) or higher is None:
        return ""
    if abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b)):
        return "same"
    return "challenger better" if (b > a) == higher else "champion better"


def kinds_or_all(kinds: Sequence[str] | None) -> tuple[str, ...]:
    """Validated kinds (all when none given)."""
    chosen = tuple(kinds) if kinds else KINDS
    unknown = sorted(set(chosen) - set(KINDS))
    if unknown:
        raise ValueError(f"unknown version kind(s) {', '.join(unknown)}; known: {', '.join(KINDS)}")
    return chosen
