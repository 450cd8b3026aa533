"""Gradient flow at initialisation: per-layer gradient norms of a network and its plain twin.

For one fixed batch, train-mode forward (batch norm uses batch statistics), mean
cross-entropy loss L, and one backward pass, this records

- every conv's weight-gradient norm |dL/dW_l| (Frobenius), in forward order;
- at each block: |dL/dx| at its input, the gradient ledger (|main|, |shortcut|,
  |total| of the two parts of that input gradient), mean and std of its output;
- the headline ratio |dL/dW_first| / |dL/dW_last| of the first (stem) conv to the last
  main-path conv: << 1 means the gradient vanishes towards the input, >> 1 that it
  explodes.

Which way it goes depends on the regime, not on the skips alone (see :data:`REGIMES`):
without batch norm, the classic small initialisations (PyTorch's layer default,
Xavier) shrink the backward signal by a constant factor per layer, so a deep plain
net's early layers get almost nothing, while He initialisation keeps it level; with
batch norm the plain net's gradients *grow* towards the input (Yang et al. 2019,
"A Mean Field Theory of Batch Normalization"). Residual nets stay within a small
factor in every regime (but without batch norm their activations, and so all their
gradients, grow with depth under He init).

The pass runs in float64 by default, so that tiny gradients are real numbers rather
than float32 rounding or underflow (float32 entries below 1.4e-45 become 0: the first
convs of the plain ResNet-110 with PyTorch's init). Norms are taken in float64 with
scaling (:func:`~nnscratch.utils.frobenius_norm.frobenius_norm`): ``np.linalg.norm`` of a float32
array squares in float32 and reads 0 for entries below about 1e-19, which is not a
property of the network. The blocks' own ledger uses the same norm.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from nnscratch.experiments.datasets import fixed_batch, load_splits
from nnscratch.experiments.network_parts import (
    conv_layers,
    forward_with_block_outputs,
    residual_blocks,
    weighted_depth,
)
from nnscratch.experiments.networks import build_model
from nnscratch.experiments.short_training import train_steps
from nnscratch.nn.loss import CrossEntropyLoss
from nnscratch.utils.frobenius_norm import frobenius_norm

# name -> the switches that define the regime, and a label for tables and figures.
REGIMES: dict[str, dict[str, Any]] = {
    "no_bn_torch": {"batch_norm": False, "init": "torch", "label": "no BN, PyTorch default init"},
    "no_bn_xavier": {"batch_norm": False, "init": "xavier", "label": "no BN, Xavier init"},
    "no_bn_he": {"batch_norm": False, "init": "he", "label": "no BN, He init"},
    "bn_he": {"batch_norm": True, "init": "he", "label": "BN, He init"},
    "bn_torch": {"batch_norm": True, "init": "torch", "label": "BN, PyTorch default init"},
}
DEFAULT_REGIMES = ("no_bn_torch", "no_bn_he", "bn_he")
DEFAULT_MODELS = ("resnet20", "resnet56", "resnet110")


def gradient_flow(
    model: str = "resnet20",
    *,
    residual: bool = True,
    batch_norm: bool = True,
    init: str = "he",
    activation: str = "relu",
    width: float = 1.0,
    batch_size: int = 32,
    labels: str = "data",
    dataset: str = "synthetic",
    data_dir: str | None = None,
    steps: int = 0,
    lr: float = 0.01,
    dtype: str = "float64",
    seed: int = 0,
) -> dict[str, Any]:
    """Measure one model's gradient flow on a fixed batch; returns plain data.

    The model is built by :func:`~nnscratch.experiments.networks.build_model` (same seed,
    same weights for the plain twin). With ``steps > 0`` it first takes that many SGD
    steps (momentum 0.9, the given ``lr``) on batches of the dataset's training split.

    Returns ``{"config", "depth", "loss", "input_grad_norm", "convs", "blocks",
    "first_grad_norm", "last_grad_norm", "ratio"}`` where ``convs`` rows are
    ``{"name", "grad_norm", "weight_norm", "shortcut"}`` and ``blocks`` rows are
    ``{"name", "input_grad_norm", "main", "shortcut", "total", "out_mean", "out_std"}``.
    ``ratio`` is inf or nan if the last conv's gradient is exactly 0.
    """
    config = dict(
        model=model,
        residual=residual,
        batch_norm=batch_norm,
        init=init,
        activation=activation,
        width=width,
        batch_size=batch_size,
        labels=labels,
        dataset=dataset,
        steps=steps,
        lr=lr,
        dtype=dtype,
        seed=seed,
    )
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    x, y, num_classes = fixed_batch(
        batch_size, dataset=dataset, data_dir=data_dir, labels=labels, dtype=dtype, seed=seed
    )
    net = build_model(
        model,
        residual=residual,
        batch_norm=batch_norm,
        init=init,
        activation=activation,
        width=width,
        num_classes=num_classes,
        in_channels=x.shape[1],
        seed=seed,
        dtype=dtype,
    )
    if steps:
        splits = load_splits(dataset, data_dir=data_dir, seed=seed)
        train_steps(
            net,
            splits,
            steps=steps,
            batch_size=batch_size,
            lr=lr,
            weight_decay=0.0,
            crop=0,
            flip=False,
            final_eval=False,
            seed=seed,
        )

    blocks = residual_blocks(net)
    for _, block in blocks:
        block.record_grad_ledger = True
    try:
        net.train()
        net.zero_grad()
        criterion = CrossEntropyLoss()
        logits, outputs = forward_with_block_outputs(net, x)
        loss = criterion(logits, y)
        dx = net.backward(criterion.backward())
        ledgers = [dict(block.grad_ledger) for _, block in blocks]
    finally:
        for _, block in blocks:
            block.record_grad_ledger = False
            block.grad_ledger = None

    convs = [
        {
            "name": name,
            "grad_norm": frobenius_norm(conv.weight.grad),
            "weight_norm": frobenius_norm(conv.weight.data),
            "shortcut": shortcut,
        }
        for name, conv, shortcut in conv_layers(net)
    ]
    block_rows = [
        {
            "name": name,
            "input_grad_norm": ledger["total"],
            **ledger,
            "out_mean": float(out.mean()),
            "out_std": float(out.std()),
        }
        for (name, _), ledger, out in zip(blocks, ledgers, outputs, strict=True)
    ]
    main_path = [c for c in convs if not c["shortcut"]]
    first, last = main_path[0]["grad_norm"], main_path[-1]["grad_norm"]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = float(np.float64(first) / np.float64(last))
    return {
        "config": config,
        "depth": weighted_depth(net),
        "loss": float(loss),
        "input_grad_norm": frobenius_norm(dx),
        "convs": convs,
        "blocks": block_rows,
        "first_grad_norm": first,
        "last_grad_norm": last,
        "ratio": ratio,
    }


def regimes(
    models: Sequence[str] = DEFAULT_MODELS,
    regimes: Sequence[str] = DEFAULT_REGIMES,
    **options: Any,
) -> dict[str, Any]:
    """Sweep regimes x {plain, residual} x models; the table of first/last gradient ratios.

    ``options`` go to :func:`gradient_flow` (``activation``, ``width``, ``batch_size``,
    ``dtype``, ...; not ``batch_norm``/``init``/``residual``, which the sweep sets).
    Returns ``{"table": rows, "runs": results}``: one row ``{"regime", "label",
    "model", "depth", "residual", "ratio", "first_grad_norm", "last_grad_norm",
    "loss"}`` and one full :func:`gradient_flow` result per combination, in the same
    order (regime, then model, then plain before residual).
    """
    unknown = [r for r in regimes if r not in REGIMES]
    if unknown:
        raise ValueError(
            f"unknown regime(s) {', '.join(unknown)}; choose from {', '.join(REGIMES)}"
        )
    fixed = {"batch_norm", "init", "residual"} & set(options)
    if fixed:
        raise ValueError(f"regimes() sets {', '.join(sorted(fixed))} itself; do not pass them")
    table, runs = [], []
    for key in regimes:
        regime = REGIMES[key]
        for model in models:
            for residual in (False, True):
                result = gradient_flow(
                    model,
                    residual=residual,
                    batch_norm=regime["batch_norm"],
                    init=regime["init"],
                    **options,
                )
                result["regime"] = key
                runs.append(result)
                table.append(
                    {
                        "regime": key,
                        "label": regime["label"],
                        "model": model,
                        "depth": result["depth"],
                        "residual": residual,
                        "ratio": result["ratio"],
                        "first_grad_norm": result["first_grad_norm"],
                        "last_grad_norm": result["last_grad_norm"],
                        "loss": result["loss"],
                    }
                )
    return {"table": table, "runs": runs}


def format_table(table: Sequence[dict[str, Any]]) -> str:
    """The ratio table as text: one line per regime and model, plain and residual side by side.

    Each cell is |dL/dW| of the first (stem) conv divided by |dL/dW| of the last conv.
    """
    lines = [
        f"{'first/last conv gradient-norm ratio':>71}",
        f"{'regime':<30}{'model':<11}{'depth':>6}{'plain':>12}{'residual':>12}",
    ]
    pairs: dict[tuple[str, str], dict[bool, dict]] = {}
    for row in table:
        pairs.setdefault((row["label"], row["model"]), {})[row["residual"]] = row
    for (label, model), pair in pairs.items():
        depth = next(iter(pair.values()))["depth"]
        cells = [f"{pair[r]['ratio']:>12.3g}" if r in pair else f"{'-':>12}" for r in (False, True)]
        lines.append(f"{label:<30}{model:<11}{depth:>6}{''.join(cells)}")
    return "\n".join(lines)
