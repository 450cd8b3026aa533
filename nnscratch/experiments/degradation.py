"""Degradation: a deeper plain network trains *worse* than a shallower one; a residual one does not.

He et al. (2015, §4.1 and Fig. 6) trained plain and residual CIFAR nets of 20 to 110
layers, all with batch norm: the 56-layer plain net had higher *training* error than
the 20-layer one, although it could represent it (extra layers set to the identity).
Batch norm keeps the plain net's gradients from vanishing (they even grow at
initialisation, see :mod:`~nnscratch.experiments.gradflow`), so this is an
optimisation difficulty, not vanishing gradients. The residual twins, with the same
layers and the same initial weights, get better with depth.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from nnscratch.experiments.datasets import load_splits
from nnscratch.experiments.networks import build_model
from nnscratch.experiments.short_training import train_steps


def degradation(
    depths: Sequence[int] = (20, 56),
    *,
    steps: int = 300,
    batch_size: int = 128,
    lr: float = 0.1,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
    schedule: str = "constant",
    batch_norm: bool = True,
    init: str = "he",
    activation: str = "relu",
    width: float = 1.0,
    dataset: str = "synthetic",
    data_dir: str | None = None,
    n_train: int | None = None,
    n_test: int | None = None,
    crop: int = 4,
    flip: bool = True,
    eval_every: int = 50,
    seed: int = 0,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train the plain and residual CIFAR ResNet of each depth for ``steps`` SGD steps.

    All runs see the same batches in the same order (one seed) and each twin pair starts
    from the same weights; only depth and the shortcuts differ. Returns ``{"config",
    "runs"}``; each run is ``{"label", "model", "depth", "residual", "parameters"}``
    plus the curves of :func:`~nnscratch.experiments.short_training.train_steps` (``step``,
    ``train_loss``, ``train_error`` per step; ``eval`` rows with ``test_error``;
    ``diverged_at``; ``seconds``).
    """
    config = dict(
        depths=list(depths),
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
        crop=crop,
        flip=flip,
        eval_every=eval_every,
        seed=seed,
    )
    bad = [d for d in depths if not (isinstance(d, int) and d >= 8 and (d - 2) % 6 == 0)]
    if bad or not depths:
        raise ValueError(f"depths must be CIFAR ResNet depths 6n + 2 >= 8, got {list(depths)}")
    splits = load_splits(dataset, data_dir=data_dir, n_train=n_train, n_test=n_test, seed=seed)
    image_shape = splits.train.image_shape
    runs = []
    for depth in depths:
        for residual in (False, True):
            label = f"{'residual' if residual else 'plain'}-{depth}"
            model = build_model(
                f"resnet{depth}",
                residual=residual,
                batch_norm=batch_norm,
                init=init,
                activation=activation,
                width=width,
                num_classes=splits.train.num_classes,
                in_channels=image_shape[0],
                seed=seed,
            )
            curves = train_steps(
                model,
                splits,
                steps=steps,
                batch_size=batch_size,
                lr=lr,
                momentum=momentum,
                weight_decay=weight_decay,
                schedule=schedule,
                crop=crop,
                flip=flip,
                eval_every=eval_every,
                seed=seed,
                progress=progress,
                desc=label,
            )
            run = {
                "label": label,
                "model": f"resnet{depth}",
                "depth": depth,
                "residual": residual,
                "parameters": model.num_parameters(),
                **curves,
            }
            runs.append(run)
            if log is not None:
                log(summary_line(run))
    return {"config": config, "runs": runs}


def final_errors(run: dict[str, Any], window: int = 50) -> tuple[float, float]:
    """(mean training error over the last ``window`` steps, last test error) of one run."""
    tail = run["train_error"][-window:]
    train_error = sum(tail) / len(tail) if tail else float("nan")
    test_error = run["eval"][-1]["test_error"] if run["eval"] else float("nan")
    return train_error, test_error


def summary_line(run: dict[str, Any]) -> str:
    """One line per run: final training error (last 50 steps), test error, time."""
    train_error, test_error = final_errors(run)
    diverged = f", diverged at step {run['diverged_at']}" if run["diverged_at"] else ""
    return (
        f"{run['label']:<12} train error {train_error:6.1%} (last 50 steps)  "
        f"test error {test_error:6.1%}  {run['seconds']:.0f} s{diverged}"
    )
