"""kill -9 at many points of the cycle: nothing is lost, nothing is half-written, nothing is sent twice.

A seeded schedule kills the cycle at each named crash point (inside and after the ingest
transaction, inside and after the publish transaction, between the outbox files and their
delivery record) and at random moments with SIGKILL of the whole process group. After every
kill the warehouse must open, the audit chain verify and every plan and file be all or nothing;
after a clean rerun every delivered file is in the warehouse and every released order is in the
outbox exactly once.
"""

from __future__ import annotations

import random
import time

import pytest

from ballast.io.landing import MANIFEST_SUFFIX, sha256_of
from ballast.io.plans import pending_batches
from ballast.io.warehouse import open_warehouse
from ballast.settings import Settings
from tests.faults import cycle_process
from tests.faults.scenario import T0, deliver_inventory, deliver_network, stamp, write_policy
from tests.faults.warehouse_checks import consistency_problems, outbox_problems

SEED = 20261127
CRASH_POINTS = ("ingest_before_commit", "ingest_after_commit", "publish_before_commit", "publish_after_commit")
RANDOM_KILLS = 4


def _schedule(rng: random.Random, cycle_seconds: float) -> list[tuple[str, float | None]]:
    """(crash point, None) for each named point and ("sigkill", delay) for random kills, shuffled.

    Kill delays are spread over the length of a clean cycle on this machine, so they land in
    ingest, gates, forecast, solve and publish alike however fast or busy the machine is.
    """
    plan: list[tuple[str, float | None]] = [(p, None) for p in CRASH_POINTS]
    plan += [("sigkill", round(rng.uniform(0.05, 0.95) * cycle_seconds, 2)) for _ in range(RANDOM_KILLS)]
    rng.shuffle(plan)
    return plan


def _delivered(settings: Settings) -> dict[str, str]:
    return {p.name: sha256_of(p) for p in settings.inbox_dir.glob("*/*") if not p.name.endswith(MANIFEST_SUFFIX)}


def _check(settings: Settings, after: str) -> None:
    with open_warehouse(settings.db_path, wait_seconds=10) as con:  # read-write: replays DuckDB's WAL
        problems = consistency_problems(con)
    assert problems == [], f"after {after}: " + "\n".join(problems)


@pytest.mark.slow
def test_kill_9_anywhere_loses_nothing_and_sends_nothing_twice(ballast_home, api_url):
    # given: a warm warehouse (forecasts fitted, a first plan published, some orders awaiting approval)
    rng = random.Random(SEED)
    settings = Settings()
    # orders above 30 need approval: the plan's first-day moves (18–80 a move) include some either way
    write_policy(ballast_home, **{"approval.share_of_site_stock_above": 1.0, "approval.order_value_above": 30.0})
    deliver_network(settings.inbox_dir)
    delivered = _delivered(settings)
    t = time.monotonic()
    code, out = cycle_process.run(["run", "--now", stamp(T0)], ballast_home, api_url, "warm-up")
    assert code == 0, out
    print(f"warm-up cycle {time.monotonic() - t:.1f} s")  # noqa: T201
    with open_warehouse(settings.db_path, read_only=True) as con:
        first_plan, pending = con.execute(
            """SELECT plan_id, count(*) FILTER (WHERE approval_status = 'needs_approval' AND in_freeze_window)
               FROM transfer_orders GROUP BY plan_id"""
        ).fetchall()[0]
    assert pending > 0, "the scenario needs orders awaiting approval that an approval releases at once"

    # when: the approval that releases them dies between writing its outbox files and recording them
    code, out = cycle_process.run(
        ["approve", first_plan, "--by", "ana.planner", "--reason", "fault test"],
        ballast_home,
        api_url,
        "approve-crash",
        {"BALLAST_CRASH_AT": "outbox_after_files"},
    )
    assert code == 137, out
    _check(settings, "approve killed at outbox_after_files")
    with open_warehouse(settings.db_path, read_only=True) as con:
        assert pending_batches(con) == [f"{first_plan}-a2"], "released, files written, delivery not recorded"

    # and: a clean cycle on a new WMS snapshot finishes what the approval left and times a cycle
    as_of = deliver_inventory(settings.inbox_dir, 1)
    delivered |= _delivered(settings)
    t = time.monotonic()
    code, out = cycle_process.run(["run", "--now", stamp(as_of)], ballast_home, api_url, "timed")
    assert code == 0, out
    cycle_seconds = time.monotonic() - t
    _check(settings, "the timed clean cycle")

    # and: cycle after cycle, each on a new WMS snapshot, is killed somewhere
    fired: list[str] = []
    for step, (fault, delay) in enumerate(_schedule(rng, cycle_seconds), start=2):
        as_of = deliver_inventory(settings.inbox_dir, step)
        delivered |= _delivered(settings)
        env = {"BALLAST_CRASH_AT": fault} if delay is None else {}
        proc = cycle_process.start(["run", "--now", stamp(as_of)], ballast_home, api_url, f"{step}-{fault}", env)
        if delay is not None:
            proc.process.join(delay)
            if proc.process.exitcode is None:
                proc.kill()
                fired.append(f"sigkill@{delay}s")
        code = proc.wait(300)
        if delay is None:
            assert code == 137, f"crash point {fault} was not reached:\n{proc.output()}"
            fired.append(fault)
        else:
            assert code in (0, 137), proc.output()
        print(f"step {step} {fault} {delay} -> {code} in {time.monotonic() - proc.started:.1f} s")  # noqa: T201
        _check(settings, f"step {step} ({fault}{'' if delay is None else f' after {delay}s'})")

    # then: a clean rerun completes whatever the kills left behind
    t = time.monotonic()
    code, out = cycle_process.run(["run", "--now", stamp(as_of)], ballast_home, api_url, "clean-rerun")
    assert code == 0, out
    with open_warehouse(settings.db_path, read_only=True) as con:
        assert consistency_problems(con) == []
        assert outbox_problems(con, settings.outbox_dir) == []
        landed = dict(con.execute("SELECT file_name, sha256 FROM ingest_files WHERE status = 'landed'").fetchall())
        released = con.execute("SELECT count(*) FROM released_orders").fetchall()[0][0]
    assert landed == delivered, "every delivered file is in the warehouse exactly once"
    assert not [p for p in settings.inbox_dir.glob("*/*") if not p.name.startswith(".")], "inbox fully archived"
    assert released > 0
    assert len([f for f in fired if not f.startswith("sigkill")]) == len(CRASH_POINTS)
    assert any(f.startswith("sigkill") for f in fired), "no random kill landed before its cycle ended"
    rerun = time.monotonic() - t
    print(f"clean cycle {cycle_seconds:.1f} s; faults fired: {fired}; clean rerun {rerun:.1f} s; {released} released")  # noqa: T201
