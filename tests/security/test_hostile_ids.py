"""Hostile SKU and site ids travel the whole way — deliver → ingest → validate → cycle → approve →
plans show / lineage — as data: every table stays intact and every id round-trips exactly."""

from __future__ import annotations

import json

import polars as pl
import pytest
from typer.testing import CliRunner

from ballast.cli import app
from ballast.io.landing import land_frame
from ballast.io.plans import verify_audit
from ballast.io.warehouse import PLAN_DDL, open_warehouse
from ballast.settings import Settings
from tests import factories as f
from tests.faults.scenario import write_policy

SITES = {
    "SUP-01": "SUP'; DROP TABLE plans; --",
    "PLT-DE-01": "../../etc/passwd",
    "DC-DE-01": 'DC "quoted", with comma',
    "HUB-DE-01": "Ünïcødé-仓库-🚚",
    "HUB-DE-02": "HUB[/]02 [bold]x\\",
}
SKUS = {"00123": "00123'; DROP TABLE x; --", "00456": "../sku/456", "00789": "Robert'); DELETE FROM audit_log;--"}
NOW = (f.AS_OF).strftime("%Y-%m-%dT%H:%M:%SZ")


def _hostile(frame: pl.DataFrame) -> pl.DataFrame:
    cols = []
    for c in frame.columns:
        if c in ("site_id", "origin", "destination"):
            cols.append(pl.col(c).replace_strict(SITES, default=pl.col(c)))
        elif c == "sku":
            cols.append(pl.col(c).replace_strict(SKUS, default=pl.col(c)))
    return frame.with_columns(cols) if cols else frame


def _cli(*args: str):
    result = CliRunner().invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


@pytest.mark.slow
def test_hostile_ids_are_data_end_to_end(prefect_harness, ballast_home):
    # given: the tiny network with every site id and SKU replaced by a hostile one
    write_policy(ballast_home, **{"approval.order_value_above": 30.0})  # some orders await a planner
    settings = Settings()
    for name, frame in f.network().items():
        land_frame(_hostile(frame), settings.inbox_dir, name, f.AS_OF)
    # when
    assert _cli("ingest", "--now", NOW).exit_code == 0
    validated = _cli("validate", "--now", NOW)
    assert validated.exit_code == 0, validated.output
    run = _cli("run", "--now", NOW)
    assert run.exit_code == 0, run.output
    with open_warehouse(settings.db_path, read_only=True) as con:
        [(plan_id,)] = con.execute("SELECT plan_id FROM plans").fetchall()
    approved = _cli("approve", plan_id, "--by", "ana.planner", "--reason", "ok'); DROP TABLE decisions; --")
    assert approved.exit_code == 0, approved.output
    shown = _cli("plans", "show", plan_id, "--orders", "100")
    listed = _cli("plans", "list")
    traced = _cli("lineage", plan_id)
    unknown = _cli("plans", "show", "[/]'; DROP TABLE plans; --")

    # then: every table is there, and nothing was dropped or emptied
    with open_warehouse(settings.db_path, read_only=True) as con:
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        assert {"plans", "transfer_orders", "decisions", "released_orders", "audit_log", "stg_sites"} <= tables
        assert "x" not in tables and "students" not in {t.lower() for t in tables}
        assert verify_audit(con) == []
        assert con.execute("SELECT count(*) FROM decisions").fetchall()[0][0] > 0
        # ids round-trip exactly: staged master data, orders, releases
        assert {r[0] for r in con.execute("SELECT site_id FROM stg_sites").fetchall()} == set(SITES.values())
        assert {r[0] for r in con.execute("SELECT sku FROM stg_items").fetchall()} == set(SKUS.values())
        orders = con.execute("SELECT order_id, origin, destination, sku FROM transfer_orders").fetchall()
        released = {r[0] for r in con.execute("SELECT order_id FROM released_orders").fetchall()}
        reason = con.execute("SELECT DISTINCT reason FROM decisions").fetchall()
    assert len(PLAN_DDL) > 0 and reason == [("ok'); DROP TABLE decisions; --",)]
    assert orders and {o[1] for o in orders} | {o[2] for o in orders} <= set(SITES.values())
    assert {o[3] for o in orders} <= set(SKUS.values())
    # the outbox carries the ids byte for byte, in CSV and JSON
    csv = pl.concat([pl.read_csv(p, infer_schema=False) for p in settings.outbox_dir.glob("*.csv")])
    sent = {(r["order_id"], r["origin"], r["destination"], r["sku"]) for r in csv.iter_rows(named=True)}
    assert sent == {o for o in orders if o[0] in released} and sent
    sent_json = {
        (o["order_id"], o["origin"], o["destination"], o["sku"])
        for p in settings.outbox_dir.glob("*.json")
        for o in json.loads(p.read_text())["orders"]
    }
    assert sent_json == sent
    # nothing was written where a path-like id points
    assert not list(ballast_home.rglob("passwd")) and not list(ballast_home.rglob("456"))
    # review commands show the ids as text (rich markup in an id is not interpreted)
    for result in (shown, listed, traced):
        assert result.exit_code == 0, result.output
    assert unknown.exit_code == 1 and "no plan" in unknown.output
    cells = shown.output.replace("│", " ")
    for o in orders:
        assert o[0] in cells
    shown_ids = [name for name in (*SITES.values(), *SKUS.values()) if name in " ".join(cells.split())]
    assert "HUB[/]02 [bold]x\\" in shown_ids or SITES["HUB-DE-02"] not in {x for o in orders for x in o[1:3]}
