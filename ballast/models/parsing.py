"""Typing raw extract text with explicit, strict formats.

Raw rows are kept exactly as landed (text). Here each contract column is parsed with one
accepted format; anything else is a parse failure that names the row, the column, the rule and
the value, instead of a silent guess: `10 EA`, `N/A`, `1.234,5` and `1,234` are not numbers,
`03/04/2026` is not a date (day-first or month-first cannot be told apart), and a timestamp
without a zone is refused rather than assumed to be UTC.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from ballast.models.contract import Extract, Kind

INT_PATTERN = r"^[+-]?\d+$"
FLOAT_PATTERN = r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$"
DATE_PATTERN = r"^\d{4}-\d{2}-\d{2}$"
# ISO-8601 with a zone: `2026-11-23T06:00:00Z`, `2026-11-23 06:00:00.5+01:00`, `...+0100`.
TIMESTAMP_PATTERN = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$"
TIMESTAMP_NO_ZONE = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?$"

RULES = {
    Kind.INT: "type:int — a whole number like 12 (no decimals, units or separators)",
    Kind.FLOAT: "type:float — a number like 1234.5 ('.' as decimal point, no thousands separators or units)",
    Kind.DATE: "type:date — an ISO-8601 date YYYY-MM-DD (other formats are ambiguous)",
    Kind.TIMESTAMP: "type:timestamp — ISO-8601 with a zone, e.g. 2026-11-23T06:00:00Z",
}
RULE_NO_ZONE = "type:timestamp — no time zone; write UTC with 'Z' or an explicit offset"
RULE_INVALID_DATE = "type:date — not a calendar date"

ROW = "_row"


@dataclass(frozen=True, slots=True)
class Parsed:
    """A typed frame (rows that parsed) and the failures (one row per failing cell)."""

    typed: pl.DataFrame
    failures: pl.DataFrame  # _row, column, rule, value


FAILURE_SCHEMA = {ROW: pl.Int64, "column": pl.String, "rule": pl.String, "value": pl.String}


def _parse_column(name: str, kind: Kind) -> tuple[pl.Expr, pl.Expr]:
    """An expression giving the typed column and one giving the failure rule (null = parsed)."""
    text = pl.col(name).str.strip_chars()
    present = text.is_not_null() & (text != "")
    if kind is Kind.STR:
        return pl.when(present).then(pl.col(name)).otherwise(None).alias(name), pl.lit(None, pl.String)
    if kind is Kind.INT:
        ok = text.str.contains(INT_PATTERN)
        typed = pl.when(present & ok).then(text.cast(pl.Int64, strict=False))
        return typed.alias(name), pl.when(present & ~ok).then(pl.lit(RULES[kind]))
    if kind is Kind.FLOAT:
        ok = text.str.contains(FLOAT_PATTERN)
        typed = pl.when(present & ok).then(text.cast(pl.Float64, strict=False))
        return typed.alias(name), pl.when(present & ~ok).then(pl.lit(RULES[kind]))
    if kind is Kind.DATE:
        ok = text.str.contains(DATE_PATTERN)
        value = text.str.to_date("%Y-%m-%d", strict=False)
        typed = pl.when(present & ok).then(value)
        rule = (
            pl.when(present & ~ok)
            .then(pl.lit(RULES[kind]))
            .when(present & ok & value.is_null())
            .then(pl.lit(RULE_INVALID_DATE))
        )
        return typed.alias(name), rule
    # TIMESTAMP: normalise to `YYYY-MM-DDTHH:MM:SS[.f]+HHMM`, then parse with one format.
    ok = text.str.contains(TIMESTAMP_PATTERN)
    normal = (
        text.str.replace(" ", "T")
        .str.replace(r"Z$", "+0000")
        .str.replace(r"([+-]\d{2}):(\d{2})$", "$1$2")
        .str.replace(r"T(\d{2}):(\d{2})([+-])", "T$1:$2:00$3")
    )
    value = normal.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%z", time_unit="us", strict=False).dt.convert_time_zone(
        "UTC"
    )
    rule = (
        pl.when(present & text.str.contains(TIMESTAMP_NO_ZONE))
        .then(pl.lit(RULE_NO_ZONE))
        .when(present & (~ok | value.is_null()))
        .then(pl.lit(RULES[kind]))
    )
    return pl.when(present & ok).then(value).alias(name), rule


def parse_extract(raw: pl.DataFrame, extract: Extract) -> Parsed:
    """Type the contract columns of `raw` (all text, with a `_row` column); report every bad cell.

    Rows with any unparsable cell are left out of `typed` (they will be quarantined); empty
    cells become nulls and are judged by the schema (nullable or not).
    """
    typed_exprs: list[pl.Expr] = []
    rule_exprs: list[pl.Expr] = []
    for col in extract.columns:
        typed, rule = _parse_column(col.name, col.kind)
        typed_exprs.append(typed)
        rule_exprs.append(rule.alias(f"__rule_{col.name}"))
    frame = raw.select(pl.col(ROW), *[pl.col(c.name).cast(pl.String) for c in extract.columns]).with_columns(
        rule_exprs
    )
    failures = pl.concat(
        [
            frame.filter(pl.col(f"__rule_{c.name}").is_not_null()).select(
                pl.col(ROW),
                pl.lit(c.name).alias("column"),
                pl.col(f"__rule_{c.name}").alias("rule"),
                pl.col(c.name).alias("value"),
            )
            for c in extract.columns
        ],
        how="vertical",
    ).sort(ROW, "column")
    bad_rows = failures.get_column(ROW).unique()
    typed_frame = (
        frame.filter(~pl.col(ROW).is_in(bad_rows.implode()))
        .select(pl.col(ROW), *typed_exprs)
        .with_columns(pl.col(c.name).cast(pl.String) for c in extract.columns if c.kind is Kind.STR)
    )
    return Parsed(typed=typed_frame, failures=failures.cast(FAILURE_SCHEMA))  # type: ignore[arg-type]
