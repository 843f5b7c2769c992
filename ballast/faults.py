"""Named crash points for fault-injection tests: `BALLAST_CRASH_AT=<point>` kills the process there.

The process dies with `os._exit` (no cleanup, no atexit, no flush), like `kill -9` at that line.
Unset, each point costs one environment lookup.
"""

from __future__ import annotations

import os

POINTS = frozenset({"ingest_after_commit", "publish_before_commit", "publish_after_commit"})


def crash_point(name: str) -> None:
    if os.environ.get("BALLAST_CRASH_AT") == name:
        os._exit(137)
