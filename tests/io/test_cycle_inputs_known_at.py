"""Inputs as known at a time: files that arrived later are invisible to a replay of an earlier as-of."""

from __future__ import annotations

from datetime import timedelta

import polars as pl

from ballast.io.cycle_inputs import latest_files, read_cycle_inputs
from ballast.io.warehouse import open_warehouse
from ballast.settings import Settings
from tests.history import T0, build_history, demand_for_day, ingest_at, land, later_snapshots

SPIKE = 50.0


def test_a_late_file_about_the_past_and_future_demand_are_not_seen_by_a_replay(ballast_home):
    # given: the network at T0, a newer snapshot at T0+1h, then (ingested at T0+3h) a restatement of
    # yesterday's demand with a 50x spike, dated T0 (it describes T0 but arrived 3 h late), and
    # demand for days from T0 on, dated T0+26h
    s = Settings()
    base = build_history(s, T0, T0 + timedelta(hours=1), timedelta(hours=1))
    yesterday = T0.date() - timedelta(days=1)
    land({"demand": demand_for_day(base, yesterday, SPIKE)}, s.inbox_dir, T0, tag="late")
    future = pl.concat([demand_for_day(base, T0.date() + timedelta(days=d), SPIKE) for d in (0, 1)])
    land({"demand": future}, s.inbox_dir, T0 + timedelta(hours=26), tag="future")
    ingest_at(s, T0 + timedelta(hours=3))

    with open_warehouse(s.db_path) as con:
        gated = con.execute(
            "SELECT file_name, outcome FROM gate_results WHERE file_name LIKE '%late%' OR file_name LIKE '%future%'"
        ).fetchall()
        assert len(gated) == 2 and all(o in ("pass", "pass_with_quarantine") for _, o in gated), gated
        replay = read_cycle_inputs(con, T0, "backfill", known_at=T0)
        naive = read_cycle_inputs(con, T0, "backfill")  # as-of filter only: the late file leaks in
        replay_t1 = read_cycle_inputs(con, T0 + timedelta(hours=1), "backfill", known_at=T0 + timedelta(hours=1))
        files_t0 = {f.extract: f.file_name for f in latest_files(con, T0, T0)}

    def day_total(inputs, day):
        return inputs.demand.filter(pl.col("date") == day).get_column("qty").sum()

    original = base["demand"].filter(pl.col("date") == yesterday).get_column("qty").sum()
    # then: the replay sees yesterday as it was known at T0; without `known_at` the spike shows
    assert day_total(replay, yesterday) == original
    assert day_total(naive, yesterday) > 10 * original
    assert replay.fingerprints["demand"]["files"] == 1 and naive.fingerprints["demand"]["files"] == 2
    # no demand on or after the as-of date, whatever was delivered later
    assert replay.demand.get_column("date").max() < T0.date()
    assert naive.demand.get_column("date").max() < T0.date()
    # the T0 replay reads T0's snapshots, the T0+1h replay the newer ones
    assert replay.fingerprints["inventory"]["as_of"] == T0.isoformat()
    assert replay_t1.fingerprints["inventory"]["as_of"] == (T0 + timedelta(hours=1)).isoformat()
    assert "late" not in files_t0["demand"]
    on_hand = replay.frames["inventory"].get_column("on_hand").sum()
    assert on_hand == base["inventory"].get_column("on_hand").sum()
    assert replay_t1.frames["inventory"].get_column("on_hand").sum() < on_hand


def test_known_at_now_reads_what_the_live_cycle_reads(ballast_home):
    # given: files ingested at their own as-of, as live cycles do
    s = Settings()
    base = build_history(s, T0, T0, timedelta(hours=1))
    land(later_snapshots(base, T0, T0 + timedelta(hours=1)), s.inbox_dir, T0 + timedelta(hours=1))
    ingest_at(s, T0 + timedelta(hours=1))
    with open_warehouse(s.db_path) as con:
        live = read_cycle_inputs(con, T0 + timedelta(hours=1), "live")
        replay = read_cycle_inputs(con, T0 + timedelta(hours=1), "live", known_at=T0 + timedelta(hours=1))
    assert live.fingerprints == replay.fingerprints
    assert live.demand.equals(replay.demand)
    for name, frame in live.frames.items():
        assert frame.equals(replay.frames[name]), name
