"""Backfills as plain logic: the as-of schedule, what to do at each as-of, and the closing summary.

A backfill replays the planning cycle at every as-of from `start` to `end` (both included) at a
fixed step. Whether an as-of is planned again is decided from what the warehouse already holds:
a backfilled plan with the same inputs, policy and code is skipped unless `force` is given.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

logger = logging.getLogger(__name__)

MAX_STEPS = 20_000  # 208 days at 15-minute steps; a longer replay is run in pieces
_EVERY = re.compile(r"^\s*(\d+)\s*([mhd])\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}

Status = Literal["planned", "skipped", "blocked", "failed"]


def parse_every(text: str) -> timedelta:
    """'15m', '1h', '1d' (any whole number of minutes, hours or days) as a timedelta."""
    match = _EVERY.match(text or "")
    if match is None:
        raise ValueError(f"--every must be a number of minutes, hours or days such as 15m, 1h or 1d; got {text!r}")
    step = timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    if step < timedelta(minutes=1):
        raise ValueError(f"--every must be at least 1 minute; got {text!r}")
    return step


def schedule(start: datetime, end: datetime, every: timedelta) -> list[datetime]:
    """Every as-of from `start` to `end` inclusive, `every` apart (UTC-aware times only)."""
    for name, value in (("start", start), ("end", end)):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"{name} must be timezone-aware (e.g. 2026-11-23T06:00Z), got {value!r}")
    if end < start:
        raise ValueError(f"end {end.isoformat()} is before start {start.isoformat()}")
    if every <= timedelta(0):
        raise ValueError(f"the step must be positive, got {every}")
    n = int((end - start) / every) + 1
    if n > MAX_STEPS:
        raise ValueError(f"{n} as-of times from {start:%Y-%m-%dT%H:%MZ} to {end:%Y-%m-%dT%H:%MZ} exceed "
                         f"{MAX_STEPS}: use a longer step or split the range")
    return [start + i * every for i in range(n)]


def same_inputs(existing: dict, fingerprints: dict) -> bool:
    """Whether a stored plan's input fingerprints (JSON-decoded) are those of this replay."""
    return existing == fingerprints


@dataclass(frozen=True)
class Decision:
    plan: bool
    reason: str
    existing_plan_id: str | None = None


def decide(existing: list[tuple[str, dict]], fingerprints: dict, force: bool) -> Decision:
    """Plan this as-of, or skip it because a backfilled plan `existing` (id, inputs) already has its inputs.

    `existing` holds the backfilled plans at this as-of with the same policy and code version.
    """
    match = next((pid for pid, inputs in existing if same_inputs(inputs, fingerprints)), None)
    if match is None:
        return Decision(True, "not planned yet")
    if force:
        return Decision(True, f"--force: replanned although {match} has the same inputs", match)
    return Decision(False, f"already planned with the same inputs as {match}", match)


def forced_plan_id(base: str, taken: set[str]) -> str:
    """A new id for a forced redo of plan `base`: `base-r1`, `base-r2`, ... (plan ids are never reused)."""
    k = 1
    while f"{base}-r{k}" in taken:
        k += 1
    return f"{base}-r{k}"


@dataclass(frozen=True)
class StepOutcome:
    as_of: datetime
    status: Status
    plan_id: str | None = None
    reason: str | None = None
    seconds: float = 0.0
    kpis: dict = field(default_factory=dict)


@dataclass(frozen=True)
class BackfillSummary:
    backfill_id: str
    total: int
    planned: int
    skipped: int
    blocked: int
    failed: int
    seconds: float
    failures: tuple[tuple[str, str], ...]  # (as_of, reason) of blocked and failed as-ofs
    report: str | None = None

    @property
    def cycles_per_minute(self) -> float:
        """Planned as-ofs per minute of wall time (skips excluded)."""
        return self.planned / (self.seconds / 60.0) if self.seconds > 0 else 0.0

    def lines(self) -> list[str]:
        head = (f"backfill {self.backfill_id}: {self.total} as-of(s) — {self.planned} planned, {self.skipped} skipped, "
                f"{self.blocked} blocked, {self.failed} failed in {self.seconds:.0f} s "
                f"({self.cycles_per_minute:.2f} cycles/min)")
        return [head, *(f"  {as_of}: {reason}" for as_of, reason in self.failures)]


def summarise(
    backfill_id: str, outcomes: list[StepOutcome], seconds: float, report: str | None = None
) -> BackfillSummary:
    counts = Counter(o.status for o in outcomes)
    failures = tuple(
        (o.as_of.strftime("%Y-%m-%dT%H:%MZ"), o.reason or o.status)
        for o in sorted(outcomes, key=lambda o: o.as_of)
        if o.status in ("blocked", "failed")
    )
    return BackfillSummary(
        backfill_id, len(outcomes), counts["planned"], counts["skipped"], counts["blocked"], counts["failed"],
        seconds, failures, report,
    )
