"""Lesion study: delete one block of a trained network at test time and measure accuracy.

Veit et al. (2016, "Residual Networks Behave Like Ensembles of Relatively Shallow
Networks") found that removing a single block from a trained ResNet barely changes its
test error, except at the blocks that downsample, while removing any layer of a plain
network (VGG) destroys it: a ResNet's paths do not depend strongly on one another.

Deleting block b means computing what b computes with its main branch removed:

    residual block, same shape:     y = act(x)               (= x after a ReLU net's ReLU)
    residual block, shape changes:  y = act(shortcut(x))     (the shortcut alone, after the
                                                              BN-ReLU a pre-activation block
                                                              shares with it)
    plain block, same shape:        y = act(x)               (the identity)
    plain block, shape changes:     y = act(zero_pad(x))     (option-A map: x[:, :, ::s, ::s]
                                                              plus zero channels, which the
                                                              plain net never had)

``act`` is the block's output activation (none in a pre-activation block); block inputs
are outputs of that same activation, so for ReLU (idempotent) every same-shape lesion is
exactly the identity.
Batch-norm statistics stay those of the intact network, as at test time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from nnscratch.data import ArrayDataset
from nnscratch.experiments.datasets import load_splits
from nnscratch.experiments.network_parts import residual_blocks
from nnscratch.experiments.seeds import check_seeds, spread
from nnscratch.experiments.short_training import train_twin
from nnscratch.experiments.subsets import subset_splits
from nnscratch.models.classifier import ImageClassifier
from nnscratch.nn.container import Sequential
from nnscratch.nn.conv import Conv2d
from nnscratch.nn.module import Module
from nnscratch.nn.residual import ResidualBlock
from nnscratch.nn.shortcut import ZeroPadShortcut
from nnscratch.training import builders
from nnscratch.training.evaluation import evaluate


class BranchRemoved(Module):
    """Stands in for ``block`` without its main branch: y = after_add(shortcut(shared(x))).

    The shortcut is the block's own (identity or ``downsample``, after the BN-ReLU that a
    pre-activation block shares with it); a plain block gets the identity, or the
    parameter-free zero-padding map when it changes shape. ``method`` says which:
    ``"identity"``, ``"shortcut"`` or ``"zero_pad"``.
    """

    def __init__(self, block: ResidualBlock):
        super().__init__()
        convs = [m for m in block.main_path() if isinstance(m, Conv2d)]
        in_channels, out_channels = convs[0].in_channels, convs[-1].out_channels
        stride = int(np.prod([c.stride[0] for c in convs]))
        self.after_add = block.after_add
        self.shared = Sequential(*(block.shared_path() if block.residual else []))
        if in_channels == out_channels and stride == 1:
            self.method, self.shortcut = "identity", None
        elif block.residual:
            self.method, self.shortcut = "shortcut", block.downsample
        else:
            self.method = "zero_pad"
            self.shortcut = ZeroPadShortcut(in_channels, out_channels, stride)

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = self.shared(x)
        return self.after_add(x if self.shortcut is None else self.shortcut(x))


def lesion(
    model: ImageClassifier,
    dataset: ArrayDataset,
    transform,
    *,
    batch_size: int = 256,
) -> dict[str, Any]:
    """Accuracy of ``model`` on ``dataset`` with each block deleted in turn (eval mode).

    Returns ``{"baseline_accuracy", "blocks"}`` with one row per block, in forward
    order: ``{"name", "method", "accuracy", "drop"}`` (``drop`` = baseline - accuracy).
    The model is restored after each deletion.
    """
    named = dict(model.named_modules())
    baseline = evaluate(model, dataset, transform, batch_size).accuracy
    rows = []
    for name, block in residual_blocks(model):
        parent_name, _, attribute = name.rpartition(".")
        parent = named[parent_name]
        stand_in = BranchRemoved(block)
        setattr(parent, attribute, stand_in)
        try:
            accuracy = evaluate(model, dataset, transform, batch_size).accuracy
        finally:
            setattr(parent, attribute, block)
        rows.append(
            {
                "name": name,
                "method": stand_in.method,
                "accuracy": accuracy,
                "drop": baseline - accuracy,
            }
        )
    return {"baseline_accuracy": baseline, "blocks": rows}


def lesion_study(
    model: str = "resnet20",
    *,
    steps: int = 600,
    batch_size: int = 128,
    lr: float = 0.1,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
    schedule: str = "cosine",
    batch_norm: bool = True,
    init: str = "he",
    activation: str = "relu",
    width: float = 1.0,
    dataset: str = "synthetic",
    data_dir: str | None = None,
    n_train: int | None = None,
    n_test: int | None = None,
    seeds: Sequence[int] = (0,),
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train ``model`` and its plain twin briefly, then lesion each block of both; per seed.

    Each seed draws new weights and a new batch order (the data, and a subset of a real
    dataset cut to ``n_train`` / ``n_test`` images, stay the same). Returns ``{"config",
    "runs", "aggregate"}``, each run ``{"label", "seed", "residual", "training",
    "lesion"}``: the curves of :func:`~nnscratch.experiments.short_training.train_steps`
    and the result of :func:`lesion` on the test split; ``aggregate`` has one row per
    net over the seeds (:func:`aggregate`).
    """
    seeds = check_seeds(seeds)
    config = dict(
        model=model,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        momentum=momentum,
        weight_decay=weight_decay,
        schedule=schedule,
        batch_norm=batch_norm,
        init=init,
        activation=activation,
        width=width,
        dataset=dataset,
        n_train=n_train,
        n_test=n_test,
        seeds=seeds,
    )
    splits = load_splits(dataset, data_dir=data_dir, n_train=n_train, n_test=n_test, seed=seeds[0])
    splits = subset_splits(splits, n_train, n_test)
    transform = builders.eval_transform(splits.mean, splits.std)
    runs = []
    for seed in seeds:
        for residual in (True, False):
            label = f"{'residual' if residual else 'plain'} {model}"
            net, training = train_twin(
                model,
                splits,
                config,
                residual=residual,
                seed=seed,
                final_eval=False,
                progress=progress,
                desc=f"{label} seed {seed}",
            )
            result = lesion(net, splits.test, transform)
            runs.append(
                {
                    "label": label,
                    "seed": seed,
                    "residual": residual,
                    "training": training,
                    "lesion": result,
                }
            )
            if log is not None:
                log(f"seed {seed}: {summary_line(label, result)}")
    return {"config": config, "runs": runs, "aggregate": aggregate(runs)}


def aggregate(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per net (label), over its runs (one per seed), in run order.

    Each row: ``{"label", "residual", "seeds", "baseline_accuracy", "blocks"}``; the
    accuracy is the :func:`~nnscratch.experiments.seeds.spread` over the seeds, and each
    block ``{"name", "method", "accuracy", "drop"}`` holds the spreads of its accuracy
    with the block deleted and of the drop.
    """
    groups: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault(run["label"], []).append(run)
    rows = []
    for label, group in groups.items():
        per_seed = [run["lesion"]["blocks"] for run in group]
        blocks = [
            {
                "name": first["name"],
                "method": first["method"],
                "accuracy": spread([blocks[i]["accuracy"] for blocks in per_seed]),
                "drop": spread([blocks[i]["drop"] for blocks in per_seed]),
            }
            for i, first in enumerate(per_seed[0])
        ]
        rows.append(
            {
                "label": label,
                "residual": group[0]["residual"],
                "seeds": [run["seed"] for run in group],
                "baseline_accuracy": spread([run["lesion"]["baseline_accuracy"] for run in group]),
                "blocks": blocks,
            }
        )
    return rows


def summary_line(label: str, result: dict[str, Any]) -> str:
    """Baseline accuracy, and the median and worst drop over the blocks."""
    drops = [row["drop"] for row in result["blocks"]]
    worst = max(result["blocks"], key=lambda row: row["drop"])
    return (
        f"{label}: accuracy {result['baseline_accuracy']:.1%}; deleting one block: "
        f"median drop {np.median(drops):.1%}, worst {worst['drop']:.1%} ({worst['name']})"
    )


def aggregate_line(row: dict[str, Any]) -> str:
    """Accuracy and the worst block's drop, mean ± sample std over the seeds."""
    base = row["baseline_accuracy"]
    worst = max(row["blocks"], key=lambda block: block["drop"]["mean"])
    median = np.median([block["drop"]["mean"] for block in row["blocks"]])
    n = len(row["seeds"])
    return (
        f"{row['label']}: accuracy {base['mean']:.1%} ± {base['std']:.1%}; deleting one "
        f"block: median of the mean drops {median:.1%}, worst {worst['drop']['mean']:.1%} "
        f"± {worst['drop']['std']:.1%} ({worst['name']}); over {n} seed{'s' if n > 1 else ''}"
    )
