"""``nnscratch bench``: how fast a training step and inference run, and in how much memory.

For one model, batch and image size it measures, each in fresh worker processes:

- images/s of a full training step (forward, cross-entropy, backward, SGD with
  momentum 0.9 and weight decay 5e-4) and of inference (``eval()`` under
  ``no_grad()``): the median of ``steps`` timed steps after ``warmup`` untimed ones;
- the peak memory of the training step: the peak resident set size (Linux ``VmHWM``,
  reset just before the timed steps) minus the resident size after imports, model,
  optimizer and batch were set up. It counts activations, gradients, momentum
  buffers and scratch space;
- start-up: seconds from the launch of a fresh process to the end of its first
  training step (numba compiles, or loads its cache, during that step), measured in
  two processes one after the other, and the time of a warm step;
- a breakdown of one training step by layer type, from timers that the benchmark
  wraps around each layer's forward and backward (only in its own worker).

With ``--compare-torch`` the same architecture is built in PyTorch from a plain
description of the nnscratch model (no torchvision needed), run with the same number of
threads in its own worker, and timed step by step in alternation with nnscratch, so
both see the same machine load; every figure then has a ratio nnscratch / torch.

This module imports only the standard library at the top: the parent process stays
light, and the torch worker never imports numba (nor the nnscratch worker torch).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from typing import Any

CATEGORIES = (
    "conv_forward",
    "conv_backward",
    "batch_norm",
    "relu",
    "pooling",
    "linear_loss",
    "optimizer",
    "other",
)
MEMORY_METHOD = (
    "peak resident set size of the worker during the timed training steps (Linux VmHWM, "
    "reset before them) minus its resident size after imports, model, optimizer and batch"
)
STARTUP_GOAL_S = 5.0
_PAUSE_S = 0.1  # between two workers' turns, so one's spinning threads have gone quiet


@dataclass
class BenchConfig:
    """What to benchmark; every field is a command-line option."""

    model: str = "resnet18"
    stem: str = "cifar"
    width: float = 1.0
    num_classes: int = 10
    batch_size: int = 64
    image_size: int = 32
    in_channels: int = 3
    dtype: str = "float32"
    steps: int = 10
    warmup: int = 2
    threads: int = 0  # 0: every core
    compare_torch: bool = False
    breakdown: bool = True
    startup: bool = True
    seed: int = 0
    blas_thread_timeout: int | None = None  # OPENBLAS_THREAD_TIMEOUT for the workers

    def validate(self) -> None:
        from nnscratch import models

        if self.model not in models.names():
            raise ValueError(
                f"unknown model {self.model!r}; choose one of {', '.join(models.names())}"
            )
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"--dtype must be float32 or float64, got {self.dtype!r}")
        for name in ("batch_size", "image_size", "steps", "num_classes", "in_channels"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be positive")
        if self.blas_thread_timeout is not None and self.blas_thread_timeout < 1:
            raise ValueError("--blas-thread-timeout must be positive")
        if self.warmup < 0 or self.threads < 0:
            raise ValueError("--warmup and --threads must not be negative")
        if self.width <= 0:
            raise ValueError(f"--width must be positive, got {self.width}")

    def model_kwargs(self) -> dict:
        from nnscratch import models

        kwargs = {
            "num_classes": self.num_classes,
            "in_channels": self.in_channels,
            "width": self.width,
            "seed": self.seed,
        }
        if models.supports_stem(self.model):
            kwargs["stem"] = self.stem
        return kwargs


# ======================================================================= command line
def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``nnscratch bench`` and ``python -m nnscratch.bench``."""
    d = BenchConfig()
    p.add_argument("--model", default=d.model, help=f"model name (default {d.model})")
    p.add_argument(
        "--stem", choices=["cifar", "imagenet"], default=d.stem,
        help="ResNet-18..152 only: 3x3 CIFAR stem or 7x7 + max-pool ImageNet stem (default cifar)",
    )  # fmt: skip
    p.add_argument("--width", type=float, default=d.width, help="channel multiplier (default 1)")
    p.add_argument("--num-classes", type=int, default=d.num_classes, help="default 10")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="default 64")
    p.add_argument("--image-size", type=int, default=d.image_size, help="height = width (32)")
    p.add_argument("--in-channels", type=int, default=d.in_channels, help="default 3")
    p.add_argument("--dtype", choices=["float32", "float64"], default=d.dtype)
    p.add_argument("--steps", type=int, default=d.steps, help="timed steps (median; default 10)")
    p.add_argument("--warmup", type=int, default=d.warmup, help="untimed steps first (2)")
    p.add_argument("--threads", type=int, default=d.threads, help="threads (default: all cores)")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of weights and batch (0)")
    p.add_argument(
        "--blas-thread-timeout", type=int, default=None, metavar="N",
        help="set OPENBLAS_THREAD_TIMEOUT=N in the workers: OpenBLAS's idle threads then "
        "spin 2**N cycles (default 2**28) before sleeping (default: leave it unset)",
    )  # fmt: skip
    p.add_argument(
        "--compare-torch", action="store_true",
        help="also run the same model in PyTorch (if importable), alternating step by step",
    )  # fmt: skip
    p.add_argument("--no-breakdown", action="store_true", help="skip the per-layer breakdown")
    p.add_argument("--no-startup", action="store_true", help="skip the fresh-process start-up")
    p.add_argument("--json", action="store_true", help="print one JSON document")


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    return BenchConfig(
        model=args.model,
        stem=args.stem,
        width=args.width,
        num_classes=args.num_classes,
        batch_size=args.batch_size,
        image_size=args.image_size,
        in_channels=args.in_channels,
        dtype=args.dtype,
        steps=args.steps,
        warmup=args.warmup,
        threads=args.threads,
        compare_torch=args.compare_torch,
        breakdown=not args.no_breakdown,
        startup=not args.no_startup,
        seed=args.seed,
        blas_thread_timeout=args.blas_thread_timeout,
    )


def run(args: argparse.Namespace) -> int:
    """Run the benchmark from parsed options; print JSON or a table; return 0."""
    config = config_from_args(args)
    result = benchmark(config, progress=None if args.json else sys.stderr)
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m nnscratch.bench [options]``; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["--worker"]:
        return _worker(argv[1])
    parser = argparse.ArgumentParser(
        prog="python -m nnscratch.bench", description=__doc__.split("\n")[0].strip("`")
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except (ValueError, TypeError) as error:
        print(f"nnscratch bench: error: {error}", file=sys.stderr)
        return 2


# ======================================================================= the parent
def benchmark(config: BenchConfig, progress=None) -> dict:
    """Measure ``config`` in worker processes and return the result as plain data."""
    config.validate()
    threads = config.threads or os.cpu_count() or 1
    say = (lambda text: print(f"[bench] {text}", file=progress, flush=True)) if progress else None
    frameworks = ["nnscratch"]
    torch_note = None
    if config.compare_torch:
        if _torch_importable():
            frameworks.append("torch")
        else:
            torch_note = "torch is not importable: --compare-torch skipped"
    from nnscratch import models

    spec = architecture_spec(models.create(config.model, **config.model_kwargs()))
    result: dict[str, Any] = {
        "config": {**asdict(config), "threads": threads},
        "environment": _environment(),
        "memory_method": MEMORY_METHOD,
    }
    if torch_note:
        result["note"] = torch_note

    if config.startup:
        for fw in frameworks:
            runs = 2 if fw == "nnscratch" else 1
            probes = []
            for index in range(runs):
                if say:
                    say(f"{fw}: fresh process {index + 1} of {runs} to its first training step")
                probes.append(_probe(fw, config, spec, threads))
            result.setdefault(fw, {})["startup"] = {
                "first_process": probes[0],
                **({"second_process": probes[1]} if runs > 1 else {}),
            }

    workers = {fw: _Worker(fw, config, spec, threads) for fw in frameworks}
    try:
        ready = {fw: w.start() for fw, w in workers.items()}
        for fw, info in ready.items():
            result.setdefault(fw, {})["setup"] = info
        if "torch" in ready and ready["torch"]["parameters"] != ready["nnscratch"]["parameters"]:
            raise RuntimeError(
                f"the PyTorch twin has {ready['torch']['parameters']} parameters, nnscratch "
                f"{ready['nnscratch']['parameters']}: the architectures differ"
            )
        if say:
            say(f"warm-up: {config.warmup} training steps and 1 inference step each")
        for w in workers.values():
            w.call("warmup", steps=config.warmup)
            time.sleep(_PAUSE_S)
        for w in workers.values():
            w.call("reset_peak")
        for mode in ("train", "infer"):
            times: dict[str, list[float]] = {fw: [] for fw in workers}
            for step in range(config.steps):
                if say:
                    say(f"{mode} step {step + 1}/{config.steps}")
                for fw, w in workers.items():
                    times[fw] += w.call(mode, steps=1)["times"]
                    time.sleep(_PAUSE_S)
            if mode == "train":
                for fw, w in workers.items():
                    result[fw]["memory"] = w.call("memory")
            for fw in workers:
                median = statistics.median(times[fw])
                result[fw][mode] = {
                    "images_per_s": config.batch_size / median,
                    "step_s_median": median,
                    "step_s": times[fw],
                }
        if config.breakdown:
            if say:
                say("breakdown of a training step by layer type (nnscratch)")
            result["nnscratch"]["breakdown"] = workers["nnscratch"].call(
                "breakdown", steps=max(1, min(3, config.steps))
            )
    finally:
        for w in workers.values():
            w.close()
    if "torch" in frameworks:
        result["ratio"] = _ratios(result["nnscratch"], result["torch"])
    result["goals"] = _goals(result)
    return result


def _torch_importable() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def _environment() -> dict:
    env = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu": _cpu_name(),
        "cores": os.cpu_count(),
    }
    for name in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OPENBLAS_THREAD_TIMEOUT"):
        env[name] = os.environ.get(name)
    return env


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ratios(nn: dict, torch: dict) -> dict:
    """nnscratch / torch for each figure (above 1 is better for throughput, worse otherwise)."""
    ratio = {
        "train_images_per_s": nn["train"]["images_per_s"] / torch["train"]["images_per_s"],
        "infer_images_per_s": nn["infer"]["images_per_s"] / torch["infer"]["images_per_s"],
    }
    if nn["memory"]["step_peak_mib"] and torch["memory"]["step_peak_mib"]:
        ratio["train_step_peak_memory"] = (
            nn["memory"]["step_peak_mib"] / torch["memory"]["step_peak_mib"]
        )
    if "startup" in nn and "startup" in torch:
        latest = nn["startup"].get("second_process", nn["startup"]["first_process"])
        ratio["start_to_first_step_end"] = (
            latest["start_to_first_step_end_s"]
            / torch["startup"]["first_process"]["start_to_first_step_end_s"]
        )
        ratio["warm_step"] = (
            latest["warm_step_s"] / torch["startup"]["first_process"]["warm_step_s"]
        )
    return ratio


def _goals(result: dict) -> dict:
    """The DESIGN goals that this run can check (None where it measured nothing)."""
    goals: dict[str, Any] = {}
    startup = result.get("nnscratch", {}).get("startup", {})
    if "second_process" in startup:
        goals["second_process_first_step_within_s"] = STARTUP_GOAL_S
        goals["second_process_first_step_ok"] = (
            startup["second_process"]["start_to_first_step_start_s"] <= STARTUP_GOAL_S
        )
    ratio = result.get("ratio")
    if ratio:
        goals["train_ratio_at_least_0_6"] = ratio["train_images_per_s"] >= 0.6
        goals["infer_ratio_at_least_0_6"] = ratio["infer_images_per_s"] >= 0.6
        if "train_step_peak_memory" in ratio:
            goals["memory_ratio_at_most_1_5"] = ratio["train_step_peak_memory"] <= 1.5
    return goals


# ----------------------------------------------------------------------- workers
def _worker_env(threads: int, blas_thread_timeout: int | None) -> dict:
    """The environment of a worker: every thread pool sized to ``threads``."""
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                 "NUMBA_NUM_THREADS", "NNSCRATCH_NUM_THREADS"):  # fmt: skip
        env[name] = str(threads)
    if blas_thread_timeout is not None:
        env["OPENBLAS_THREAD_TIMEOUT"] = str(blas_thread_timeout)
    env["PYTHONUNBUFFERED"] = "1"
    return env


class _Worker:
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


def _probe(framework: str, config: BenchConfig, spec: dict, threads: int) -> dict:
    """Launch a fresh process, run two training steps, and time it from the launch."""
    worker = _Worker(f"probe-{framework}", config, spec, threads)
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


# ======================================================================= inside a worker
def _worker(kind: str) -> int:
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
        runner = _NnRunner(config) if kind == "nnscratch" else _TorchRunner(config, message)
    except Exception as error:  # report, so the parent can show it
        reply(error=f"{type(error).__name__}: {error}")
        return 1
    baseline = _rss_bytes()
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
                result = {"times": [_timed(runner.train_step) for _ in range(request["steps"])]}
            elif command == "infer":
                result = {"times": [_timed(runner.infer_step) for _ in range(request["steps"])]}
            elif command == "reset_peak":
                result = _reset_peak()
            elif command == "memory":
                peak = _peak_bytes()
                result = {
                    "baseline_mib": baseline / 2**20,
                    "peak_mib": peak / 2**20,
                    "step_peak_mib": (peak - baseline) / 2**20,
                    "method": MEMORY_METHOD if _can_reset_peak() else "ru_maxrss - baseline",
                }
            elif command == "breakdown":
                result = runner.breakdown(request["steps"])
            else:
                raise ValueError(f"unknown command {command!r}")
            reply(result=result)
        except Exception as error:
            reply(error=f"{type(error).__name__}: {error}")
    return 0


def _timed(step) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def _probe_steps(framework: str, config: BenchConfig, spec: dict) -> dict:
    """Import, build and run two training steps; absolute wall-clock times of each mark."""
    import numpy  # noqa: F401  (counted in the import time of both frameworks)

    marks = {}
    if framework == "nnscratch":
        from nnscratch import models, nn, optim  # noqa: F401

        marks["imported"] = time.time()
        runner: Any = _NnRunner(config)
    else:
        import torch  # noqa: F401

        marks["imported"] = time.time()
        runner = _TorchRunner(config, {"spec": spec, "threads": int(os.environ["OMP_NUM_THREADS"])})
    marks["first_step_start"] = time.time()
    runner.train_step()
    marks["first_step_end"] = time.time()
    runner.train_step()
    marks["second_step_end"] = time.time()
    return marks


# ----------------------------------------------------------------------- memory (Linux)
def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _status_bytes(field: str) -> int:
    """A /proc/self/status size (VmRSS, VmHWM) in bytes; the peak RSS where there is none."""
    kib = _status_kib(field)
    if kib is None:
        import resource

        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib * 1024


def _rss_bytes() -> int:
    return _status_bytes("VmRSS")


def _can_reset_peak() -> bool:
    return os.path.exists("/proc/self/clear_refs")


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS; False if not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_bytes() -> int:
    return _status_bytes("VmHWM")


# ----------------------------------------------------------------------- thread pools
def _thread_pools() -> list[dict]:
    """threadpoolctl's view of the BLAS/OpenMP pools (which kernel, how many threads)."""
    from threadpoolctl import threadpool_info

    keys = ("user_api", "internal_api", "prefix", "version", "num_threads", "architecture",
            "threading_layer")  # fmt: skip
    return [{k: info.get(k) for k in keys if k in info} for info in threadpool_info()]


# ----------------------------------------------------------------------- nnscratch
class _NnRunner:
    """nnscratch model, SGD, loss and a fixed random batch."""

    def __init__(self, config: BenchConfig):
        import numpy as np

        from nnscratch import models, nn, optim

        self.np, self.nn = np, nn
        self.config = config
        self.model = models.create(config.model, **config.model_kwargs()).to(config.dtype)
        self.optimizer = optim.SGD(self.model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
        self.criterion = nn.CrossEntropyLoss()
        rng = np.random.default_rng(config.seed)
        shape = (config.batch_size, config.in_channels, config.image_size, config.image_size)
        self.x = rng.standard_normal(shape).astype(config.dtype)
        self.t = rng.integers(0, config.num_classes, config.batch_size)

    def describe(self) -> dict:
        import numba
        import numpy as np

        from nnscratch.functional.fast.workers import num_workers

        info = {
            "framework": "nnscratch",
            "parameters": self.model.num_parameters(),
            "numpy": np.__version__,
            "numba": numba.__version__,
            "numba_threads": numba.config.NUMBA_NUM_THREADS,
            "workers": num_workers(),
        }
        self.infer_step()  # loads the kernels (and BLAS's threads) before looking
        try:
            info["numba_threading_layer"] = numba.threading_layer()
        except ValueError:  # no parallel numba kernel has run: all of ours are serial
            info["numba_threading_layer"] = None
        info["thread_pools"] = _thread_pools()
        return info

    def train_step(self) -> float:
        self.model.train()
        self.model.zero_grad()
        loss = self.criterion(self.model(self.x), self.t)
        self.model.backward(self.criterion.backward())
        self.optimizer.step()
        return loss

    def infer_step(self) -> None:
        self.model.eval()
        with self.nn.no_grad():
            self.model(self.x)

    def breakdown(self, steps: int) -> dict:
        """Median seconds per layer type over ``steps`` training steps, with timers wrapped
        around every leaf layer's forward and backward (removed afterwards)."""
        totals = {name: [] for name in (*CATEGORIES, "step")}
        clock: dict[str, float] = {}
        undo = self._install_timers(clock)
        try:
            for _ in range(steps):
                clock.clear()
                clock.update(dict.fromkeys(CATEGORIES, 0.0))
                step = _timed(self._timed_train_step(clock))
                measured = sum(clock[c] for c in CATEGORIES if c != "other")
                clock["other"] = step - measured
                for c in CATEGORIES:
                    totals[c].append(clock[c])
                totals["step"].append(step)
        finally:
            undo()
        seconds = {c: statistics.median(v) for c, v in totals.items()}
        step = seconds.pop("step")
        return {
            "step_s": step,
            "seconds": seconds,
            "fractions": {c: s / step for c, s in seconds.items()},
            "note": "other = step time minus the timed layers: residual adds, flatten, "
            "zero_grad and Python overhead",
        }

    def _timed_train_step(self, clock: dict):
        def step() -> float:
            self.model.train()
            self.model.zero_grad()
            loss = self.criterion(self.model(self.x), self.t)
            self.model.backward(self.criterion.backward())
            start = time.perf_counter()
            self.optimizer.step()
            clock["optimizer"] += time.perf_counter() - start
            return loss

        return step

    def _install_timers(self, clock: dict):
        """Wrap forward/backward of each leaf layer (and the loss) by instance attributes."""
        nn = self.nn
        kinds = [
            (nn.Conv2d, "conv_forward", "conv_backward"),
            (nn.BatchNorm2d, "batch_norm", "batch_norm"),
            (nn.ReLU, "relu", "relu"),
            (nn.MaxPool2d, "pooling", "pooling"),
            (nn.AdaptiveAvgPool2d, "pooling", "pooling"),
            (nn.Linear, "linear_loss", "linear_loss"),
            (nn.CrossEntropyLoss, "linear_loss", "linear_loss"),
        ]
        wrapped = []
        for module in [*self.model.modules(), self.criterion]:
            for cls, forward_kind, backward_kind in kinds:
                if isinstance(module, cls):
                    for method, kind in (("forward", forward_kind), ("backward", backward_kind)):
                        original = getattr(module, method)
                        module.__dict__[method] = _timer(original, kind, clock)
                    wrapped.append(module)
                    break

        def undo() -> None:
            for module in wrapped:
                module.__dict__.pop("forward", None)
                module.__dict__.pop("backward", None)

        return undo


def _timer(function, kind: str, clock: dict):
    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            clock[kind] += time.perf_counter() - start

    return timed


# ----------------------------------------------------------------------- architecture
def architecture_spec(model) -> dict:
    """A plain-data (JSON) description of an nnscratch model, from which
    :func:`torch_module` builds its PyTorch twin, layer for layer in the same order."""
    return _spec(model)


def _spec(m) -> dict:
    from nnscratch import nn
    from nnscratch.models.classifier import ImageClassifier

    if isinstance(m, ImageClassifier):
        return {
            "type": "Sequential",
            "children": [_spec(s) for s in (*m.backbone(), m.flatten, m.fc)],
        }
    if isinstance(m, nn.ResidualBlock):
        return {
            "type": "Residual",
            "main": [_spec(layer) for layer in m.main_path()],
            "shortcut": _spec(m.downsample) if m.residual and m.downsample is not None else None,
            "residual": m.residual,
        }
    if isinstance(m, nn.Conv2d):
        return {"type": "Conv2d", "in_channels": m.in_channels, "out_channels": m.out_channels,
                "kernel_size": list(m.kernel_size), "stride": list(m.stride),
                "padding": list(m.padding), "bias": m.bias is not None}  # fmt: skip
    if isinstance(m, nn.BatchNorm2d):
        return {"type": "BatchNorm2d", "num_features": m.num_features, "eps": m.eps,
                "momentum": m.momentum}  # fmt: skip
    if isinstance(m, nn.MaxPool2d):
        return {"type": "MaxPool2d", "kernel_size": list(m.kernel_size), "stride": list(m.stride),
                "padding": list(m.padding)}  # fmt: skip
    if isinstance(m, nn.Linear):
        return {"type": "Linear", "in_features": m.in_features, "out_features": m.out_features,
                "bias": m.bias is not None}  # fmt: skip
    if isinstance(m, nn.ZeroPadShortcut):
        return {"type": "ZeroPadShortcut", "in_channels": m.in_channels,
                "out_channels": m.out_channels, "stride": m.stride}  # fmt: skip
    if isinstance(m, nn.Sequential):
        return {"type": "Sequential", "children": [_spec(c) for c in m]}
    for cls in (nn.ReLU, nn.Identity, nn.Flatten, nn.AdaptiveAvgPool2d):
        if isinstance(m, cls):
            return {"type": cls.__name__}
    raise TypeError(f"bench: no PyTorch counterpart for {type(m).__name__}")


# ----------------------------------------------------------------------- torch
class _TorchRunner:
    """The same architecture in PyTorch, SGD with the same settings, a fixed random batch."""

    def __init__(self, config: BenchConfig, message: dict):
        import torch

        torch.set_num_threads(int(message["threads"]))
        torch.manual_seed(config.seed)
        self.torch = torch
        dtype = getattr(torch, config.dtype)
        self.model = torch_module(message["spec"]).to(dtype)
        self.optimizer = torch.optim.SGD(
            self.model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4
        )
        g = torch.Generator().manual_seed(config.seed)
        shape = (config.batch_size, config.in_channels, config.image_size, config.image_size)
        self.x = torch.randn(shape, generator=g, dtype=dtype)
        self.t = torch.randint(0, config.num_classes, (config.batch_size,), generator=g)

    def describe(self) -> dict:
        torch = self.torch
        info = {
            "framework": "torch",
            "parameters": sum(p.numel() for p in self.model.parameters()),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
        }
        self.infer_step()
        info["thread_pools"] = _thread_pools()
        return info

    def train_step(self) -> None:
        self.model.train()
        self.optimizer.zero_grad()
        loss = self.torch.nn.functional.cross_entropy(self.model(self.x), self.t)
        loss.backward()
        self.optimizer.step()

    def infer_step(self) -> None:
        self.model.eval()
        with self.torch.no_grad():
            self.model(self.x)

    def breakdown(self, steps: int) -> dict:
        raise ValueError("the breakdown is measured for nnscratch only")


def torch_module(spec: dict):
    """Build a torch.nn.Module from :func:`architecture_spec`'s description.

    Mirrors torchvision's ResNet: ReLU(inplace=True), and ``out += identity`` in blocks.
    """
    import torch
    from torch import nn as tnn

    class Residual(tnn.Module):
        def __init__(self, main, shortcut, residual: bool):
            super().__init__()
            self.main, self.shortcut, self.residual = main, shortcut, residual

        def forward(self, x):
            out = self.main(x)
            if self.residual:
                out += x if self.shortcut is None else self.shortcut(x)
            return torch.relu_(out)

    class ZeroPadShortcut(tnn.Module):
        def __init__(self, in_channels: int, out_channels: int, stride: int):
            super().__init__()
            self.extra, self.stride = out_channels - in_channels, stride

        def forward(self, x):
            kept = x[:, :, :: self.stride, :: self.stride]
            return tnn.functional.pad(kept, (0, 0, 0, 0, 0, self.extra))

    def build(s: dict):
        t = s["type"]
        if t == "Sequential":
            return tnn.Sequential(*[build(c) for c in s["children"]])
        if t == "Residual":
            shortcut = build(s["shortcut"]) if s["shortcut"] is not None else None
            return Residual(tnn.Sequential(*[build(c) for c in s["main"]]), shortcut, s["residual"])
        if t == "Conv2d":
            return tnn.Conv2d(s["in_channels"], s["out_channels"], tuple(s["kernel_size"]),
                              tuple(s["stride"]), tuple(s["padding"]), bias=s["bias"])  # fmt: skip
        if t == "BatchNorm2d":
            return tnn.BatchNorm2d(s["num_features"], eps=s["eps"], momentum=s["momentum"])
        if t == "MaxPool2d":
            return tnn.MaxPool2d(tuple(s["kernel_size"]), tuple(s["stride"]), tuple(s["padding"]))
        if t == "Linear":
            return tnn.Linear(s["in_features"], s["out_features"], bias=s["bias"])
        if t == "ZeroPadShortcut":
            return ZeroPadShortcut(s["in_channels"], s["out_channels"], s["stride"])
        if t == "ReLU":
            return tnn.ReLU(inplace=True)
        if t == "Identity":
            return tnn.Identity()
        if t == "Flatten":
            return tnn.Flatten()
        if t == "AdaptiveAvgPool2d":
            return tnn.AdaptiveAvgPool2d(1)
        raise ValueError(f"unknown layer type {t!r}")

    return build(spec)


# ======================================================================= output
def format_table(result: dict) -> str:
    """The result as a human-readable table."""
    c = result["config"]
    stem = f" (stem={c['stem']})" if c["model"].startswith("resnet") and c["model"] in (
        "resnet18", "resnet34", "resnet50", "resnet101", "resnet152") else ""  # fmt: skip
    lines = [
        f"nnscratch bench: {c['model']}{stem}, width {c['width']:g}, batch {c['batch_size']}, "
        f"{c['in_channels']}x{c['image_size']}x{c['image_size']}, {c['dtype']}, "
        f"{c['threads']} threads, median of {c['steps']} steps after {c['warmup']} warm-up",
        f"cpu: {result['environment']['cpu']} ({result['environment']['cores']} cores)",
    ]
    nn, torch, ratio = result["nnscratch"], result.get("torch"), result.get("ratio", {})

    def row(label: str, key: str, get, fmt: str) -> None:
        values = [get(nn)] + ([get(torch)] if torch else [])
        cells = [format(v, fmt) if v is not None else "-" for v in values]
        r = ratio.get(key)
        lines.append(
            f"  {label:<34}" + "".join(f"{cell:>12}" for cell in cells)
            + (f"{r:>10.2f}" if r is not None else "")
        )  # fmt: skip

    header = f"  {'':<34}{'nnscratch':>12}" + (f"{'torch':>12}{'ratio':>10}" if torch else "")
    lines += ["", header]
    row("train images/s", "train_images_per_s", lambda r: r["train"]["images_per_s"], ".1f")
    row("inference images/s", "infer_images_per_s", lambda r: r["infer"]["images_per_s"], ".1f")
    row("train step peak memory (MiB)", "train_step_peak_memory",
        lambda r: r["memory"]["step_peak_mib"], ".0f")  # fmt: skip
    row("  baseline after setup (MiB)", "", lambda r: r["memory"]["baseline_mib"], ".0f")
    if "startup" in nn:

        def latest(r):
            s = r["startup"]
            return s.get("second_process", s["first_process"])

        row("start -> first step end (s)", "start_to_first_step_end",
            lambda r: latest(r)["start_to_first_step_end_s"], ".2f")  # fmt: skip
        row("  start -> first step start (s)", "",
            lambda r: latest(r)["start_to_first_step_start_s"], ".2f")  # fmt: skip
        row("  first step (s)", "", lambda r: latest(r)["first_step_s"], ".2f")
        row("  warm step (s)", "warm_step", lambda r: latest(r)["warm_step_s"], ".2f")
        first = nn["startup"]["first_process"]
        lines.append(
            f"  (nnscratch's first process: first step {first['first_step_s']:.2f} s, "
            f"start -> first step end {first['start_to_first_step_end_s']:.2f} s; "
            "the later rows are from a second process, with numba's cache warm)"
        )
    if "breakdown" in nn:
        b = nn["breakdown"]
        lines += ["", f"  one nnscratch training step by layer type ({b['step_s']:.3f} s):"]
        for name in CATEGORIES:
            lines.append(
                f"    {name.replace('_', ' '):<22}{b['seconds'][name]:>9.3f} s"
                f"{100 * b['fractions'][name]:>7.1f} %"
            )
    lines += ["", f"memory: {result['memory_method']}"]
    if ratio:
        lines.append("ratio: nnscratch / torch (above 1 is faster for images/s, larger otherwise)")
    if c.get("blas_thread_timeout") is not None:
        lines.append(f"workers ran with OPENBLAS_THREAD_TIMEOUT={c['blas_thread_timeout']}")
    for note in filter(None, [result.get("note")]):
        lines.append(f"note: {note}")
    env = result["environment"]
    if env.get("OPENBLAS_CORETYPE") or env.get("OPENBLAS_L2_SIZE"):
        lines.append(
            f"note: OPENBLAS_CORETYPE={env['OPENBLAS_CORETYPE']} OPENBLAS_L2_SIZE="
            f"{env['OPENBLAS_L2_SIZE']} are set; they may select a slower BLAS kernel"
        )
    pools = nn["setup"].get("thread_pools")
    if pools:
        blas = [p for p in pools if p.get("user_api") == "blas"]
        for p in blas:
            lines.append(
                f"blas: {p.get('internal_api')} {p.get('version')} kernel "
                f"{p.get('architecture')}, {p.get('num_threads')} threads"
            )
    layer = nn["setup"]["numba_threading_layer"]
    lines.append(
        f"nnscratch: {nn['setup'].get('workers')} worker threads, each running its share of "
        "the batch's convolutions with single-threaded BLAS"
    )
    if layer is not None:
        lines.append(f"numba: {nn['setup']['numba_threads']} threads, layer {layer}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
