"""Two writers at once: one cycle writes, the other exits clearly; a held warehouse makes a writer
wait, then fail with a message that says what to do."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ballast.io.cycle_lock import cycle_lock
from ballast.io.warehouse import WarehouseBusy, open_warehouse
from ballast.settings import Settings
from tests.faults import cycle_process
from tests.faults.scenario import T0, deliver_network, stamp, write_policy
from tests.faults.warehouse_checks import consistency_problems

HOLD = textwrap.dedent(
    """
    import sys, time, duckdb
    con = duckdb.connect(sys.argv[1])          # a write connection: DuckDB locks the file
    con.execute("CREATE TABLE IF NOT EXISTS held (x INTEGER)")
    print("holding", flush=True)
    time.sleep(float(sys.argv[2]))
    con.close()
    """
)


def _hold_warehouse(db: Path, seconds: float) -> subprocess.Popen:
    """Another process holding the DuckDB file with a write connection for `seconds`."""
    db.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(db), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "holding"
    return proc


def test_a_writer_fails_clearly_when_the_warehouse_stays_held(ballast_home):
    db = Settings().db_path
    holder = _hold_warehouse(db, 30)
    try:
        started = time.monotonic()
        with pytest.raises(WarehouseBusy, match=r"held by another process \(waited 2 s\); wait for it to finish"):
            with open_warehouse(db, wait_seconds=2, poll_seconds=0.2):
                pass
        assert 2.0 <= time.monotonic() - started < 10
    finally:
        holder.kill()
        holder.wait()


def test_a_writer_retries_until_the_holder_lets_go(ballast_home):
    db = Settings().db_path
    holder = _hold_warehouse(db, 1.5)
    try:
        started = time.monotonic()
        with open_warehouse(db, wait_seconds=30, poll_seconds=0.2) as con:
            assert con.execute("SELECT count(*) FROM held").fetchall() == [(0,)]  # the holder's write is there
        assert time.monotonic() - started >= 0.5, "the warehouse was not actually held"
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.slow
def test_a_cycle_on_a_held_warehouse_exits_3_naming_the_warehouse(ballast_home, api_url):
    deliver_network(Settings().inbox_dir)
    # held until the cycle has returned (killed below), however long the cycle process takes to start:
    # a fixed 60 s hold let a cycle started on a loaded machine find the warehouse free and plan
    holder = _hold_warehouse(Settings().db_path, 3600)
    try:
        code, out = cycle_process.run(
            ["run", "--now", stamp(T0)], ballast_home, api_url, "held", {"BALLAST_DB_WAIT_SECONDS": "2"}
        )
    finally:
        holder.kill()
        holder.wait()
    assert code == 3, out
    assert "not run" in out and "is held by another process (waited 2 s)" in out, out
    assert "Traceback" not in out.split("not run")[-1]
    with open_warehouse(Settings().db_path, read_only=True) as con:
        assert con.execute("SELECT table_name FROM information_schema.tables").fetchall() == [("held",)], "untouched"


@pytest.mark.slow
def test_a_second_cycle_exits_3_while_another_holds_the_cycle_lock(ballast_home, api_url):
    deliver_network(Settings().inbox_dir)
    with cycle_lock(Settings().db_path, "backfill started by hand"):
        code, out = cycle_process.run(["run", "--now", stamp(T0)], ballast_home, api_url, "busy")
    assert code == 3, out
    assert "another ballast cycle is writing" in out and "backfill started by hand" in out, out
    assert not Settings().db_path.exists(), "it wrote nothing, not even an empty warehouse"


@pytest.mark.slow
def test_two_cycles_started_together_publish_one_plan(ballast_home, api_url):
    write_policy(ballast_home)
    deliver_network(Settings().inbox_dir)
    procs = [cycle_process.start(["run", "--now", stamp(T0)], ballast_home, api_url, f"twin-{i}") for i in (1, 2)]
    codes = sorted(p.wait(300) for p in procs)
    outputs = "\n----\n".join(p.output() for p in procs)
    # the loser either found the lock taken (3) or, if it came after the winner, nothing new to do (0)
    assert codes in ([0, 3], [0, 0]), outputs
    if codes == [0, 3]:
        assert "another ballast cycle is writing" in outputs
    with open_warehouse(Settings().db_path, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM plans").fetchall() == [(1,)]
        assert con.execute("SELECT count(*) FROM cycle_runs WHERE outcome = 'published'").fetchall() == [(1,)]
        assert consistency_problems(con) == []
