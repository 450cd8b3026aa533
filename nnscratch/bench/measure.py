"""The parent of ``nnscratch bench``: it drives the workers in alternation and gathers the
medians, the ratios nnscratch / torch and the goals into one plain-data result."""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import asdict
from typing import Any

from nnscratch.bench.config import BenchConfig
from nnscratch.bench.probes import MEMORY_METHOD, environment
from nnscratch.bench.torch_twin import architecture_spec
from nnscratch.bench.worker import Worker, startup_times

STARTUP_GOAL_S = 5.0
_PAUSE_S = 0.1  # between two workers' turns, so one's spinning threads have gone quiet


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
        "environment": environment(),
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
                probes.append(startup_times(fw, config, spec, threads))
            result.setdefault(fw, {})["startup"] = {
                "first_process": probes[0],
                **({"second_process": probes[1]} if runs > 1 else {}),
            }

    workers = {fw: Worker(fw, config, spec, threads) for fw in frameworks}
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
