"""Residual networks as ensembles of relatively shallow paths (Veit et al. 2016).

A block computes y = f(x) + s(x) (branch f, shortcut s). A net of n blocks unrolls into
2^n paths, one per choice of side at each block; a path that takes the branch of k
blocks has *length* k, and there are C(n, k) of them: lengths are Binomial(n, 1/2).

Backward through a fixed forward is linear, and each block's Jacobian is a sum,
J = A (J_f + J_s) P (A what follows the `+`, P what precedes the split), so the input
gradient is exactly the sum over the 2^n paths of the gradient routed through each one:

    dL/dx = sum over subsets S of the blocks of  g_S,
    g_S   = the backward with blocks in S routed "main" and the others "shortcut".

:func:`sum_over_paths` checks that identity on small nets; :func:`gradient_by_path_length`
samples paths of each length k and measures |g_S| (Veit et al. Fig. 6); a block whose
shortcut changes shape (zero padding or a projection) counts like any other: its
shortcut side adds 0 to the length, its branch side 1. :func:`delete_blocks` and
:func:`reorder_blocks` edit a trained net at test time (Fig. 5): delete k random blocks,
or swap pairs of same-shape blocks within a stage. :func:`paths_study` runs it all on a
briefly trained net and its plain twin.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from nnscratch.data import ArrayDataset
from nnscratch.experiments.datasets import load_splits
from nnscratch.experiments.lesion import BranchRemoved
from nnscratch.experiments.network_parts import residual_blocks
from nnscratch.experiments.short_training import build_for, train_twin
from nnscratch.experiments.subsets import subset_splits
from nnscratch.functional.loss import cross_entropy_backward, cross_entropy_forward
from nnscratch.models.classifier import ImageClassifier
from nnscratch.nn.module import Module, retain_caches
from nnscratch.nn.residual import ResidualBlock
from nnscratch.training import builders
from nnscratch.training.evaluation import evaluate

GRADIENT_METRIC = "mean over the images of |dL_i/dx_i|_2, L_i the image's cross-entropy"


def path_length_distribution(n: int) -> dict[str, Any]:
    """How many of the 2^n paths of an n-block net have each length k = 0..n.

    Returns ``{"blocks": n, "length": [0..n], "count": [C(n, k)], "probability":
    [C(n, k) / 2^n]}`` (counts are exact integers; they sum to 2^n).
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"the number of blocks must be a non-negative integer, got {n!r}")
    counts = [math.comb(n, k) for k in range(n + 1)]
    return {
        "blocks": int(n),
        "length": list(range(n + 1)),
        "count": counts,
        "probability": [c / 2**n for c in counts],
    }


def _blocks(model: Module) -> list[ResidualBlock]:
    """The residual blocks of ``model`` in forward order; refuses a plain net (one path)."""
    blocks = [block for _, block in residual_blocks(model)]
    if not blocks:
        raise ValueError(f"{type(model).__name__} has no residual blocks, so no paths")
    if not all(block.residual for block in blocks):
        raise ValueError("a plain net has one path only: path routing needs a residual net")
    return blocks


def routed_backward(model: Module, dy: np.ndarray, main: Sequence[int] | None) -> np.ndarray:
    """``model.backward(dy)`` along one path: the branch of blocks ``main`` (indices in
    forward order), the shortcut of every other block; ``main=None``: all paths at once.

    Call it after a forward (inside :func:`~nnscratch.nn.module.retain_caches` to route
    several times through one forward); the blocks' routes are reset to None after.
    """
    blocks = _blocks(model)
    chosen = set(range(len(blocks)) if main is None else main)
    if not chosen <= set(range(len(blocks))):
        raise ValueError(f"block indices must lie in [0, {len(blocks)}), got {sorted(chosen)}")
    try:
        for index, block in enumerate(blocks):
            block.route = None if main is None else ("main" if index in chosen else "shortcut")
        return model.backward(dy)
    finally:
        for block in blocks:
            block.route = None


@contextlib.contextmanager
def _model_restored(model: Module) -> Iterator[None]:
    """Undo what measuring does to the model: parameter gradients and BN running stats."""
    grads = [param.grad.copy() for param in model.parameters()]
    state = model.state_dict()
    try:
        yield
    finally:
        for param, grad in zip(model.parameters(), grads):
            param.grad = grad
        model.load_state_dict(state)


def sum_over_paths(
    model: Module, x: np.ndarray, dy: np.ndarray, *, max_blocks: int = 12
) -> dict[str, Any]:
    """The exact identity: the routed input gradients of all 2^n paths add up to dL/dx.

    Runs one forward of x (in the model's current mode), the full backward of ``dy``
    (shaped like the output) and one routed backward per path. Returns ``{"paths": 2^n,
    "full": dL/dx, "path_sum": sum of g_S, "max_abs_error": max |full - path_sum|}``.
    Parameter gradients and batch-norm statistics are left as they were.
    """
    n = len(_blocks(model))
    if n > max_blocks:
        raise ValueError(f"{n} blocks make 2^{n} paths; at most {max_blocks} blocks (max_blocks)")
    with _model_restored(model), retain_caches():
        model(x)
        full = routed_backward(model, dy, None)
        path_sum = np.zeros_like(full)
        for main in itertools.product((False, True), repeat=n):
            path_sum += routed_backward(model, dy, [i for i in range(n) if main[i]])
    return {
        "paths": 2**n,
        "full": full,
        "path_sum": path_sum,
        "max_abs_error": float(np.max(np.abs(full - path_sum))),
    }


def choose_subsets(n: int, k: int, draws: int, rng: np.random.Generator) -> list[tuple[int, ...]]:
    """Distinct subsets of k of the n blocks: all C(n, k) of them if there are at most
    ``draws``, else ``draws`` drawn at random (uniformly, without repeats)."""
    if math.comb(n, k) <= draws:
        return list(itertools.combinations(range(n), k))
    chosen: dict[tuple[int, ...], None] = {}  # in the order drawn
    while len(chosen) < draws:
        chosen[tuple(sorted(rng.choice(n, size=k, replace=False).tolist()))] = None
    return list(chosen)


def _spread(values: Sequence[float]) -> dict[str, float]:
    v = np.asarray(values, dtype=np.float64)
    return {
        "mean": float(v.mean()),
        "std": float(v.std()),
        "min": float(v.min()),
        "max": float(v.max()),
    }


def gradient_by_path_length(
    model: ImageClassifier,
    x: np.ndarray,
    targets: np.ndarray,
    *,
    samples: int = 24,
    seed: int = 0,
) -> dict[str, Any]:
    """Magnitude of the input gradient carried by paths of each length (Veit et al. Fig. 6).

    One forward of the batch x (N, C, H, W) in training mode (batch statistics, as in a
    training step), the cross-entropy gradient of each image, dlogits = softmax - onehot
    (the summed loss); then for each length k, ``samples`` distinct paths (all C(n, k) if
    there are no more) and for each the routed gradient g_S (N, C, H, W), measured as the
    mean over images of |g_S[i]|_2. Per length: the sampled magnitudes and their mean, std, min and
    max; ``total`` = C(n, k) * mean, the gradient all paths of length k would carry if
    magnitudes added (Veit et al.'s weighting); ``share`` = total / sum of totals.
    ``full`` is the same measure of the whole gradient. The model is left as it was
    (weights, gradients, running statistics, mode).
    """
    if samples < 1:
        raise ValueError(f"samples must be at least 1, got {samples}")
    n = len(_blocks(model))
    rng = np.random.default_rng(seed)
    distribution = path_length_distribution(n)
    was_training = model.training
    rows = []
    with _model_restored(model), retain_caches():
        model.train()
        try:
            logits = model(x)
            _, cache = cross_entropy_forward(logits, targets)
            dlogits = cross_entropy_backward(len(targets), cache)  # the summed loss

            def magnitude(main: Sequence[int] | None) -> float:
                g = routed_backward(model, dlogits, main)
                return float(np.mean(np.linalg.norm(g.reshape(len(g), -1), axis=1)))

            full = magnitude(None)
            for k, count in zip(distribution["length"], distribution["count"]):
                subsets = choose_subsets(n, k, samples, rng)
                values = [magnitude(main) for main in subsets]
                rows.append(
                    {
                        "length": k,
                        "paths": count,
                        "exhaustive": len(subsets) == count,
                        "magnitudes": values,
                        **_spread(values),
                        "total": count * float(np.mean(values)),
                    }
                )
        finally:
            model.train(was_training)
    grand = sum(row["total"] for row in rows)
    for row in rows:
        row["share"] = row["total"] / grand if grand > 0 else float("nan")
    return {"blocks": n, "images": len(x), "metric": GRADIENT_METRIC, "full": full, "lengths": rows}


def effective_lengths(gradients: dict[str, Any], fraction: float = 0.9) -> dict[str, Any]:
    """The shortest run of consecutive lengths a..b whose paths carry ``fraction`` of the
    total gradient (the shortest lengths among equally short runs), the share of all paths
    they make up, and the gradient-weighted mean length sum_k k * share(k)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction}")
    share = np.array([row["share"] for row in gradients["lengths"]])
    paths = np.array([row["paths"] for row in gradients["lengths"]], dtype=np.float64)
    m = len(share)
    _, a, b = min(
        (b - a, a, b)
        for a in range(m)
        for b in range(a, m)
        if share[a : b + 1].sum() >= fraction * (1 - 1e-12)
    )
    return {
        "fraction": fraction,
        "shortest": a,
        "longest": b,
        "share": float(share[a : b + 1].sum()),
        "path_fraction": float(paths[a : b + 1].sum() / paths.sum()),
        "mean_length": float(np.dot(np.arange(m), share)),
    }


def _slots(model: Module) -> list[tuple[Module, str, ResidualBlock]]:
    """(parent, attribute, block) of every block in forward order: where to put a stand-in."""
    named = dict(model.named_modules())
    slots = []
    for name, block in residual_blocks(model):
        parent, _, attribute = name.rpartition(".")
        slots.append((named[parent], attribute, block))
    return slots


@contextlib.contextmanager
def blocks_deleted(model: Module, deleted: Sequence[int]) -> Iterator[None]:
    """Inside the block, the blocks ``deleted`` (forward-order indices) are replaced by
    :class:`~nnscratch.experiments.lesion.BranchRemoved`: the shortcut alone.

    Each block comes back in the mode it left in (``model.eval()`` meanwhile reaches only
    the layers a stand-in keeps, such as a pre-activation block's shared BN-ReLU).
    """
    slots = _slots(model)
    modes = [block.training for _, _, block in slots]
    try:
        for index in deleted:
            parent, attribute, block = slots[index]
            setattr(parent, attribute, BranchRemoved(block))
        yield
    finally:
        for (parent, attribute, block), training in zip(slots, modes):
            setattr(parent, attribute, block.train(training))


def swappable_pairs(model: Module) -> list[tuple[int, int]]:
    """Pairs (i, j), i < j, of blocks that can trade places: both keep the shape of their
    input (no stride, no change of channels) and sit in the same stage."""
    slots = _slots(model)
    keep_shape = [BranchRemoved(block).method == "identity" for _, _, block in slots]
    return [
        (i, j)
        for i, j in itertools.combinations(range(len(slots)), 2)
        if keep_shape[i] and keep_shape[j] and slots[i][0] is slots[j][0]
    ]


@contextlib.contextmanager
def blocks_swapped(model: Module, swaps: Sequence[tuple[int, int]]) -> Iterator[list[int]]:
    """Inside the block, the pairs ``swaps`` have traded places, one swap after the other;
    yields the order: ``order[p]`` is the original index of the block now at position p."""
    slots = _slots(model)
    pairs = swappable_pairs(model)
    order = list(range(len(slots)))
    for i, j in swaps:
        if (min(i, j), max(i, j)) not in pairs:
            raise ValueError(
                f"blocks {i} and {j} cannot trade places; same-shape pairs in one stage: {pairs}"
            )
        order[i], order[j] = order[j], order[i]
    try:
        for (parent, attribute, _), original in zip(slots, order):
            setattr(parent, attribute, slots[original][2])
        yield order
    finally:
        for parent, attribute, block in slots:
            setattr(parent, attribute, block)


def kendall_tau(order: Sequence[int]) -> float:
    """Kendall's rank correlation of ``order`` with 0, 1, ..., n-1: 1 - 4 D / (n (n-1)),
    D the number of discordant pairs (1: unchanged, -1: reversed)."""
    n = len(order)
    discordant = sum(order[i] > order[j] for i, j in itertools.combinations(range(n), 2))
    return 1.0 - 4.0 * discordant / (n * (n - 1)) if n > 1 else 1.0


def _accuracy(model: ImageClassifier, dataset: ArrayDataset, transform, batch_size: int) -> float:
    return evaluate(model, dataset, transform, batch_size).accuracy


def delete_blocks(
    model: ImageClassifier,
    dataset: ArrayDataset,
    transform,
    *,
    draws: int = 6,
    seed: int = 0,
    batch_size: int = 256,
) -> dict[str, Any]:
    """Test accuracy with k random blocks deleted, k = 0..n (Veit et al. Fig. 5a).

    For each k, ``draws`` distinct random sets of k blocks (all C(n, k) sets if there are
    no more), each replaced by its shortcut (:class:`~nnscratch.experiments.lesion.BranchRemoved`),
    the model restored after each. Returns ``{"blocks": n, "baseline_accuracy", "rows"}``,
    one row per k: ``{"deleted": k, "sets", "exhaustive", "accuracies"}`` and the mean,
    std, min and max of the accuracies.
    """
    if draws < 1:
        raise ValueError(f"draws must be at least 1, got {draws}")
    n = len(residual_blocks(model))
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(n + 1):
        sets = choose_subsets(n, k, draws, rng)
        accuracies = []
        for deleted in sets:
            with blocks_deleted(model, deleted):
                accuracies.append(_accuracy(model, dataset, transform, batch_size))
        rows.append(
            {
                "deleted": k,
                "sets": [list(s) for s in sets],
                "exhaustive": len(sets) == math.comb(n, k),
                "accuracies": accuracies,
                **_spread(accuracies),
            }
        )
    return {"blocks": n, "baseline_accuracy": rows[0]["mean"], "rows": rows}


def reorder_blocks(
    model: ImageClassifier,
    dataset: ArrayDataset,
    transform,
    *,
    max_swaps: int = 4,
    draws: int = 6,
    seed: int = 0,
    batch_size: int = 256,
) -> dict[str, Any]:
    """Test accuracy after s random swaps of same-shape blocks, s = 0..max_swaps (Fig. 5b).

    s swaps: s distinct pairs of :func:`swappable_pairs` applied one after the other (so a
    pair is never swapped back), all of the possible sequences if there are at most
    ``draws``, else ``draws`` random ones; s stops at the number of pairs. Each result has
    the block order's Kendall tau against the original. Returns ``{"pairs": swappable
    pairs, "rows"}``, one row per s: ``{"swaps": s, "orders", "kendall_tau",
    "accuracies"}`` and the mean, std, min and max of the accuracies.
    """
    if draws < 1 or max_swaps < 0:
        raise ValueError(
            f"draws must be at least 1 and max_swaps at least 0, got {draws}, {max_swaps}"
        )
    pairs = swappable_pairs(model)
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(min(max_swaps, len(pairs)) + 1):
        if math.perm(len(pairs), s) <= draws:
            sequences = [list(p) for p in itertools.permutations(pairs, s)]
        else:
            sequences = [
                [pairs[i] for i in rng.choice(len(pairs), size=s, replace=False)]
                for _ in range(draws)
            ]
        orders, accuracies = [], []
        for swaps in sequences:
            with blocks_swapped(model, swaps) as order:
                orders.append(order)
                accuracies.append(_accuracy(model, dataset, transform, batch_size))
        rows.append(
            {
                "swaps": s,
                "orders": orders,
                "kendall_tau": [kendall_tau(order) for order in orders],
                "accuracies": accuracies,
                **_spread(accuracies),
            }
        )
    return {"pairs": [list(p) for p in pairs], "rows": rows}


def gradient_batch(
    dataset: ArrayDataset, transform, images: int, dtype: np.dtype
) -> tuple[np.ndarray, np.ndarray]:
    """The first ``images`` images of ``dataset``, transformed, in ``dtype``, and their labels."""
    if images < 2:
        raise ValueError(f"the gradient batch needs at least 2 images (batch norm), got {images}")
    x = transform(dataset.images[:images], np.random.default_rng(0))
    return x.astype(dtype, copy=False), dataset.labels[:images]


def net_paths(
    model: ImageClassifier,
    dataset: ArrayDataset,
    transform,
    *,
    initial: ImageClassifier | None = None,
    samples: int = 24,
    draws: int = 6,
    max_swaps: int = 4,
    images: int = 64,
    seed: int = 0,
) -> dict[str, Any]:
    """Everything measured on one trained net, on ``dataset`` (its test split).

    Returns ``{"residual", "chance", "gradients", "deletion", "reordering"}`` (chance:
    1 / the number of classes); for a residual net
    ``gradients = {"trained", "initial"}`` from :func:`gradient_by_path_length` on the first
    ``images`` images (``initial``: the same architecture freshly initialised, or None);
    for a plain net (one path) ``gradients`` is None. Then :func:`delete_blocks` and
    :func:`reorder_blocks`.
    """
    residual = all(block.residual for _, block in residual_blocks(model))
    gradients = None
    if residual:
        x, y = gradient_batch(dataset, transform, images, next(model.parameters()).dtype)
        measure = dict(samples=samples, seed=seed)
        gradients = {
            "trained": gradient_by_path_length(model, x, y, **measure),
            "initial": None
            if initial is None
            else gradient_by_path_length(initial, x, y, **measure),
        }
    return {
        "residual": residual,
        "chance": 1 / model.num_classes,
        "gradients": gradients,
        "deletion": delete_blocks(model, dataset, transform, draws=draws, seed=seed),
        "reordering": reorder_blocks(
            model, dataset, transform, max_swaps=max_swaps, draws=draws, seed=seed
        ),
    }


def paths_study(
    model: str = "resnet20",
    *,
    steps: int = 300,
    batch_size: int = 128,
    lr: float = 0.1,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
    schedule: str = "cosine",
    batch_norm: bool = True,
    init: str = "he",
    activation: str = "relu",
    width: float = 0.5,
    dataset: str = "synthetic",
    data_dir: str | None = None,
    n_train: int | None = None,
    n_test: int | None = None,
    samples: int = 24,
    draws: int = 6,
    max_swaps: int = 4,
    images: int = 64,
    seed: int = 0,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train ``model`` and its plain twin briefly (as
    :func:`~nnscratch.experiments.lesion.lesion_study` does), then measure both with
    :func:`net_paths`; the residual net's ``initial`` gradients are those of its own
    weights before training.

    Returns ``{"config", "distribution", "runs"}``: the path-length distribution of the
    residual net, and per net ``{"label", "training", **net_paths(...)}``.
    """
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
        samples=samples,
        draws=draws,
        max_swaps=max_swaps,
        images=images,
        seed=seed,
    )
    splits = load_splits(dataset, data_dir=data_dir, n_train=n_train, n_test=n_test, seed=seed)
    splits = subset_splits(splits, n_train, n_test)  # a real dataset comes whole: cut it
    transform = builders.eval_transform(splits.mean, splits.std)

    runs = []
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
            desc=label,
        )
        measured = net_paths(
            net,
            splits.test,
            transform,
            initial=build_for(model, splits, config, residual=True, seed=seed)
            if residual
            else None,
            samples=samples,
            draws=draws,
            max_swaps=max_swaps,
            images=images,
            seed=seed,
        )
        run = {"label": label, "training": training, **measured}
        runs.append(run)
        if log is not None:
            for line in summary_lines(run):
                log(line)
    blocks = runs[0]["deletion"]["blocks"]
    return {"config": config, "distribution": path_length_distribution(blocks), "runs": runs}


def summary_lines(run: dict[str, Any]) -> list[str]:
    """What a run found, in a few lines: the effective path lengths, accuracy against the
    number of deleted blocks and of swaps."""
    lines = []
    deletion, reordering = run["deletion"], run["reordering"]
    lines.append(f"{run['label']}: test accuracy {deletion['baseline_accuracy']:.1%}")
    for when in ("initial", "trained"):
        gradients = (run["gradients"] or {}).get(when)
        if gradients is not None:
            e = effective_lengths(gradients)
            n = gradients["blocks"]
            lines.append(
                f"  gradient ({when}): paths of length {e['shortest']}..{e['longest']} carry "
                f"{e['share']:.0%} of the total ({e['path_fraction']:.0%} of the {2**n} "
                f"paths); mean length weighted by gradient {e['mean_length']:.1f}, "
                f"by number of paths {n / 2:g}"
            )
    lines.append(
        "  k blocks deleted, mean accuracy: "
        + ", ".join(f"{row['deleted']}: {row['mean']:.1%}" for row in deletion["rows"])
    )
    lines.append(
        "  s pairs swapped, mean accuracy: "
        + ", ".join(f"{row['swaps']}: {row['mean']:.1%}" for row in reordering["rows"])
    )
    return lines
