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
from nnscratch.experiments.seeds import band, check_seeds, spread
from nnscratch.experiments.short_training import train_twin
from nnscratch.experiments.subsets import subset_splits


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
    seeds: Sequence[int] = (0,),
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train the plain and residual CIFAR ResNet of each depth for ``steps`` SGD steps, per seed.

    Under one seed all runs see the same batches in the same order and each twin pair
    starts from the same weights; only depth and the shortcuts differ. Each further seed
    draws new weights and a new batch order (the data, and a subset of a real dataset cut
    to ``n_train`` / ``n_test`` images, stay the same). Returns ``{"config", "runs",
    "aggregate"}``; each run is ``{"label", "seed", "model", "depth", "residual",
    "parameters"}`` plus the curves of
    :func:`~nnscratch.experiments.short_training.train_steps` (``step``, ``train_loss``,
    ``train_error`` per step; ``eval`` rows with ``test_error``; ``diverged_at``;
    ``seconds``), and ``aggregate`` holds one row per net over the seeds
    (:func:`aggregate`).
    """
    seeds = check_seeds(seeds)
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
        seeds=seeds,
    )
    bad = [d for d in depths if not (isinstance(d, int) and d >= 8 and (d - 2) % 6 == 0)]
    if bad or not depths:
        raise ValueError(f"depths must be CIFAR ResNet depths 6n + 2 >= 8, got {list(depths)}")
    splits = load_splits(dataset, data_dir=data_dir, n_train=n_train, n_test=n_test, seed=seeds[0])
    splits = subset_splits(splits, n_train, n_test)
    runs = []
    for seed in seeds:
        for depth in depths:
            for residual in (False, True):
                label = f"{'residual' if residual else 'plain'}-{depth}"
                model, curves = train_twin(
                    f"resnet{depth}",
                    splits,
                    config,
                    residual=residual,
                    seed=seed,
                    crop=crop,
                    flip=flip,
                    eval_every=eval_every,
                    progress=progress,
                    desc=f"{label} seed {seed}",
                )
                run = {
                    "label": label,
                    "seed": seed,
                    "model": f"resnet{depth}",
                    "depth": depth,
                    "residual": residual,
                    "parameters": model.num_parameters(),
                    **curves,
                }
                runs.append(run)
                if log is not None:
                    log(summary_line(run))
    return {"config": config, "runs": runs, "aggregate": aggregate(runs)}


def final_errors(run: dict[str, Any], window: int = 50) -> tuple[float, float]:
    """(mean training error over the last ``window`` steps, last test error) of one run."""
    tail = run["train_error"][-window:]
    train_error = sum(tail) / len(tail) if tail else float("nan")
    test_error = run["eval"][-1]["test_error"] if run["eval"] else float("nan")
    return train_error, test_error


def aggregate(runs: Sequence[dict[str, Any]], window: int = 50) -> list[dict[str, Any]]:
    """One row per net (model, depth, residual), over its runs (one per seed), in run order.

    Each row: ``{"label", "model", "depth", "residual", "seeds", "diverged"}`` (the seeds
    whose run diverged), ``"train_error"`` and ``"test_error"``: the
    :func:`~nnscratch.experiments.seeds.spread` of :func:`final_errors`; ``"curves"``:
    ``{"step", "train_error", "train_loss"}``, the per-step
    :func:`~nnscratch.experiments.seeds.band` (up to the shortest run); ``"eval"``:
    ``{"step", "test_error"}``, the band of the test errors at the common evaluations.
    """
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault((run["model"], run["depth"], run["residual"]), []).append(run)
    rows = []
    for (model, depth, residual), group in groups.items():
        finals = [final_errors(run, window) for run in group]
        n_steps = min(len(run["step"]) for run in group)
        n_evals = min(len(run["eval"]) for run in group)
        rows.append(
            {
                "label": group[0]["label"],
                "model": model,
                "depth": depth,
                "residual": residual,
                "seeds": [run["seed"] for run in group],
                "diverged": [run["seed"] for run in group if run["diverged_at"]],
                "train_error": spread([train for train, _ in finals]),
                "test_error": spread([test for _, test in finals]),
                "curves": {
                    "step": group[0]["step"][:n_steps],
                    "train_error": band([run["train_error"] for run in group]),
                    "train_loss": band([run["train_loss"] for run in group]),
                },
                "eval": {
                    "step": [row["step"] for row in group[0]["eval"][:n_evals]],
                    "test_error": band(
                        [[row["test_error"] for row in run["eval"]] for run in group]
                    ),
                },
            }
        )
    return rows


def summary_line(run: dict[str, Any]) -> str:
    """One line per run: final training error (last 50 steps), test error, time."""
    train_error, test_error = final_errors(run)
    diverged = f", diverged at step {run['diverged_at']}" if run["diverged_at"] else ""
    return (
        f"{run['label']:<12} seed {run['seed']:<3} train error {train_error:6.1%} (last 50 steps)  "
        f"test error {test_error:6.1%}  {run['seconds']:.0f} s{diverged}"
    )


def aggregate_line(row: dict[str, Any]) -> str:
    """One line per net: final training and test error, mean ± std over the seeds."""
    train, test = row["train_error"], row["test_error"]
    diverged = f", diverged under seeds {row['diverged']}" if row["diverged"] else ""
    return (
        f"{row['label']:<12} train error {train['mean']:6.1%} ± {train['std']:4.1%} "
        f"(last 50 steps)  test error {test['mean']:6.1%} ± {test['std']:4.1%}  "
        f"over {len(row['seeds'])} seed{'s' if len(row['seeds']) > 1 else ''}{diverged}"
    )
