"""Named crash points for fault-injection tests: `BALLAST_CRASH_AT=<point>` kills the process there.

The process dies with `os._exit` (no cleanup, no atexit, no flush), like `kill -9` at that line.
Unset, each point costs one environment lookup.
"""

from __future__ import annotations

import os

POINTS = frozenset({
    "ingest_before_commit",  # raw rows written, transaction still open
    "ingest_after_commit",  # file recorded, not yet moved to the archive
    "publish_before_commit",  # plan, orders, audit and releases written, transaction still open
    "publish_after_commit",  # plan committed, outbox files not yet written
    "outbox_after_files",  # outbox files renamed into place, delivery not yet recorded
})


def crash_point(name: str) -> None:
    if os.environ.get("BALLAST_CRASH_AT") == name:
        os._exit(137)
