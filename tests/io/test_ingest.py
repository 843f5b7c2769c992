"""Ingest and the quality gate against every bad input the foundation issue lists.

Each case first stages a good network, then delivers one bad file and checks three things: the
message names the file, the row (or the file) and the rule; the verdict is right; and nothing
staged before has changed.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from ballast.io.ingest import ingest_inbox, scan_inbox
from ballast.io.landing import land_frame, manifest_path, write_manifest
from ballast.io.staging import validate_pending
from ballast.io.warehouse import demand_history, open_warehouse, snapshot_as_of
from ballast.models.contract import EXTRACTS
from ballast.models.policy import Policy, load_policy
from ballast.settings import Settings
from tests import factories as f

LATER = f.AS_OF + timedelta(minutes=15)


@pytest.fixture
def policy() -> Policy:
    return load_policy(Settings().policy_path)[0]


@pytest.fixture
def con(ballast_home: Path, policy: Policy):
    """A warehouse holding the good factory network, all gates passed."""
    s = Settings()
    for name, frame in f.network().items():
        land_frame(frame, s.inbox_dir, name, f.AS_OF, "parquet" if name == "demand" else "csv")
    with open_warehouse(s.db_path) as c:
        report = ingest_inbox(c, s.inbox_dir, s.archive_dir, f.AS_OF)
        assert {o.status for o in report.outcomes} == {"landed"}
        results = validate_pending(c, policy, f.AS_OF)
        assert {r.outcome for r in results} == {"pass"}
        yield c


def staged_state(con: duckdb.DuckDBPyConnection) -> dict[str, pl.DataFrame]:
    return {
        name: con.sql(f"SELECT * FROM stg_{name} ORDER BY _file_id, _row").pl()  # noqa: S608 - fixed names
        for name in EXTRACTS
    }


def deliver(extract: str, text: bytes, rows: int, as_of=LATER, suffix: str = "csv") -> Path:
    """Deliver raw bytes as a file following the landing convention (data, then manifest)."""
    folder = Settings().inbox_dir / extract
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{extract}_{as_of:%Y%m%dT%H%M%SZ}.{suffix}"
    path.write_bytes(text)
    write_manifest(path, extract, as_of, rows)
    return path


def inventory_csv(as_of=LATER) -> str:
    return f.inventory(as_of).write_csv(datetime_format="%Y-%m-%dT%H:%M:%SZ")


def run(con: duckdb.DuckDBPyConnection, policy: Policy, now=LATER):
    s = Settings()
    report = ingest_inbox(con, s.inbox_dir, s.archive_dir, now)
    gates = validate_pending(con, policy, now)
    return list(report.outcomes), gates


def quarantined(con: duckdb.DuckDBPyConnection, file_name: str) -> list[dict]:
    return con.sql(
        'SELECT "row", line, "column", rule, value, stage FROM quarantine WHERE file_name = ? ORDER BY "row"',
        params=[file_name],
    ).pl().to_dicts()


def assert_unchanged(before: dict[str, pl.DataFrame], con: duckdb.DuckDBPyConnection) -> None:
    after = staged_state(con)
    for name, frame in before.items():
        old_ids = frame.get_column("_file_id").unique().implode()
        assert after[name].filter(pl.col("_file_id").is_in(old_ids)).equals(frame), name


# --- whole-file problems ------------------------------------------------------------------


def test_truncated_after_delivery_is_rejected_by_checksum(con, policy):
    before = staged_state(con)
    path = deliver("inventory", inventory_csv().encode(), rows=6)
    path.write_bytes(path.read_bytes()[:-25])  # cut off after the manifest was written
    [outcome], gates = run(con, policy)
    assert outcome.status == "rejected"
    assert path.name in outcome.message and "rule: landing:checksum" in outcome.message
    assert gates == []
    assert_unchanged(before, con)
    assert (Settings().archive_dir / "rejected" / "inventory" / path.name).exists(), "raw file kept"


def test_truncated_last_line_from_the_exporter_is_quarantined_by_line(con, policy):
    before = staged_state(con)
    lines = inventory_csv().splitlines()
    lines[-1] = ",".join(lines[-1].split(",")[:4])  # the exporter stopped mid-row
    path = deliver("inventory", ("\n".join(lines)).encode(), rows=6)
    _, [gate] = run(con, policy)
    rows = quarantined(con, path.name)
    assert rows[0]["row"] == 6 and rows[0]["line"] == 7
    assert rows[0]["rule"].startswith("csv:missing_columns")
    assert gate.outcome == "block"  # 1 of 6 rows is above the 1% threshold
    assert any("max_quarantine_share" in r for r in gate.reasons)
    assert_unchanged(before, con)
    assert snapshot_as_of(con, "inventory", LATER).get_column("as_of").unique().to_list() == [f.AS_OF]


def test_ragged_rows_are_quarantined_and_good_rows_staged(con, policy, monkeypatch):
    before = staged_state(con)
    lines = inventory_csv().splitlines()
    lines[2] = lines[2] + ",surplus"  # too many fields
    lines[4] = ",".join(lines[4].split(",")[:3])  # too few
    path = deliver("inventory", ("\n".join(lines) + "\n").encode(), rows=6)
    lenient = policy.model_copy(
        update={"quality_gates": policy.quality_gates.model_copy(update={"by_extract": {}, "default": type(policy.quality_gates.default)(max_quarantine_share=0.5)})}
    )
    _, [gate] = run(con, lenient)
    rules = {(r["line"], r["rule"].split(" ")[0]) for r in quarantined(con, path.name)}
    assert rules == {(3, "csv:too_many_columns"), (5, "csv:missing_columns")}
    assert gate.outcome == "pass_with_quarantine" and gate.rows_staged == 4 and gate.rows_quarantined == 2
    assert_unchanged(before, con)


def test_empty_file_is_rejected(con, policy):
    before = staged_state(con)
    path = deliver("inventory", b"", rows=0)
    [outcome], _ = run(con, policy)
    assert outcome.status == "rejected" and "empty file" in outcome.message and path.name in outcome.message
    assert_unchanged(before, con)


def test_header_only_snapshot_blocks(con, policy):
    before = staged_state(con)
    header = inventory_csv().splitlines()[0] + "\n"
    deliver("inventory", header.encode(), rows=0)
    _, [gate] = run(con, policy)
    assert gate.outcome == "block" and any("no data rows" in r for r in gate.reasons)
    assert_unchanged(before, con)


def test_missing_column_is_rejected_naming_it(con, policy):
    before = staged_state(con)
    frame = f.inventory(LATER).drop("reserved")
    deliver("inventory", frame.write_csv(datetime_format="%Y-%m-%dT%H:%M:%SZ").encode(), rows=6)
    [outcome], _ = run(con, policy)
    assert outcome.status == "rejected"
    assert "missing required column(s) 'reserved'" in outcome.message
    assert_unchanged(before, con)


def test_renamed_column_is_rejected_with_a_hint(con, policy):
    frame = f.inventory(LATER).rename({"on_hand": "onhand"})
    deliver("inventory", frame.write_csv(datetime_format="%Y-%m-%dT%H:%M:%SZ").encode(), rows=6)
    [outcome], _ = run(con, policy)
    assert outcome.status == "rejected"
    assert "'on_hand' (found 'onhand': renamed?)" in outcome.message


def test_extra_column_is_kept_and_ignored(con, policy):
    frame = f.inventory(LATER).with_columns(pl.lit("B-7").alias("bin_location"))
    path = deliver("inventory", frame.write_csv(datetime_format="%Y-%m-%dT%H:%M:%SZ").encode(), rows=6)
    [outcome], [gate] = run(con, policy)
    assert outcome.status == "landed" and "bin_location" in outcome.message
    assert gate.outcome == "pass" and gate.rows_staged == 6
    extra = con.sql(
        "SELECT DISTINCT _extra FROM raw_inventory r JOIN ingest_files f ON f.file_id = r._file_id WHERE f.file_name = ?",
        params=[path.name],
    ).fetchall()
    assert [json.loads(e[0]) for e in extra] == [{"bin_location": "B-7"}]
    assert "bin_location" not in snapshot_as_of(con, "inventory", LATER).columns


def test_duplicate_keys_quarantine_both_rows(con, policy):
    frame = f.inventory(LATER)
    frame = pl.concat([frame, frame.head(1).with_columns(pl.lit(999.0).alias("on_hand"))])
    path = deliver("inventory", frame.write_csv(datetime_format="%Y-%m-%dT%H:%M:%SZ").encode(), rows=7)
    _, [gate] = run(con, policy)
    rows = quarantined(con, path.name)
    assert {r["row"] for r in rows} == {1, 7}
    assert all(r["rule"].startswith("key:unique") for r in rows)
    assert gate.outcome == "block"


def test_negative_stock_is_quarantined(con, policy):
    frame = f.inventory(LATER).with_columns(
        pl.when(pl.int_range(pl.len()) == 2).then(-5.0).otherwise(pl.col("on_hand")).alias("on_hand")
    )
    path = deliver("inventory", frame.write_csv(datetime_format="%Y-%m-%dT%H:%M:%SZ").encode(), rows=6)
    run(con, policy)
    [row] = quarantined(con, path.name)
    assert (row["row"], row["line"], row["column"], row["value"]) == (3, 4, "on_hand", "-5.0")
    assert row["rule"] == "schema:greater_than_or_equal_to(0)"


def test_unknown_sku_and_site_break_referential_integrity(con, policy):
    frame = f.inventory(LATER).with_columns(
        pl.when(pl.int_range(pl.len()) == 0).then(pl.lit("99999")).otherwise(pl.col("sku")).alias("sku"),
        pl.when(pl.int_range(pl.len()) == 1).then(pl.lit("HUB-XX-09")).otherwise(pl.col("site_id")).alias("site_id"),
    )
    path = deliver("inventory", frame.write_csv(datetime_format="%Y-%m-%dT%H:%M:%SZ").encode(), rows=6)
    run(con, policy)
    rows = {(r["row"], r["column"], r["value"]): r["rule"] for r in quarantined(con, path.name)}
    assert rows[(1, "sku", "99999")] == "reference:items.sku — unknown sku"
    assert rows[(2, "site_id", "HUB-XX-09")] == "reference:sites.site_id — unknown site_id"


@pytest.mark.parametrize("bad", ["10 EA", "N/A", "1.234,5", "1,234", "12 345"])
def test_non_numeric_quantities_name_the_rule(con, policy, bad):
    lines = inventory_csv().splitlines()
    cells = lines[1].split(",")
    cells[3] = f'"{bad}"'
    lines[1] = ",".join(cells)
    path = deliver("inventory", ("\n".join(lines) + "\n").encode(), rows=6)
    run(con, policy)
    [row] = quarantined(con, path.name)
    assert (row["row"], row["line"], row["column"], row["value"]) == (1, 2, "on_hand", bad)
    assert row["rule"].startswith("type:float")


def test_latin1_bytes_are_reported_by_line(con, policy):
    before = staged_state(con)
    text = f.items().with_columns(pl.lit("x").alias("note")).write_csv().splitlines()
    text[2] = text[2].replace(",x", ",Kühlschrank")
    data = ("\n".join(text) + "\n").encode("latin-1")
    path = deliver("items", data, rows=3)
    _, [gate] = run(con, policy)
    [row] = quarantined(con, path.name)
    assert row["line"] == 3 and row["rule"].startswith("csv:invalid_encoding")
    assert gate.outcome == "block"  # items tolerate no quarantine in the default policy
    assert_unchanged(before, con)


def test_utf8_bom_is_accepted(con, policy):
    data = b"\xef\xbb\xbf" + inventory_csv().encode()
    deliver("inventory", data, rows=6)
    _, [gate] = run(con, policy)
    assert gate.outcome == "pass" and gate.rows_staged == 6


def test_unclosed_quote_rejects_the_file_and_says_where(con, policy):
    before = staged_state(con)
    lines = inventory_csv().splitlines()
    lines[3] = lines[3].replace("HUB-DE-01", '"HUB-DE-01', 1)
    path = deliver("inventory", ("\n".join(lines) + "\n").encode(), rows=6)
    [outcome], gates = run(con, policy)
    assert outcome.status == "rejected" and path.name in outcome.message
    assert "line 4: csv:unquoted_value" in outcome.message
    assert gates == []
    assert_unchanged(before, con)


def test_timestamp_without_zone_is_refused(con, policy):
    text = f.inventory(LATER).write_csv(datetime_format="%Y-%m-%d %H:%M:%S")
    path = deliver("inventory", text.encode(), rows=6)
    _, [gate] = run(con, policy)
    rows = quarantined(con, path.name)
    assert len(rows) == 6 and all(r["rule"].startswith("type:timestamp — no time zone") for r in rows)
    assert gate.outcome == "block"


def test_ambiguous_date_format_is_refused(con, policy):
    frame = f.in_transit(LATER)
    text = frame.write_csv(date_format="%d/%m/%Y")
    path = deliver("in_transit", text.encode(), rows=2)
    run(con, policy)
    rows = quarantined(con, path.name)
    assert {r["column"] for r in rows} == {"ship_date", "eta"}
    assert all("ISO-8601 date YYYY-MM-DD" in r["rule"] for r in rows)


def test_stale_snapshot_blocks_and_keeps_the_previous_one(con, policy):
    before = staged_state(con)
    old = f.AS_OF - timedelta(hours=30)
    deliver("inventory", inventory_csv(old).encode(), rows=6, as_of=old)
    _, [gate] = run(con, policy, now=f.AS_OF + timedelta(hours=1))
    assert gate.outcome == "block"
    assert any("stale" in r and "budget 6 h" in r for r in gate.reasons)
    assert_unchanged(before, con)


def test_file_still_being_written_is_never_read(con, policy):
    before = staged_state(con)
    folder = Settings().inbox_dir / "inventory"
    partial = folder / f".inventory_{LATER:%Y%m%dT%H%M%SZ}.csv.part"
    partial.write_text(inventory_csv()[:40])
    no_manifest = folder / f"inventory_{LATER:%Y%m%dT%H%M%SZ}.csv"
    no_manifest.write_text(inventory_csv()[:60])
    [outcome], gates = run(con, policy)
    assert outcome.status == "pending" and "no manifest" in outcome.message
    assert gates == [] and no_manifest.exists() and partial.exists()
    assert scan_inbox(Settings().inbox_dir) == [no_manifest]
    assert_unchanged(before, con)
    # once delivered properly, it is taken
    no_manifest.write_text(inventory_csv())
    write_manifest(no_manifest, "inventory", LATER, 6)
    [outcome], [gate] = run(con, policy)
    assert outcome.status == "landed" and gate.outcome == "pass"


def test_second_copy_of_an_ingested_file_is_skipped(con, policy):
    s = Settings()
    archived = next((s.archive_dir / "demand").glob("*.parquet"))
    copy = s.inbox_dir / "demand" / archived.name.replace("T060000Z", "T061500Z")
    copy.parent.mkdir(parents=True, exist_ok=True)
    copy.write_bytes(archived.read_bytes())
    manifest_path(copy).write_bytes(manifest_path(archived).read_bytes())
    rows_before = con.execute("SELECT count(*) FROM raw_demand").fetchone()
    [outcome], gates = run(con, policy)
    assert outcome.status == "duplicate" and archived.name in outcome.message
    assert gates == [] and con.execute("SELECT count(*) FROM raw_demand").fetchone() == rows_before
    assert (s.archive_dir / "duplicates" / "demand" / copy.name).exists()


def test_crash_after_commit_before_archive_is_completed_by_a_rerun(con, policy):
    s = Settings()
    path = land_frame(f.inventory(LATER), s.inbox_dir, "inventory", LATER)
    kept = path.read_bytes()
    run(con, policy)
    # simulate the crash: the file is back in the inbox although its rows were committed
    path.write_bytes(kept)
    write_manifest(path, "inventory", LATER, 6)
    files_before = con.execute("SELECT count(*) FROM ingest_files").fetchone()
    [outcome], gates = run(con, policy)
    assert outcome.status == "duplicate" and "archive move completed" in outcome.message
    assert con.execute("SELECT count(*) FROM ingest_files").fetchone() == files_before and gates == []
    assert not path.exists()


def test_history_is_append_only_and_as_of_queries_see_the_past(con, policy):
    newer = f.inventory(LATER).with_columns(pl.col("on_hand") + 1)
    land_frame(newer, Settings().inbox_dir, "inventory", LATER)
    run(con, policy)
    assert snapshot_as_of(con, "inventory", f.AS_OF).get_column("on_hand").to_list() == f.inventory().get_column("on_hand").to_list()
    assert snapshot_as_of(con, "inventory", LATER).get_column("on_hand").to_list() == newer.get_column("on_hand").to_list()
    assert demand_history(con, f.AS_OF).height == f.demand().height


def test_keys_stay_strings(con):
    assert "00123" in snapshot_as_of(con, "items").get_column("sku").to_list()


def test_book_inventory_far_from_wms_blocks_reconciliation(con, policy):
    book = f.book_inventory(LATER).with_columns(
        pl.when(pl.col("site_id") == "HUB-DE-02").then(pl.col("qty") + 50).otherwise(pl.col("qty")).alias("qty")
    )
    inv = f.inventory(LATER)
    land_frame(inv, Settings().inbox_dir, "inventory", LATER)
    path = land_frame(book, Settings().inbox_dir, "book_inventory", LATER)
    _, gates = run(con, policy)
    gate = next(g for g in gates if g.extract == "book_inventory")
    assert gate.outcome == "block"
    assert any("2 of 6 site×SKU pairs differ from WMS beyond 2%" in r for r in gate.reasons)
    rules = [r["rule"] for r in quarantined(con, path.name)]
    assert len(rules) == 2 and all(r.startswith("reconciliation — book") for r in rules)


def test_chunked_validation_catches_duplicates_across_chunks(con, policy, monkeypatch):
    import ballast.io.staging as staging

    monkeypatch.setattr(staging, "CHUNK_ROWS", 20)
    demand = f.demand(LATER, days=14)  # 42 rows: three chunks
    dup = demand.head(1)
    path = land_frame(pl.concat([demand, dup]), Settings().inbox_dir, "demand", LATER, "parquet")
    _, [gate] = run(con, policy)
    rows = quarantined(con, path.name)
    assert {r["row"] for r in rows} == {1, 43}
    assert all(r["rule"].startswith("key:unique") for r in rows)
    assert gate.outcome == "block"  # 2 of 43 rows is above the 2% allowed for demand
    staged = con.execute(
        "SELECT count(*) FROM stg_demand s JOIN ingest_files f ON f.file_id = s._file_id WHERE f.file_name = ?",
        [path.name],
    ).fetchone()
    assert staged == (0,)


def test_chunked_validation_stages_the_same_rows(con, policy, monkeypatch):
    import ballast.io.staging as staging

    monkeypatch.setattr(staging, "CHUNK_ROWS", 10)
    demand = f.demand(LATER, days=14)
    land_frame(demand, Settings().inbox_dir, "demand", LATER, "parquet")
    _, [gate] = run(con, policy)
    assert gate.outcome == "pass" and gate.rows_staged == demand.height


def test_parquet_naive_timestamps_are_refused_and_extra_columns_kept(con, policy):
    frame = f.inventory(LATER).with_columns(
        pl.col("as_of").dt.replace_time_zone(None), pl.lit(3, pl.Int32).alias("aisle")
    )
    path = land_frame(frame, Settings().inbox_dir, "inventory", LATER, "parquet")
    [outcome], [gate] = run(con, policy)
    assert "aisle" in outcome.message
    rows = quarantined(con, path.name)
    assert len(rows) == 6 and all("no time zone" in r["rule"] for r in rows)
    assert rows[0]["value"] == "2026-11-23T06:15:00.000000"
    assert gate.outcome == "block"


def test_unchanged_snapshot_delivered_later_is_a_new_snapshot_not_a_copy(con, policy):
    """An in-transit list that did not change, delivered again as of a later time, says "still so": it is
    taken (the snapshot is fresh as of then), while demand with the same bytes stays a copy."""
    s = Settings()
    archived = next((s.archive_dir / "in_transit").glob("*.csv"))
    rows = con.execute("SELECT rows_read FROM ingest_files WHERE extract = 'in_transit'").fetchall()[0][0]
    deliver("in_transit", archived.read_bytes(), rows=rows, as_of=LATER)
    [outcome], [gate] = run(con, policy)
    assert outcome.status == "landed" and gate.outcome == "pass"
    meta = con.execute(
        "SELECT max(as_of) FROM ingest_files WHERE extract = 'in_transit' AND status = 'landed'"
    ).fetchall()[0][0]
    assert meta == LATER
    # the same bytes as of the same time again: a copy
    deliver("in_transit", archived.read_bytes(), rows=rows, as_of=f.AS_OF)
    [outcome], gates = run(con, policy)
    assert outcome.status == "duplicate" and gates == []
