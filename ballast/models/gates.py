"""The hard quality gate of one extract file: every rule, one outcome.

Pure functions over polars frames. A file's rows are judged by type parsing
(`ballast.models.parsing`), the Pandera schema (`ballast.models.schemas`), referential
integrity against the staged master data, freshness against the policy's staleness budget and,
for ERP book inventory, reconciliation against the WMS snapshot. The outcome is

* ``pass`` — no row failed;
* ``pass_with_quarantine`` — failing rows are quarantined and their share is within the
  policy's threshold, the rest is staged;
* ``block`` — a file-level rule failed (stale, empty) or too many rows failed; nothing of the
  file is staged and planning keeps the last good data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import pandera.errors as pa_errors
import polars as pl

from ballast.models.contract import REFERENCES, Extract
from ballast.models.parsing import FAILURE_SCHEMA, ROW
from ballast.models.schemas import SCHEMAS

Outcome = Literal["pass", "pass_with_quarantine", "block"]

# Snapshots that may legitimately be empty: nothing in transit, no open purchase order.
MAY_BE_EMPTY = frozenset({"in_transit", "purchase_orders"})


@dataclass(frozen=True, slots=True)
class GateResult:
    """The gate's verdict on one file."""

    file_id: int
    extract: str
    file_name: str
    as_of: datetime
    rows_in: int
    rows_staged: int
    rows_quarantined: int
    outcome: Outcome
    reasons: tuple[str, ...]

    def reasons_json(self) -> str:
        return json.dumps(list(self.reasons))


def _empty_failures() -> pl.DataFrame:
    return pl.DataFrame(schema=FAILURE_SCHEMA)


def schema_failures(typed: pl.DataFrame, extract: Extract) -> pl.DataFrame:
    """Run the Pandera schema with lazy=True (every failure, not the first) on an eager frame."""
    schema = SCHEMAS[extract.name]
    data = typed.select(extract.column_names)
    try:
        schema.validate(data, lazy=True)
    except pa_errors.SchemaErrors as exc:
        cases = exc.failure_cases
    else:
        return _empty_failures()
    rows = typed.get_column(ROW)
    out = []
    for case in cases.iter_rows(named=True):
        index = case.get("index")
        if index is None:
            # A schema-level failure (e.g. wrong dtype) concerns the whole file.
            out.append({ROW: None, "column": case["column"], "rule": f"schema:{case['check']}", "value": None})
            continue
        column = case["column"] if case["schema_context"] == "Column" else ",".join(extract.key)
        rule = case["check"]
        if rule == "multiple_fields_uniqueness" or rule.startswith("field_uniqueness"):
            rule = f"key:unique — duplicate key ({', '.join(extract.key)})"
        else:
            rule = f"schema:{rule}"
        out.append({ROW: int(rows[int(index)]), "column": column, "rule": rule, "value": case["failure_case"]})
    return pl.DataFrame(out, schema=FAILURE_SCHEMA)


def reference_failures(
    typed: pl.DataFrame, extract: Extract, known: dict[str, pl.Series], known_lanes: pl.DataFrame | None = None
) -> pl.DataFrame:
    """Rows whose site, SKU (or lane) reference does not resolve in the staged master data.

    `known` maps a target extract name (``sites``, ``items``) to its key values.
    """
    parts: list[pl.DataFrame] = []
    for (source, column), (target, target_column) in REFERENCES.items():
        if source != extract.name:
            continue
        keys = known.get(target, pl.Series(target_column, [], dtype=pl.String))
        bad = typed.filter(pl.col(column).is_not_null() & ~pl.col(column).is_in(keys.implode()))
        parts.append(
            bad.select(
                pl.col(ROW),
                pl.lit(column).alias("column"),
                pl.lit(f"reference:{target}.{target_column} — unknown {target_column}").alias("rule"),
                pl.col(column).alias("value"),
            )
        )
    if extract.name == "in_transit" and known_lanes is not None:
        pairs = known_lanes.select("origin", "destination").unique().with_columns(pl.lit(True).alias("_lane"))
        bad = typed.join(pairs, on=["origin", "destination"], how="left").filter(pl.col("_lane").is_null())
        parts.append(
            bad.select(
                pl.col(ROW),
                pl.lit("origin,destination").alias("column"),
                pl.lit("reference:lanes — no lane between origin and destination").alias("rule"),
                pl.concat_str([pl.col("origin"), pl.col("destination")], separator="→").alias("value"),
            )
        )
    if not parts:
        return _empty_failures()
    return pl.concat(parts).cast(FAILURE_SCHEMA)  # type: ignore[arg-type]


def reconciliation_failures(book: pl.DataFrame, wms: pl.DataFrame, tolerance: float) -> tuple[pl.DataFrame, int]:
    """Book-inventory rows whose quantity differs from WMS on-hand (summed over lots) beyond `tolerance`.

    The relative difference is |wms − book| / max(book, 1); returns (failures, pairs compared).
    """
    on_hand = wms.group_by("site_id", "sku").agg(pl.col("on_hand").sum().alias("wms_qty"))
    joined = book.join(on_hand, on=["site_id", "sku"], how="left").with_columns(
        pl.col("wms_qty").fill_null(0.0),
    )
    joined = joined.with_columns(
        ((pl.col("wms_qty") - pl.col("qty")).abs() / pl.max_horizontal(pl.col("qty"), pl.lit(1.0))).alias("rel")
    )
    bad = joined.filter(pl.col("rel") > tolerance).select(
        pl.col(ROW),
        pl.lit("qty").alias("column"),
        pl.format(
            "reconciliation — book {} vs WMS on_hand {} ({}% apart, tolerance {}%)",
            pl.col("qty"),
            pl.col("wms_qty"),
            (pl.col("rel") * 100).round(1),
            pl.lit(round(tolerance * 100, 2)),
        ).alias("rule"),
        pl.col("qty").cast(pl.String).alias("value"),
    )
    return bad.cast(FAILURE_SCHEMA), joined.height  # type: ignore[arg-type]


def staleness(as_of: datetime, now: datetime, budget_hours: float | None) -> str | None:
    """A reason if the snapshot is older than its staleness budget, else None."""
    if budget_hours is None:
        return None
    age_hours = (now - as_of).total_seconds() / 3600
    if age_hours > budget_hours:
        return (
            f"stale: as_of {as_of:%Y-%m-%dT%H:%M:%SZ} is {age_hours:.1f} h old at {now:%Y-%m-%dT%H:%M:%SZ}, "
            f"budget {budget_hours:g} h; rule: freshness"
        )
    return None


def decide(
    rows_in: int, bad_rows: int, max_share: float, file_reasons: list[str], extract: str
) -> tuple[Outcome, list[str]]:
    """Gate outcome from the counts and any file-level reasons."""
    reasons = list(file_reasons)
    if rows_in == 0 and extract not in MAY_BE_EMPTY:
        reasons.append("no data rows; rule: non-empty snapshot")
    if rows_in and bad_rows / rows_in > max_share:
        reasons.append(
            f"{bad_rows} of {rows_in} rows failed ({bad_rows / rows_in:.1%}), above the policy's "
            f"{max_share:.1%}; rule: quality_gates.max_quarantine_share"
        )
    if reasons:
        return "block", reasons
    if bad_rows:
        return "pass_with_quarantine", [f"{bad_rows} of {rows_in} rows quarantined ({bad_rows / rows_in:.2%})"]
    return "pass", []


def describe_failure(file_name: str, row: int | None, line: int | None, column: str | None, rule: str, value: str | None) -> str:
    """One line a data engineer can act on: file, row (and line), column, rule, value."""
    where = file_name
    if row is not None:
        where += f" row {row}" + (f" (line {line})" if line is not None else "")
    if column:
        where += f", column {column}"
    shown = "" if value is None else f", value {value!r}"
    return f"{where}: {rule}{shown}"

