"""A short training run for experiments: a budget of SGD steps, learning curves per step.

It takes the trainer's pieces (the builders and :func:`~nnscratch.training.step.train_step`)
but none of a training run's files: no run directory, checkpoints, resume or Ctrl-C
handling; it counts steps rather than epochs, measures the test split, and records a
divergence instead of raising.

Its schedules span the budget of steps: ``constant``; ``cosine`` (from lr down to 0);
``step`` (He et al. 2015: lr, then lr/10 from 50% of the steps, lr/100 from 75%);
``onecycle``.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
from tqdm import tqdm

from nnscratch import optim
from nnscratch.experiments.networks import build_model
from nnscratch.models.classifier import ImageClassifier
from nnscratch.nn.loss import CrossEntropyLoss
from nnscratch.training import builders
from nnscratch.training.config import TrainConfig
from nnscratch.training.evaluation import evaluate
from nnscratch.training.step import train_step

SCHEDULES = ("constant", "cosine", "step", "onecycle")
# The options of an experiment's config that are build_model's switches and train_steps' budget.
SWITCHES = ("batch_norm", "init", "activation", "width")
BUDGET = ("steps", "batch_size", "lr", "momentum", "weight_decay", "schedule")


def build_schedule(
    optimizer: optim.Optimizer, schedule: str, steps: int, config: TrainConfig
) -> optim.LRScheduler | None:
    """The lr schedule of a budget of ``steps`` steps, stepped once per batch.

    ``"step"`` is He et al.'s: lr_t = lr · 0.1^(number of milestones ≤ t) with milestones
    m1 = ⌊steps/2⌋ and m2 = ⌊3·steps/4⌋; step k (1-based) trains at lr_(k-1), so steps
    1..m1 at lr, m1+1..m2 at lr/10 and the rest at lr/100. The others are the trainer's
    (:func:`~nnscratch.training.builders.build_schedule`) over one epoch of ``steps`` batches.
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
    if schedule == "step":
        return optim.MultiStepLR(optimizer, [steps // 2, 3 * steps // 4], 0.1)
    return builders.build_schedule(config, optimizer, steps)


def train_steps(
    model: ImageClassifier,
    splits: builders.DataSplits,
    *,
    steps: int,
    batch_size: int = 128,
    lr: float = 0.1,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
    schedule: str = "constant",
    crop: int = 4,
    flip: bool = True,
    eval_every: int = 0,
    final_eval: bool = True,
    seed: int = 0,
    progress: bool = False,
    desc: str = "train",
) -> dict[str, Any]:
    """Train ``model`` in place for ``steps`` SGD steps; return its learning curves.

    The pieces are the trainer's (``training.builders``: optimizer with undecayed BN and
    biases, augmented and normalised batches; ``training.step``: the step), with a
    schedule of :data:`SCHEDULES` stepped per batch over the whole budget. The test split is measured
    (eval mode) every ``eval_every`` steps and, if ``final_eval``, at the end. Training
    stops early if the loss stops being finite. Returns ``{"step", "train_loss",
    "train_error"}`` lists (one entry per step, on the augmented mini-batch, train-mode
    batch norm), ``"eval"`` rows ``{"step", "test_loss", "test_error"}``,
    ``"diverged_at"`` (a step or None) and ``"seconds"``.
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if eval_every < 0:
        raise ValueError(f"eval_every must be >= 0, got {eval_every}")
    config = TrainConfig(
        epochs=1,
        batch_size=batch_size,
        optimizer="sgd",
        lr=lr,
        momentum=momentum,
        weight_decay=weight_decay,
        schedule=schedule,
        crop=crop,
        flip=flip,
        seed=seed,
    )
    optimizer = builders.build_optimizer(config, model)
    scheduler = build_schedule(optimizer, schedule, steps, config)
    loader = builders.build_train_loader(config, splits)
    test_transform = builders.eval_transform(splits.mean, splits.std)
    dtype = next(iter(model.parameters())).dtype
    criterion = CrossEntropyLoss()
    curves: dict[str, Any] = {
        "step": [],
        "train_loss": [],
        "train_error": [],
        "eval": [],
        "diverged_at": None,
    }

    def measure(step: int) -> None:
        result = evaluate(model, splits.test, test_transform)
        curves["eval"].append(
            {"step": step, "test_loss": result.loss, "test_error": 1.0 - result.accuracy}
        )

    start = time.perf_counter()
    model.train()
    step = 0
    bar = tqdm(
        total=steps,
        desc=desc,
        unit="step",
        disable=not progress,
        dynamic_ncols=True,
        mininterval=1.0,
    )
    while step < steps and curves["diverged_at"] is None:
        for x, y in loader:  # one pass; the loader reshuffles on the next
            x = x.astype(dtype, copy=False)
            loss, logits = train_step(model, criterion, optimizer, scheduler, x, y)
            step += 1
            if not math.isfinite(loss):
                curves["diverged_at"] = step
                break
            curves["step"].append(step)
            curves["train_loss"].append(float(loss))
            curves["train_error"].append(float(np.mean(logits.argmax(axis=1) != y)))
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
            if eval_every and step % eval_every == 0 and step < steps:
                measure(step)
            if step == steps:
                break
    bar.close()
    if final_eval and curves["diverged_at"] is None:
        measure(step)
    curves["seconds"] = time.perf_counter() - start
    return curves


def build_for(
    name: str, splits: builders.DataSplits, config: dict[str, Any], *, residual: bool, seed: int
) -> ImageClassifier:
    """Model ``name`` for the images and classes of ``splits``: the residual net or its
    plain twin (the same seed, the same initial weights), with the :data:`SWITCHES` of an
    experiment's ``config`` (:func:`~nnscratch.experiments.networks.build_model`'s)."""
    return build_model(
        name,
        residual=residual,
        num_classes=splits.train.num_classes,
        in_channels=splits.train.image_shape[0],
        seed=seed,
        **{key: config[key] for key in SWITCHES},
    )


def train_twin(
    name: str,
    splits: builders.DataSplits,
    config: dict[str, Any],
    *,
    residual: bool,
    seed: int,
    progress: bool = False,
    desc: str = "train",
    **options,
) -> tuple[ImageClassifier, dict[str, Any]]:
    """:func:`build_for`, then :func:`train_steps` for the :data:`BUDGET` of an
    experiment's ``config`` (plus ``options``, e.g. ``final_eval``); returns the trained
    model and its curves."""
    budget = {key: config[key] for key in BUDGET}
    model = build_for(name, splits, config, residual=residual, seed=seed)
    curves = train_steps(
        model, splits, seed=seed, progress=progress, desc=desc, **budget, **options
    )
    return model, curves
