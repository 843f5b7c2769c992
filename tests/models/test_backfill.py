"""Backfill logic: the as-of schedule, skip/redo decisions and the closing summary."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ballast.models.backfill import (
    MAX_STEPS,
    StepOutcome,
    decide,
    forced_plan_id,
    parse_every,
    schedule,
    summarise,
)

T0 = datetime(2026, 11, 16, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(("text", "step"), [("15m", timedelta(minutes=15)), ("1h", timedelta(hours=1)),
                                            ("1d", timedelta(days=1)), (" 6h ", timedelta(hours=6))])
def test_parse_every_reads_minutes_hours_days(text, step):
    assert parse_every(text) == step


@pytest.mark.parametrize("text", ["", "1w", "h", "1.5h", "-1h", "0m", "15"])
def test_parse_every_rejects_what_it_cannot_read(text):
    with pytest.raises(ValueError, match="--every"):
        parse_every(text)


def test_schedule_includes_both_ends_at_the_step():
    # 7 days at 1-hour steps: the benchmark range
    times = schedule(T0, T0 + timedelta(days=7), timedelta(hours=1))
    assert len(times) == 7 * 24 + 1
    assert times[0] == T0 and times[-1] == T0 + timedelta(days=7)
    assert all(b - a == timedelta(hours=1) for a, b in zip(times, times[1:], strict=False))


def test_schedule_stops_at_the_last_step_not_after_end():
    times = schedule(T0, T0 + timedelta(minutes=50), timedelta(minutes=15))
    assert times == [T0 + timedelta(minutes=m) for m in (0, 15, 30, 45)]


def test_schedule_single_as_of_when_start_equals_end():
    assert schedule(T0, T0, timedelta(days=1)) == [T0]


def test_schedule_rejects_naive_times_reversed_ranges_and_huge_ranges():
    with pytest.raises(ValueError, match="timezone-aware"):
        schedule(T0.replace(tzinfo=None), T0, timedelta(hours=1))
    with pytest.raises(ValueError, match="before start"):
        schedule(T0, T0 - timedelta(hours=1), timedelta(hours=1))
    with pytest.raises(ValueError, match="exceed"):
        schedule(T0, T0 + timedelta(minutes=MAX_STEPS), timedelta(minutes=1))


def test_decide_plans_new_inputs_and_skips_same_inputs_unless_forced():
    fp = {"inventory": {"sha256": "a"}, "demand": {"sha256": "d", "files": 2}}
    other = {"inventory": {"sha256": "b"}, "demand": {"sha256": "d", "files": 2}}
    assert decide([], fp, force=False).plan
    assert decide([("P1", other)], fp, force=False).plan  # newer data at this as-of: plan again
    skip = decide([("P1", other), ("P2", fp)], fp, force=False)
    assert not skip.plan and skip.existing_plan_id == "P2" and "same inputs" in skip.reason
    redo = decide([("P2", fp)], fp, force=True)
    assert redo.plan and redo.existing_plan_id == "P2" and "--force" in redo.reason


def test_forced_plan_ids_never_reuse_an_id():
    assert forced_plan_id("Pabc", {"Pabc"}) == "Pabc-r1"
    assert forced_plan_id("Pabc", {"Pabc", "Pabc-r1", "Pabc-r2"}) == "Pabc-r3"


def test_summary_counts_each_status_and_lists_failures_in_as_of_order():
    outcomes = [
        StepOutcome(T0 + timedelta(hours=2), "failed", "P3", "engine failed: boom"),
        StepOutcome(T0, "planned", "P1"),
        StepOutcome(T0 + timedelta(hours=1), "skipped", "P2", "already planned"),
        StepOutcome(T0 + timedelta(hours=3), "blocked", None, "inventory: stale"),
        StepOutcome(T0 + timedelta(hours=4), "planned", "P5"),
    ]
    s = summarise("BF1", outcomes, seconds=120.0)
    assert (s.total, s.planned, s.skipped, s.blocked, s.failed) == (5, 2, 1, 1, 1)
    assert s.cycles_per_minute == pytest.approx(1.0)
    assert s.failures == (("2026-11-16T02:00Z", "engine failed: boom"), ("2026-11-16T03:00Z", "inventory: stale"))
    lines = s.lines()
    assert "2 planned, 1 skipped, 1 blocked, 1 failed" in lines[0] and len(lines) == 3
