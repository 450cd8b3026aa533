"""Run Python code in a child process and measure its peak memory.

Tests of untrusted inputs use this: the crafted file is read in a fresh interpreter, so
the peak resident memory of that child alone measures what reading it cost, and a
runaway allocation cannot take the test runner down with it (the child also runs under
an address-space limit). The child reports its own peak at exit
(``child_site/sitecustomize.py``); a child killed before it could is judged by
``ru_maxrss``, which also counts the runner's memory from before the exec (an upper
bound).
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

CHILD_SITE = Path(__file__).parent / "child_site"


@dataclass(frozen=True)
class ChildResult:
    returncode: int  # negative: killed by that signal
    stdout: str
    stderr: str
    peak_mb: float  # peak resident set size of the child, in MiB


def run_child(
    args: list[str],
    *,
    limit_mb: int = 6144,
    cwd: str | os.PathLike | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 300,
) -> ChildResult:
    """Run ``python args...`` with at most ``limit_mb`` MiB of address space.

    Returns the exit status, the output and the child's peak resident memory. The
    address-space limit counts virtual memory (numba and the BLAS threads reserve a lot
    of it), so it is a generous backstop; tests assert on ``peak_mb``.
    """
    limit = limit_mb << 20

    def limit_address_space() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(CHILD_SITE), env.get("PYTHONPATH")]))
    with (
        tempfile.TemporaryFile("w+") as out,
        tempfile.TemporaryFile("w+") as err,
        tempfile.TemporaryDirectory() as scratch,
    ):
        env["NNSCRATCH_TEST_PEAK_FILE"] = peak_file = os.path.join(scratch, "peak_kib")
        process = subprocess.Popen(
            [sys.executable, *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            preexec_fn=limit_address_space,
        )
        timer = threading.Timer(timeout, os.kill, (process.pid, signal.SIGKILL))
        timer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            timer.cancel()
        process.returncode = os.waitstatus_to_exitcode(status)  # already reaped: keep Popen quiet
        out.seek(0)
        err.seek(0)
        peak_kib = usage.ru_maxrss
        if os.path.exists(peak_file):
            with open(peak_file) as reported:
                peak_kib = int(reported.read())
        return ChildResult(process.returncode, out.read(), err.read(), peak_kib / 1024)


def python_baseline_mb() -> float:
    """Peak memory of a child that only imports nnscratch (what every child costs anyway)."""
    return run_child(["-c", "import nnscratch, nnscratch.io, nnscratch.data"]).peak_mb
