from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from ballast.models.audit import next_entry, verify_chain

T0 = datetime(2026, 11, 23, 6, tzinfo=UTC)


def _chain(n: int):
    entries, prev = [], None
    for i in range(n):
        prev = next_entry(prev, T0 + timedelta(minutes=i), "ana.planner", "approve", f"plan-{i}", {"orders": [i]})
        entries.append(prev)
    return entries


def test_intact_chain_verifies():
    assert verify_chain(_chain(5)) == []


def test_edited_entry_is_detected():
    entries = _chain(5)
    entries[2] = replace(entries[2], payload='{"orders":[99]}')
    problems = verify_chain(entries)
    assert problems == ["entry 3: content does not match its hash (edited: approve plan-2)"]


def test_deleted_entry_is_detected():
    entries = _chain(5)
    del entries[1]
    problems = verify_chain(entries)
    assert any("entry 3: expected sequence number 2" in p for p in problems)
    assert any("entry 3: does not chain" in p for p in problems)


def test_rehashed_edit_still_breaks_the_next_link():
    entries = _chain(4)
    forged = next_entry(entries[0], entries[1].at, "mallory", "approve", "plan-1", {"orders": [1]})
    entries[1] = forged
    assert verify_chain(entries) == ["entry 3: does not chain to the entry before it (deleted, inserted or edited)"]
