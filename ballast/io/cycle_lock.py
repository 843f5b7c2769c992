"""One writer at a time: an OS file lock around a cycle's write phase.

Prefect's deployment concurrency limit keeps scheduled cycles from overlapping, but a cycle or a
backfill started by hand knows nothing of it, and DuckDB fails a second writing process at once.
The lock file beside the warehouse says who holds it, so the second cycle can exit with a clear
message instead of a lock error from deep inside DuckDB.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path


class CycleBusy(RuntimeError):
    """Another cycle holds the write lock."""


def lock_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".cycle.lock")


@contextmanager
def cycle_lock(db_path: Path, purpose: str) -> Iterator[None]:
    """Hold the write lock for the block, or raise `CycleBusy` at once naming the holder."""
    path = lock_path(db_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "unknown"
            raise CycleBusy(
                f"another ballast cycle is writing to {db_path} ({holder}); this one exits without "
                "writing — the next scheduled cycle will pick up the same inputs"
            ) from None
        info = json.dumps(
            {"pid": os.getpid(), "host": socket.gethostname(), "purpose": purpose,
             "since": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
        ).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, info, 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
