from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest

from ballast.models.contract import EXTRACTS
from ballast.models.parsing import parse_extract


def _inventory_raw(**overrides: list) -> pl.DataFrame:
    base = {
        "_row": [1],
        "as_of": ["2026-11-23T06:00:00Z"],
        "site_id": ["HUB-DE-01"],
        "sku": ["00123"],
        "on_hand": ["10"],
        "allocated": ["0"],
        "reserved": ["0"],
        "lot": [None],
        "expiry_date": [None],
    }
    base.update(overrides)
    return pl.DataFrame(base, schema={k: (pl.Int64 if k == "_row" else pl.String) for k in base})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-23T06:00:00Z", datetime(2026, 11, 23, 6, tzinfo=UTC)),
        ("2026-11-23 07:00:00+01:00", datetime(2026, 11, 23, 6, tzinfo=UTC)),
        ("2026-11-23T07:30-0130", datetime(2026, 11, 23, 9, tzinfo=UTC)),
        ("2026-11-23T06:00:00.250Z", datetime(2026, 11, 23, 6, 0, 0, 250000, tzinfo=UTC)),
    ],
)
def test_timestamps_with_a_zone_become_utc(text, expected):
    parsed = parse_extract(_inventory_raw(as_of=[text]), EXTRACTS["inventory"])
    assert parsed.failures.is_empty()
    assert parsed.typed.get_column("as_of").to_list() == [expected]


@pytest.mark.parametrize(
    ("column", "text", "rule_start"),
    [
        ("as_of", "2026-11-23T06:00:00", "type:timestamp — no time zone"),
        ("as_of", "23.11.2026 06:00 UTC", "type:timestamp — ISO-8601"),
        ("on_hand", "1e", "type:float"),
        ("on_hand", "1 234", "type:float"),
        ("expiry_date", "2026-13-01", "type:date — not a calendar date"),
        ("expiry_date", "11/12/2026", "type:date — an ISO-8601"),
    ],
)
def test_bad_cells_are_named(column, text, rule_start):
    parsed = parse_extract(_inventory_raw(**{column: [text]}), EXTRACTS["inventory"])
    assert parsed.typed.is_empty()
    [failure] = parsed.failures.to_dicts()
    assert failure["column"] == column and failure["value"] == text and failure["_row"] == 1
    assert failure["rule"].startswith(rule_start)


def test_keys_keep_leading_zeros_and_blank_optional_cells_are_null():
    parsed = parse_extract(_inventory_raw(lot=[""], sku=["000042"]), EXTRACTS["inventory"])
    row = parsed.typed.to_dicts()[0]
    assert row["sku"] == "000042" and row["lot"] is None and row["on_hand"] == 10.0
