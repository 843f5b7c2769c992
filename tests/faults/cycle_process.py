"""Run `ballast` commands in killable child processes that start in well under a second.

Importing ballast's stack (Prefect, MLflow, StatsForecast, DuckDB) takes ~10 s on a busy 2-core
machine, so a fault test that killed a fresh interpreter a dozen times would spend minutes on
imports. Children come from a multiprocessing *forkserver* that imported the stack once: each
one is a real OS process with its own session (`os.setsid`), running the real CLI, and dies to a
real SIGKILL of its process group. They talk to the test session's Prefect API server (the
`prefect_harness` fixture), the way a deployment's runs talk to a Prefect server.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

PRELOAD = ["ballast.cli", "ballast.flows.planning_cycle", "mlflow", "statsforecast", "pyomo.environ"]
_CTX = mp.get_context("forkserver")
_CTX.set_forkserver_preload(PRELOAD)


def _child(argv: list[str], env: dict[str, str], log_path: str, api_url: str) -> None:
    os.setsid()  # its own process group, as a scheduler-started run would have
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115 - lives as long as the process
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    for key in [k for k in os.environ if k.startswith(("BALLAST_", "MLFLOW_"))]:
        del os.environ[key]
    os.environ.update(env)
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from ballast.cli import app

    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        app(args=argv, prog_name="ballast")


@dataclass
class CycleProcess:
    """A `ballast` command running in a child process; `log` collects its output."""

    process: mp.process.BaseProcess
    log: Path
    started: float

    @property
    def pid(self) -> int:
        return int(self.process.pid or 0)

    def wait(self, timeout: float = 300.0) -> int:
        self.process.join(timeout)
        if self.process.exitcode is None:
            self.kill()
            raise TimeoutError(f"`ballast` child {self.pid} still running after {timeout:.0f} s:\n{self.output()}")
        return self.exitcode

    @property
    def exitcode(self) -> int:
        code = self.process.exitcode
        assert code is not None
        return 128 - code if code < 0 else code  # -9 (killed by SIGKILL) reads as the shell's 137

    def kill(self) -> None:
        """SIGKILL the whole process group (the cycle and anything it started), then reap it."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        self.process.join(30)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""


def start(argv: list[str], home: Path, api_url: str, log_name: str, env: dict[str, str] | None = None) -> CycleProcess:
    """Start `ballast <argv>` on BALLAST_HOME=`home` (plus `env`) in a fresh child process."""
    log = home / "logs" / f"{log_name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    child_env = {"BALLAST_HOME": str(home), **(env or {})}
    proc = _CTX.Process(target=_child, args=(argv, child_env, str(log), api_url), daemon=False)
    proc.start()
    return CycleProcess(proc, log, time.monotonic())


def run(
    argv: list[str], home: Path, api_url: str, log_name: str, env: dict[str, str] | None = None, timeout: float = 300.0
) -> tuple[int, str]:
    proc = start(argv, home, api_url, log_name, env)
    code = proc.wait(timeout)
    return code, proc.output()
