"""The worker processes of ``nnscratch bench`` and the JSON-lines protocol between them
and the parent: the parent writes a command on the worker's stdin, the worker answers
with one line ``{"result": ...}`` or ``{"error": ...}`` on its stdout.

A worker runs ``python -m nnscratch.bench --worker KIND``: ``nnscratch`` or ``torch`` serve
measurements until ``quit``; ``probe-nnscratch`` or ``probe-torch`` time one fresh start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from typing import Any

from nnscratch.bench.config import BenchConfig
from nnscratch.bench.nnscratch_runner import NnRunner
from nnscratch.bench.probes import (
    MEMORY_METHOD,
    can_reset_peak,
    peak_bytes,
    reset_peak,
    rss_bytes,
    timed,
)
from nnscratch.bench.torch_twin import TorchRunner


# ----------------------------------------------------------------------- the parent's side
def _worker_env(threads: int, blas_thread_timeout: int | None) -> dict:
    """The environment of a worker: every thread pool sized to ``threads``."""
    env = dict(os.environ)
    for name in (
        "OMP_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "MKL_NUM_THREADS",
        "NUMBA_NUM_THREADS",
        "NNSCRATCH_NUM_THREADS",
    ):
        env[name] = str(threads)
    if blas_thread_timeout is not None:
        env["OPENBLAS_THREAD_TIMEOUT"] = str(blas_thread_timeout)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class Worker:
    """A child process running one framework, driven by JSON lines on stdin/stdout."""

    def __init__(self, framework: str, config: BenchConfig, spec: dict, threads: int):
        self.framework = framework
        self.message = {"config": asdict(config), "spec": spec, "threads": threads}
        self.stderr = tempfile.TemporaryFile(mode="w+")
        self.proc: subprocess.Popen | None = None

    def start(self) -> dict:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nnscratch.bench", "--worker", self.framework],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            env=_worker_env(self.message["threads"], self.message["config"]["blas_thread_timeout"]),
        )
        return self._send(self.message)

    def call(self, command: str, **kwargs) -> Any:
        return self._send({"command": command, **kwargs})

    def _send(self, message: dict) -> Any:
        assert self.proc is not None and self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(message) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            self.stderr.seek(0)
            tail = self.stderr.read()[-2000:]
            raise RuntimeError(
                f"the {self.framework} benchmark worker exited with status "
                f"{self.proc.returncode}:\n{tail}"
            )
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"the {self.framework} benchmark worker failed: {reply['error']}")
        return reply["result"]

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.stdin.write(json.dumps({"command": "quit"}) + "\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self.stderr.close()


def startup_times(framework: str, config: BenchConfig, spec: dict, threads: int) -> dict:
    """Launch a fresh process, run two training steps, and time it from the launch."""
    worker = Worker(f"probe-{framework}", config, spec, threads)
    launched = time.time()
    try:
        marks = worker.start()
    finally:
        worker.close()
    return {
        "start_to_imports_s": marks["imported"] - launched,
        "start_to_first_step_start_s": marks["first_step_start"] - launched,
        "start_to_first_step_end_s": marks["first_step_end"] - launched,
        "first_step_s": marks["first_step_end"] - marks["first_step_start"],
        "warm_step_s": marks["second_step_end"] - marks["first_step_end"],
    }


# ----------------------------------------------------------------------- inside a worker
def serve(kind: str) -> int:
    """Serve one framework's measurements: read commands, answer with JSON lines."""
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # anything else printed (warnings, numba) goes to stderr
    message = json.loads(sys.stdin.readline())
    config = BenchConfig(**message["config"])

    def reply(**payload) -> None:
        protocol.write(json.dumps(payload) + "\n")

    if kind.startswith("probe-"):
        reply(result=_probe_steps(kind.removeprefix("probe-"), config, message["spec"]))
        return 0
    try:
        runner = NnRunner(config) if kind == "nnscratch" else TorchRunner(config, message)
    except Exception as error:  # report, so the parent can show it
        reply(error=f"{type(error).__name__}: {error}")
        return 1
    baseline = rss_bytes()
    reply(result={**runner.describe(), "baseline_rss_mib": baseline / 2**20})
    for line in sys.stdin:
        request = json.loads(line)
        command = request.pop("command")
        if command == "quit":
            break
        try:
            if command == "warmup":
                for _ in range(request["steps"]):
                    runner.train_step()
                runner.infer_step()
                result: Any = None
            elif command == "train":
                result = {"times": [timed(runner.train_step) for _ in range(request["steps"])]}
            elif command == "infer":
                result = {"times": [timed(runner.infer_step) for _ in range(request["steps"])]}
            elif command == "reset_peak":
                result = reset_peak()
            elif command == "memory":
                peak = peak_bytes()
                result = {
                    "baseline_mib": baseline / 2**20,
                    "peak_mib": peak / 2**20,
                    "step_peak_mib": (peak - baseline) / 2**20,
                    "method": MEMORY_METHOD if can_reset_peak() else "ru_maxrss - baseline",
                }
            elif command == "breakdown":
                result = runner.breakdown(request["steps"])
            else:
                raise ValueError(f"unknown command {command!r}")
            reply(result=result)
        except Exception as error:
            reply(error=f"{type(error).__name__}: {error}")
    return 0


def _probe_steps(framework: str, config: BenchConfig, spec: dict) -> dict:
    """Import, build and run two training steps; absolute wall-clock times of each mark."""
    import numpy  # noqa: F401  (counted in the import time of both frameworks)

    marks = {}
    if framework == "nnscratch":
        from nnscratch import models, nn, optim  # noqa: F401

        marks["imported"] = time.time()
        runner: Any = NnRunner(config)
    else:
        import torch  # noqa: F401

        marks["imported"] = time.time()
        runner = TorchRunner(config, {"spec": spec, "threads": int(os.environ["OMP_NUM_THREADS"])})
    marks["first_step_start"] = time.time()
    runner.train_step()
    marks["first_step_end"] = time.time()
    runner.train_step()
    marks["second_step_end"] = time.time()
    return marks
