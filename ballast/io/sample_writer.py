"""Deliver the sample network into an inbox the way a real ERP/WMS/TMS export would.

Each extract is landed with `land_frame` (data file, then its manifest), so ingest sees the
sample exactly as it sees production extracts. Master and snapshot data go out as CSV, the
long demand history as Parquet, unless a format is asked for.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import polars as pl

from ballast.io.landing import FileFormat, land_frame
from ballast.models.contract import EXTRACTS
from ballast.models.sample import SampleSpec, generate_network

logger = logging.getLogger(__name__)

FormatChoice = Literal["csv", "parquet", "mixed"]

DEFAULT_FORMATS: dict[str, FileFormat] = {
    "sites": "csv",
    "items": "csv",
    "lanes": "csv",
    "inventory": "csv",
    "in_transit": "csv",
    "purchase_orders": "csv",
    "book_inventory": "csv",
    "demand": "parquet",  # hundreds of thousands to tens of millions of rows
}


def resolve_formats(
    fmt: FormatChoice = "mixed", fmt_by_extract: Mapping[str, FileFormat] | None = None
) -> dict[str, FileFormat]:
    """File format per extract: `fmt` for all ("mixed" = the defaults), then per-extract overrides."""
    if fmt not in ("csv", "parquet", "mixed"):
        raise ValueError(f"fmt must be 'csv', 'parquet' or 'mixed', got {fmt!r}")
    formats: dict[str, FileFormat] = (
        dict(DEFAULT_FORMATS) if fmt == "mixed" else dict.fromkeys(DEFAULT_FORMATS, fmt)
    )
    for extract, chosen in (fmt_by_extract or {}).items():
        if extract not in EXTRACTS:
            raise ValueError(f"unknown extract {extract!r}; known: {', '.join(EXTRACTS)}")
        if chosen not in ("csv", "parquet"):
            raise ValueError(f"format for {extract!r} must be 'csv' or 'parquet', got {chosen!r}")
        formats[extract] = chosen
    return formats


def land_network(
    frames: Mapping[str, pl.DataFrame],
    inbox: Path,
    spec: SampleSpec,
    formats: Mapping[str, FileFormat],
    tag: str | None = None,
) -> list[Path]:
    """Land already generated frames, one file + manifest per extract, in contract order."""
    paths = []
    for extract in EXTRACTS:
        if extract not in frames:
            continue
        path = land_frame(frames[extract], inbox, extract, spec.as_of, formats[extract], tag)
        logger.info("landed %s (%d rows) as %s", extract, frames[extract].height, path.name)
        paths.append(path)
    return paths


def write_sample(
    spec: SampleSpec,
    inbox: Path,
    fmt_by_extract: Mapping[str, FileFormat] | FormatChoice | None = None,
    *,
    fmt: FormatChoice = "mixed",
    tag: str | None = None,
) -> list[Path]:
    """Generate the sample network for `spec` and land every extract in `inbox`; return the data files.

    `fmt_by_extract` maps extracts to "csv"/"parquet"; a plain "csv", "parquet" or "mixed" in its
    place (as `ballast sample --format` passes it) is taken as `fmt`, the format for all.
    """
    if isinstance(fmt_by_extract, str):
        fmt, fmt_by_extract = fmt_by_extract, None
    formats = resolve_formats(fmt, fmt_by_extract)
    frames = generate_network(spec)
    return land_network(frames, inbox, spec, formats, tag)
