"""The inbox landing convention: how an extract file is delivered so it is never read half-way.

A producer (ERP/WMS/TMS export job, or `ballast sample`) delivers an extract in three steps:

1. write the data to a hidden temporary name in the extract's folder
   (``inbox/<extract>/.<name>.part``) and rename it to its final name
   ``<extract>_<YYYYMMDDTHHMMSSZ>[_<tag>].<csv|parquet>`` — the timestamp is the extract's
   ``as_of`` in UTC;
2. compute the file's sha256, byte size and data-row count;
3. write the manifest ``<name>.manifest.json`` the same way (temporary name, then rename).

Ingest reads a data file only once its manifest exists and the file's size and sha256 match it;
a data file without a manifest is reported as *pending* and left in place, one whose bytes do
not match is *incomplete* and rejected with the reason. Hidden files and ``*.part`` files are
never read.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import polars as pl

from ballast.models.contract import EXTRACTS

FileFormat = Literal["csv", "parquet"]

MANIFEST_SUFFIX = ".manifest.json"
TIMESTAMP_FORMAT = "%Y%m%dT%H%M%SZ"
FILE_NAME = re.compile(
    r"^(?P<extract>[a-z_]+?)_(?P<ts>\d{8}T\d{6}Z)(?:_(?P<tag>[A-Za-z0-9-]+))?\.(?P<ext>csv|parquet)$"
)
CSV_DATETIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True, slots=True)
class Manifest:
    """What the producer states about a delivered file."""

    file: str
    extract: str
    as_of: datetime
    sha256: str
    bytes: int
    rows: int

    def to_json(self) -> str:
        return json.dumps(
            {
                "file": self.file,
                "extract": self.extract,
                "as_of": self.as_of.strftime(CSV_DATETIME_FORMAT),
                "sha256": self.sha256,
                "bytes": self.bytes,
                "rows": self.rows,
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        raw = json.loads(text)
        return cls(
            file=str(raw["file"]),
            extract=str(raw["extract"]),
            as_of=datetime.strptime(raw["as_of"], CSV_DATETIME_FORMAT).replace(tzinfo=UTC),
            sha256=str(raw["sha256"]),
            bytes=int(raw["bytes"]),
            rows=int(raw["rows"]),
        )


@dataclass(frozen=True, slots=True)
class FileName:
    """The parts of a landed file's name."""

    extract: str
    as_of: datetime
    tag: str | None
    fmt: FileFormat


def parse_file_name(name: str) -> FileName | None:
    """Split ``inventory_20261123T170000Z.csv`` into its parts; None if it does not follow the convention."""
    m = FILE_NAME.match(name)
    if m is None:
        return None
    as_of = datetime.strptime(m["ts"], TIMESTAMP_FORMAT).replace(tzinfo=UTC)
    fmt: FileFormat = "csv" if m["ext"] == "csv" else "parquet"
    return FileName(extract=m["extract"], as_of=as_of, tag=m["tag"], fmt=fmt)


def file_name(extract: str, as_of: datetime, fmt: FileFormat, tag: str | None = None) -> str:
    """The conventional file name for an extract delivered as of `as_of` (UTC)."""
    stamp = as_of.astimezone(UTC).strftime(TIMESTAMP_FORMAT)
    return f"{extract}_{stamp}{'_' + tag if tag else ''}.{fmt}"


def manifest_path(data_path: Path) -> Path:
    return data_path.with_name(data_path.name + MANIFEST_SUFFIX)


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a file so a reader sees all of it or nothing: temporary name, fsync, rename."""
    tmp = path.with_name(f".{path.name}.part")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_manifest(data_path: Path, extract: str, as_of: datetime, rows: int) -> Manifest:
    """Write the manifest of a complete data file (step 2 and 3 of the convention)."""
    manifest = Manifest(
        file=data_path.name,
        extract=extract,
        as_of=as_of.astimezone(UTC),
        sha256=sha256_of(data_path),
        bytes=data_path.stat().st_size,
        rows=rows,
    )
    atomic_write_bytes(manifest_path(data_path), manifest.to_json().encode())
    return manifest


def land_frame(
    frame: pl.DataFrame,
    inbox: Path,
    extract: str,
    as_of: datetime,
    fmt: FileFormat = "csv",
    tag: str | None = None,
) -> Path:
    """Deliver `frame` into `inbox/<extract>/` following the landing convention; return the data path."""
    if extract not in EXTRACTS:
        raise ValueError(f"unknown extract {extract!r}; known: {', '.join(EXTRACTS)}")
    folder = inbox / extract
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / file_name(extract, as_of, fmt, tag)
    tmp = folder / f".{final.name}.part"
    if fmt == "csv":
        frame.write_csv(tmp, datetime_format=CSV_DATETIME_FORMAT, date_format="%Y-%m-%d")
    else:
        frame.write_parquet(tmp)
    with tmp.open("rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, final)
    write_manifest(final, extract, as_of, frame.height)
    return final
