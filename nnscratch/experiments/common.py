"""What the experiments share: building twin models, swapping activations, a short
training loop, and turning results into JSON/CSV.

Every experiment returns plain data (dicts, lists, floats); :func:`to_jsonable` makes
it JSON-safe and :func:`save_json` / :func:`save_csv` write it atomically.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from tqdm import tqdm

from nnscratch import data, models
from nnscratch.models.classifier import ImageClassifier
from nnscratch.nn.activation import ReLU
from nnscratch.nn.container import Sequential
from nnscratch.nn.conv import Conv2d
from nnscratch.nn.init import CONV_INITS
from nnscratch.nn.loss import CrossEntropyLoss
from nnscratch.nn.module import Module
from nnscratch.nn.residual import ResidualBlock
from nnscratch.nn.smooth_activation import Sigmoid, Tanh
from nnscratch.training import builders
from nnscratch.training.config import TrainConfig
from nnscratch.training.evaluation import evaluate
from nnscratch.utils.atomic import atomic_write

ACTIVATIONS: dict[str, type[Module]] = {"relu": ReLU, "tanh": Tanh, "sigmoid": Sigmoid}
DTYPES = ("float32", "float64")


# ---------------------------------------------------------------------- models


def with_activation(model: Module, activation: str) -> Module:
    """Replace every ReLU module in ``model`` by a fresh ``activation`` module, in place.

    Blocks call their activations through attributes (``relu``, ``relu1``, ``relu2``,
    ...), so setting the attribute on the parent swaps the function everywhere it is
    used; each replaced site gets its own instance (each keeps a cache). Returns ``model``.
    """
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"unknown activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}"
        )
    factory = ACTIVATIONS[activation]
    named = dict(model.named_modules())
    for name, module in list(named.items()):
        if type(module) is ReLU and name:
            parent, _, attribute = name.rpartition(".")
            setattr(named[parent], attribute, factory())
    return model


def build_model(
    name: str = "resnet20",
    *,
    residual: bool = True,
    batch_norm: bool = True,
    init: str = "he",
    activation: str = "relu",
    width: float = 1.0,
    num_classes: int = 10,
    in_channels: int = 3,
    stem: str = "cifar",
    seed: int = 0,
    dtype: str = "float32",
) -> ImageClassifier:
    """A model by name with the experiment's switches; the same seed gives twin weights.

    ``name`` is any of :func:`nnscratch.models.names` or ``"resnet<6n+2>"`` for a CIFAR
    ResNet of another depth (``"resnet8"``, ``"resnet14"``, ...). ResNet-18..152 get
    ``stem`` (default the 3x3 CIFAR stem). The plain twin (``residual=False``) of a CIFAR
    ResNet draws the very same weights, since option-A shortcuts have no parameters.
    """
    if init not in CONV_INITS:
        raise ValueError(f"unknown init {init!r}; choose one of {', '.join(CONV_INITS)}")
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    check_model_name(name)
    kwargs = dict(num_classes=num_classes, in_channels=in_channels, width=width,
                  residual=residual, batch_norm=batch_norm, init_scheme=init, seed=seed)  # fmt: skip
    if name in models.names():
        if models.supports_stem(name):
            kwargs["stem"] = stem
        model = models.create(name, **kwargs)
    else:
        model = models.CifarResNet(int(name[len("resnet") :]), **kwargs)
    if activation != "relu":
        with_activation(model, activation)
    return model.to(np.dtype(dtype))


def check_model_name(name: str) -> None:
    """Raise ValueError unless :func:`build_model` knows ``name``."""
    match = re.fullmatch(r"resnet(\d+)", name)
    cifar_depth = (
        match is not None and int(match.group(1)) >= 8 and (int(match.group(1)) - 2) % 6 == 0
    )
    if name not in models.names() and not cifar_depth:
        raise ValueError(
            f"unknown model {name!r}; choose one of {', '.join(models.names())} "
            "or resnet<6n+2> for a CIFAR ResNet of another depth"
        )


def conv_layers(model: Module) -> list[tuple[str, Conv2d, bool]]:
    """Every conv as ``(name, module, on_shortcut)`` in forward order of the main path.

    Registration order is forward order in these models (stem, then each block's conv1,
    conv2, ...); a projection shortcut's conv (``...downsample.0``) is flagged True.
    """
    return [
        (name, m, ".downsample" in name)
        for name, m in model.named_modules()
        if isinstance(m, Conv2d)
    ]


def residual_blocks(model: Module) -> list[tuple[str, ResidualBlock]]:
    """Every residual (or plain) block with its dotted name, in forward order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, ResidualBlock)]


def weighted_depth(model: Module) -> int:
    """Convs on the main path plus the head: 20 for ResNet-20, 18 for ResNet-18."""
    return sum(not shortcut for _, _, shortcut in conv_layers(model)) + 1


def forward_with_block_outputs(
    model: ImageClassifier, x: np.ndarray
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Logits, and the output of every residual block in forward order.

    Runs exactly what ``model.forward`` runs (backbone stages, flatten, head), stepping
    into each ``Sequential`` of blocks so each block's output can be kept; the caches
    are the same, so ``model.backward`` works afterwards.
    """
    outputs = []
    for stage in [*model.backbone(), model.flatten, model.fc]:
        if isinstance(stage, Sequential):
            for module in stage:
                x = module(x)
                if isinstance(module, ResidualBlock):
                    outputs.append(x)
        else:
            x = stage(x)
    return x, outputs


# ---------------------------------------------------------------------- data


def load_splits(
    dataset: str = "synthetic",
    *,
    data_dir: str | None = None,
    n_train: int | None = None,
    n_test: int | None = None,
    seed: int = 0,
) -> builders.DataSplits:
    """Train and test splits (no validation split) with train's channel statistics."""
    config = TrainConfig(dataset=dataset, data_dir=data_dir, download=dataset != "synthetic",
                         n_train=n_train, n_test=n_test, val_fraction=0.0, seed=seed)  # fmt: skip
    return builders.build_data(config)


def fixed_batch(
    batch_size: int = 32,
    *,
    dataset: str = "synthetic",
    data_dir: str | None = None,
    labels: str = "data",
    dtype: str = "float64",
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, int]:
    """One seeded, normalised batch: x (B, C, H, W) in ``dtype``, y (B,) int64, num_classes.

    ``labels="data"`` keeps the images' own labels, ``"random"`` draws uniform ones.
    The synthetic set generates just the images needed; other datasets are read from
    disk (never downloaded here). Normalisation uses the batch's own channel statistics.
    """
    if labels not in ("data", "random"):
        raise ValueError(f"labels must be 'data' or 'random', got {labels!r}")
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    if batch_size < 2:
        raise ValueError(f"batch_size must be at least 2 (batch norm needs it), got {batch_size}")
    rng = np.random.default_rng(seed)
    if dataset == "synthetic":
        train, _ = data.synthetic(n_train=batch_size, n_test=0, seed=seed)
    else:
        full, _ = data.load(dataset, data_dir, download=False)
        train = full.subset(rng.permutation(len(full))[:batch_size])
    mean, std = data.channel_stats(train.images)
    x = data.normalize(train.images, mean, std).astype(dtype)
    y = train.labels if labels == "data" else rng.integers(train.num_classes, size=len(train))
    return x, y.astype(np.int64), train.num_classes


# ---------------------------------------------------------------------- training


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
    biases, schedule, augmentation, normalisation by the train split's statistics), with
    a schedule stepped per batch over the whole budget. The test split is measured
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
    config = TrainConfig(epochs=1, batch_size=batch_size, optimizer="sgd", lr=lr,
                         momentum=momentum, weight_decay=weight_decay, schedule=schedule,
                         crop=crop, flip=flip, seed=seed)  # fmt: skip
    optimizer = builders.build_optimizer(config, model)
    # One "epoch" of ``steps`` batches: build_schedule then spans exactly the budget.
    scheduler = builders.build_schedule(config, optimizer, steps)
    loader = data.BatchLoader(splits.train, batch_size, shuffle=True, seed=seed, drop_last=True,
                              transform=builders.train_transform(config, splits.mean, splits.std),
                              prefetch=True)  # fmt: skip
    test_transform = builders.eval_transform(splits.mean, splits.std)
    dtype = next(iter(model.parameters())).dtype
    criterion = CrossEntropyLoss()
    curves: dict[str, Any] = {"step": [], "train_loss": [], "train_error": [], "eval": [],
                              "diverged_at": None}  # fmt: skip

    def measure(step: int) -> None:
        result = evaluate(model, splits.test, test_transform)
        curves["eval"].append(
            {"step": step, "test_loss": result.loss, "test_error": 1.0 - result.accuracy}
        )

    start = time.perf_counter()
    model.train()
    step = 0
    bar = tqdm(total=steps, desc=desc, unit="step", disable=not progress, dynamic_ncols=True,
               mininterval=1.0)  # fmt: skip
    while step < steps and curves["diverged_at"] is None:
        for x, y in loader:  # one pass; the loader reshuffles on the next
            optimizer.zero_grad()
            logits = model(x.astype(dtype, copy=False))
            loss = criterion(logits, y)
            step += 1
            if not math.isfinite(loss):
                curves["diverged_at"] = step
                break
            model.backward(criterion.backward())
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
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


# ---------------------------------------------------------------------- output


def to_jsonable(value: Any) -> Any:
    """A copy of ``value`` that ``json.dumps(..., allow_nan=False)`` accepts.

    Arrays become lists, NumPy scalars Python numbers, tuples lists; NaN and
    infinities (a ratio whose denominator underflowed) become None.
    """
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def save_json(value: Any, path: str | os.PathLike) -> None:
    """Write ``to_jsonable(value)`` to ``path`` atomically (indented, strict JSON)."""
    with atomic_write(path, "w") as f:
        json.dump(to_jsonable(value), f, indent=1, allow_nan=False)


def save_csv(rows: Sequence[dict[str, Any]], path: str | os.PathLike) -> None:
    """Write flat dict rows to ``path`` as CSV atomically; columns in order of appearance."""
    fields = list(dict.fromkeys(k for row in rows for k in row))
    with atomic_write(path, "w") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def check_positive(**values: float) -> None:
    """Raise one ValueError naming every argument that is not > 0."""
    bad = [f"{k} must be positive, got {v}" for k, v in values.items() if not v > 0]
    if bad:
        raise ValueError("; ".join(bad))
