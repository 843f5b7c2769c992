from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ballast.io.cycle_lock import CycleBusy, cycle_lock


def test_second_process_exits_clearly_while_the_first_holds_the_lock(tmp_path: Path):
    db = tmp_path / "ballast.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from pathlib import Path
            from ballast.io.cycle_lock import cycle_lock
            with cycle_lock(Path({str(db)!r}), "planning cycle"):
                print("held", flush=True)
                sys.stdin.readline()
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(CycleBusy, match=r"another ballast cycle .*planning cycle"), cycle_lock(db, "second"):
            pass
    finally:
        holder.communicate("done\n", timeout=30)
    with cycle_lock(db, "after"):  # released when the holder ends
        pass
