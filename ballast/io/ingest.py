"""Ingest: move delivered inbox files into the warehouse's `raw_*` tables, exactly once.

Per file, in order of `as_of`:

1. the landing convention is checked (`ballast.io.landing`): no manifest → *pending*, left in
   place; size or sha256 not matching the manifest → *rejected* (truncated or still changing);
2. a file whose sha256 is already in `ingest_files` is a *duplicate* and is not read again;
3. the file is read as text with explicit options — CSV through DuckDB's strict reader with a
   rejects table, so a ragged line, an unclosed quote or non-UTF-8 bytes are reported by line
   instead of being dropped or guessed; Parquet through polars;
4. one transaction writes the `ingest_files` row, the raw rows and the rows the reader
   rejected (to `quarantine`); only after the commit is the file moved to the archive.

A crash before the commit leaves nothing behind (the file is still in the inbox); a crash after
it leaves the file in the inbox with its hash recorded, and the next run only finishes the move.
"""

from __future__ import annotations

import csv
import difflib
import io
import json
import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import duckdb
import polars as pl

from ballast.faults import crash_point
from ballast.io.landing import (
    MANIFEST_SUFFIX,
    Manifest,
    manifest_path,
    parse_file_name,
    sha256_of,
)
from ballast.io.warehouse import insert_frame, one, transaction
from ballast.models.contract import EXTRACTS, Extract

log = logging.getLogger(__name__)

Status = Literal["landed", "duplicate", "pending", "rejected", "unrecognised"]


@dataclass(frozen=True, slots=True)
class FileOutcome:
    """What ingest did with one inbox file."""

    file: str
    extract: str | None
    status: Status
    message: str
    file_id: int | None = None
    rows: int = 0
    rows_rejected: int = 0


@dataclass(frozen=True, slots=True)
class IngestReport:
    outcomes: tuple[FileOutcome, ...] = field(default_factory=tuple)

    def by_status(self, status: Status) -> list[FileOutcome]:
        return [o for o in self.outcomes if o.status == status]


class FileRejected(ValueError):
    """A whole file cannot be taken; the message names the file and the rule it breaks."""


@dataclass(frozen=True, slots=True)
class ReadResult:
    """A file read as text: how many rows, the reader's rejects, the extra columns, and how to
    append the rows to `raw_<extract>` under a file id (inside the ingest transaction)."""

    rows: int
    rejects: pl.DataFrame  # row, line, column, rule, value
    extra_columns: tuple[str, ...]
    write: Callable[[duckdb.DuckDBPyConnection, int], None]


REJECT_SCHEMA = {"row": pl.Int64, "line": pl.Int64, "column": pl.String, "rule": pl.String, "value": pl.String}


def _check_columns(found: list[str], extract: Extract, file: str) -> tuple[str, ...]:
    """Reject a file whose header lacks a contract column; return the extra columns (kept, ignored)."""
    duplicated = sorted({c for c in found if found.count(c) > 1})
    if duplicated:
        raise FileRejected(f"{file}: header repeats column(s) {', '.join(duplicated)}")
    missing = [c for c in extract.column_names if c not in found]
    if missing:
        hints = []
        for name in missing:
            close = difflib.get_close_matches(name, [f for f in found if f not in extract.column_names], n=1)
            hints.append(f"{name!r}" + (f" (found {close[0]!r}: renamed?)" if close else ""))
        raise FileRejected(
            f"{file}: missing required column(s) {', '.join(hints)}; rule: contract:{extract.name} columns; "
            f"header has {', '.join(repr(f) for f in found)}"
        )
    return tuple(c for c in found if c not in extract.column_names)


def _read_header(path: Path) -> list[str]:
    with path.open("rb") as f:
        first = f.readline()
    if not first.strip():
        raise FileRejected(f"{path.name}: empty file (no header line); rule: csv:header")
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FileRejected(f"{path.name}: header line is not UTF-8 ({exc.reason}); rule: csv:encoding") from exc
    return next(csv.reader(io.StringIO(text)))


def _with_extra(frame: pl.DataFrame, extra: tuple[str, ...]) -> pl.DataFrame:
    if not extra:
        return frame.with_columns(pl.lit(None, pl.String).alias("_extra"))
    return frame.with_columns(pl.struct([pl.col(c).cast(pl.String) for c in extra]).struct.json_encode().alias("_extra"))


def read_csv_text(con: duckdb.DuckDBPyConnection, path: Path, extract: Extract) -> ReadResult:
    """Read a CSV as text with DuckDB's strict reader; every line it cannot take is a reject."""
    header = _read_header(path)
    extra = _check_columns(header, extract, path.name)
    # Fresh rejects tables per file: they hold only this read's errors.
    con.execute("DROP TABLE IF EXISTS reject_errors")
    con.execute("DROP TABLE IF EXISTS reject_scans")
    rows = con.sql(
        """SELECT * FROM read_csv($path, header = true, auto_detect = false, columns = $cols,
               delim = ',', quote = '"', escape = '"', strict_mode = true, null_padding = false,
               store_rejects = true, encoding = 'utf-8', max_line_size = 1048576)""",
        params={"path": str(path), "cols": {name: "VARCHAR" for name in header}},
    ).pl()
    # DuckDB may report several errors for one line (one per missing column): keep the first.
    errors = con.sql(
        """SELECT line, first(column_name ORDER BY column_idx), first(error_type ORDER BY column_idx),
                  first(csv_line ORDER BY column_idx), first(error_message ORDER BY column_idx)
           FROM reject_errors GROUP BY line ORDER BY line"""
    ).fetchall()
    reject_lines = sorted({int(e[0]) for e in errors})
    # DuckDB keeps the order of good rows; each takes the next line number not used by a reject.
    lines: list[int] = []
    line, bad = 2, set(reject_lines)
    while len(lines) < rows.height:
        if line not in bad:
            lines.append(line)
        line += 1
    rows = rows.with_columns(pl.Series("_line", lines, dtype=pl.Int64))
    all_lines = sorted(lines + reject_lines)
    row_of_line = {ln: i + 1 for i, ln in enumerate(all_lines)}
    rows = rows.with_columns(pl.col("_line").replace_strict(row_of_line, return_dtype=pl.Int64).alias("_row"))
    rejects = pl.DataFrame(
        [
            {
                "row": row_of_line[int(e[0])],
                "line": int(e[0]),
                "column": e[1],
                "rule": f"csv:{e[2].lower().replace(' ', '_')} — {e[4]}",
                "value": (e[3] or "")[:500],
            }
            for e in errors
        ],
        schema=REJECT_SCHEMA,
    )
    frame = _with_extra(rows, extra).select("_row", "_line", *extract.column_names, "_extra")

    def write(con: duckdb.DuckDBPyConnection, file_id: int) -> None:
        insert_frame(con, f"raw_{extract.name}", frame.with_columns(pl.lit(file_id, pl.Int64).alias("_file_id")))

    return ReadResult(rows=frame.height, rejects=rejects, extra_columns=extra, write=write)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _text_expr(name: str, duck_type: str) -> str:
    """SQL rendering a typed Parquet column as the text a CSV would carry (ISO dates, UTC `Z`)."""
    col = _quote(name)
    if duck_type == "TIMESTAMP WITH TIME ZONE":
        return f"strftime({col}, '%Y-%m-%dT%H:%M:%S.%fZ')"  # the session zone is UTC
    if duck_type.startswith("TIMESTAMP"):
        return f"strftime({col}, '%Y-%m-%dT%H:%M:%S.%f')"  # no zone: the gate will refuse it
    if duck_type == "DATE":
        return f"strftime({col}, '%Y-%m-%d')"
    return f"CAST({col} AS VARCHAR)"


def read_parquet_text(con: duckdb.DuckDBPyConnection, path: Path, extract: Extract) -> ReadResult:
    """Describe a Parquet file; its rows are copied by DuckDB itself, never held in Python."""
    try:
        described = con.sql("DESCRIBE SELECT * FROM read_parquet($path)", params={"path": str(path)}).fetchall()
        rows = one(con, "SELECT count(*) FROM read_parquet(?)", [str(path)])[0]  # type: ignore[index]
    except duckdb.Error as exc:
        raise FileRejected(f"{path.name}: not a readable Parquet file ({exc}); rule: parquet:format") from exc
    types = {r[0]: r[1] for r in described}
    extra = _check_columns(list(types), extract, path.name)
    select = ", ".join(_text_expr(c, types[c]) for c in extract.column_names)
    extra_sql = (
        "to_json(struct_pack(" + ", ".join(f"{_quote(c)} := {_text_expr(c, types[c])}" for c in extra) + "))"
        if extra
        else "NULL"
    )
    columns = ", ".join(_quote(c) for c in ("_file_id", "_row", "_line", *extract.column_names, "_extra"))

    def write(con: duckdb.DuckDBPyConnection, file_id: int) -> None:
        con.execute(
            f"""INSERT INTO raw_{extract.name} ({columns})
                SELECT ?, file_row_number + 1, NULL, {select}, {extra_sql}
                FROM read_parquet(?, file_row_number = true) ORDER BY file_row_number""",
            [file_id, str(path)],
        )

    return ReadResult(rows=int(rows), rejects=pl.DataFrame(schema=REJECT_SCHEMA), extra_columns=extra, write=write)


def scan_inbox(inbox: Path) -> list[Path]:
    """Candidate data files under `inbox/<extract>/`, oldest `as_of` first (hidden and partial files skipped)."""
    found: list[Path] = []
    if not inbox.exists():
        return found
    for folder in sorted(p for p in inbox.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for path in sorted(folder.iterdir()):
            if path.name.startswith(".") or path.name.endswith((".part", MANIFEST_SUFFIX)) or not path.is_file():
                continue
            found.append(path)
    parsed = {p: parse_file_name(p.name) for p in found}
    return sorted(found, key=lambda p: (parsed[p].as_of if parsed[p] else datetime.max.replace(tzinfo=UTC), p.name))


def _unchanged_snapshot_later(extract: Extract, mpath: Path, known_as_of: datetime) -> bool:
    """Same bytes as a file already taken, but a snapshot declared as of a later time: news, not a copy.

    An empty in-transit list or an unchanged PO book delivered again tomorrow says "still so as of
    tomorrow"; skipping it as a duplicate would leave the snapshot looking stale and block planning.
    Demand (not a snapshot) with the same bytes is still a copy: taking it twice would count it twice.
    """
    if not extract.snapshot:
        return False
    try:
        declared = Manifest.from_json(mpath.read_text()).as_of
    except (ValueError, KeyError, OSError):
        return False  # an unreadable manifest is reported by the normal path, not here
    return declared > known_as_of


def _archive(path: Path, inbox: Path, archive: Path, subfolder: str | None = None) -> Path:
    """Move a file and its manifest out of the inbox; never overwrite an archived file."""
    rel = path.parent.relative_to(inbox)
    target_dir = archive / (subfolder or "") / rel
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / path.name
    if target.exists():
        target = target_dir / f"{path.stem}.{sha256_of(path)[:12]}{path.suffix}"
    shutil.move(str(path), target)
    mpath = manifest_path(path)
    if mpath.exists():
        shutil.move(str(mpath), manifest_path(target))
    return target


def _outside_inbox(path: Path, inbox: Path) -> str | None:
    """Why `path` may not be read as inbox content (a link, or a place outside the inbox), else None.

    A symbolic link, or a file reached through a linked folder, could make ingest read (and
    archive) anything the process can see; delivered extracts are plain files in the inbox.
    """
    if path.is_symlink():
        return f"{path.name} is a symbolic link (to {os.readlink(path)})"
    if path.exists() and not path.resolve().is_relative_to(inbox.resolve()):
        return f"{path.name} lies outside the inbox ({path.resolve().parent})"
    return None


def _next_file_id(con: duckdb.DuckDBPyConnection) -> int:
    row = one(con, "SELECT nextval('file_id_seq')")
    assert row is not None
    return int(row[0])


def _record_rejected(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    extract: str,
    sha: str,
    fmt: str,
    as_of: datetime,
    reason: str,
    now: datetime,
    declared: int | None,
) -> int:
    with transaction(con):
        file_id = _next_file_id(con)
        con.execute(
            """INSERT INTO ingest_files VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, NULL, 'rejected', ?, ?)""",
            [file_id, extract, path.name, sha, path.stat().st_size, fmt, as_of, declared, 0, reason, now],
        )
        whole_file = pl.DataFrame(
            [{"row": None, "line": None, "column": None, "rule": reason, "value": None}], schema=REJECT_SCHEMA
        )
        _insert_quarantine(con, file_id, extract, path.name, whole_file, now)
    return file_id


def _insert_quarantine(
    con: duckdb.DuckDBPyConnection, file_id: int, extract: str, file_name: str, rejects: pl.DataFrame, now: datetime
) -> None:
    if rejects.is_empty():
        return
    insert_frame(
        con,
        "quarantine",
        rejects.with_columns(
            pl.lit(file_id, pl.Int64).alias("file_id"),
            pl.lit(extract).alias("extract"),
            pl.lit(file_name).alias("file_name"),
            pl.lit("ingest").alias("stage"),
            pl.lit(now).cast(pl.Datetime("us", "UTC")).alias("detected_at"),
        ),
    )


def ingest_file(
    con: duckdb.DuckDBPyConnection, path: Path, inbox: Path, archive: Path, now: datetime
) -> FileOutcome:
    """Take one delivered file into `raw_<extract>` (see the module docstring for the steps)."""
    name = parse_file_name(path.name)
    if name is None or name.extract not in EXTRACTS or path.parent.name != name.extract:
        return FileOutcome(
            str(path), None, "unrecognised",
            f"{path.name}: not a contract file name (<extract>_<YYYYMMDDTHHMMSSZ>.csv|parquet in "
            f"inbox/<extract>/; extracts: {', '.join(EXTRACTS)}); left in place",
        )
    extract = EXTRACTS[name.extract]
    mpath = manifest_path(path)
    escape = _outside_inbox(path, inbox) or _outside_inbox(mpath, inbox)
    if escape:
        return FileOutcome(
            str(path), extract.name, "unrecognised",
            f"{escape}: only regular files inside the inbox are read; left in place, not read",
        )
    if not mpath.exists():
        return FileOutcome(
            str(path), extract.name, "pending",
            f"{path.name}: no manifest yet ({mpath.name}); treated as still being written, left in place",
        )
    sha = sha256_of(path)
    known = one(
        con,
        """SELECT file_id, file_name, status, as_of FROM ingest_files WHERE sha256 = ?
           ORDER BY file_name = ? DESC, as_of DESC, file_id LIMIT 1""",
        [sha, path.name],
    )
    if known is not None and (known[1] == path.name or not _unchanged_snapshot_later(extract, mpath, known[3])):
        file_id, known_name, known_status, _ = known
        if known_name == path.name:
            subfolder = "rejected" if known_status == "rejected" else None
            _archive(path, inbox, archive, subfolder)
            return FileOutcome(
                str(path), extract.name, "duplicate",
                f"{path.name}: already ingested as file {file_id}; archive move completed", file_id=file_id,
            )
        _archive(path, inbox, archive, "duplicates")
        return FileOutcome(
            str(path), extract.name, "duplicate",
            f"{path.name}: same bytes as {known_name} (file {file_id}); not ingested again, moved to duplicates/",
            file_id=file_id,
        )
    declared: int | None = None
    try:
        try:
            manifest = Manifest.from_json(mpath.read_text())
        except (ValueError, KeyError) as exc:
            raise FileRejected(f"{path.name}: unreadable manifest {mpath.name} ({exc}); rule: landing:manifest") from exc
        declared = manifest.rows
        size = path.stat().st_size
        if manifest.file != path.name or manifest.extract != extract.name:
            raise FileRejected(
                f"{path.name}: its manifest describes {manifest.extract!r} file {manifest.file!r}, not this file; "
                "rule: landing:manifest"
            )
        if manifest.bytes != size or manifest.sha256 != sha:
            raise FileRejected(
                f"{path.name}: bytes do not match the manifest (size {size} vs {manifest.bytes}, sha256 "
                f"{sha[:12]}… vs {manifest.sha256[:12]}…): truncated or changed after delivery; rule: landing:checksum"
            )
        if size == 0:
            raise FileRejected(f"{path.name}: empty file (0 bytes); rule: landing:empty")
        read = read_csv_text(con, path, extract) if name.fmt == "csv" else read_parquet_text(con, path, extract)
        records = read.rows + read.rejects.height
        if records != manifest.rows:
            unreadable = "; ".join(
                f"line {r['line']}: {r['rule']}" for r in read.rejects.head(3).iter_rows(named=True)
            )
            raise FileRejected(
                f"{path.name}: manifest declares {manifest.rows} data rows, the file holds {records} "
                f"({read.rejects.height} unreadable{': ' + unreadable if unreadable else ''}); rule: landing:row_count"
            )
    except FileRejected as exc:
        file_id = _record_rejected(con, path, extract.name, sha, name.fmt, name.as_of, str(exc), now, declared)
        _archive(path, inbox, archive, "rejected")
        log.warning("%s", exc)
        return FileOutcome(str(path), extract.name, "rejected", str(exc), file_id=file_id)

    with transaction(con):
        file_id = _next_file_id(con)
        con.execute(
            """INSERT INTO ingest_files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'landed', NULL, ?)""",
            [file_id, extract.name, path.name, sha, path.stat().st_size, name.fmt, name.as_of, declared,
             read.rows, read.rejects.height, json.dumps(list(read.extra_columns)), now],
        )
        read.write(con, file_id)
        _insert_quarantine(con, file_id, extract.name, path.name, read.rejects, now)
        crash_point("ingest_before_commit")
    crash_point("ingest_after_commit")
    _archive(path, inbox, archive)
    msg = f"{path.name}: {read.rows} rows landed"
    if read.rejects.height:
        msg += f", {read.rejects.height} unreadable line(s) quarantined"
    if read.extra_columns:
        msg += f"; extra columns kept, ignored: {', '.join(read.extra_columns)}"
    return FileOutcome(
        str(path), extract.name, "landed", msg, file_id=file_id, rows=read.rows,
        rows_rejected=read.rejects.height,
    )


def ingest_inbox(
    con: duckdb.DuckDBPyConnection, inbox: Path, archive: Path, now: datetime | None = None
) -> IngestReport:
    """Ingest every delivered file in the inbox; one file's failure never stops the others."""
    now = now or datetime.now(UTC)
    outcomes = [ingest_file(con, path, inbox, archive, now) for path in scan_inbox(inbox)]
    for o in outcomes:
        log.info("ingest %s: %s", o.status, o.message)
    return IngestReport(tuple(outcomes))
