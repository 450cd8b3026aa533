"""The data an experiment runs on: train and test splits, or one fixed, normalised batch."""

from __future__ import annotations

import numpy as np

from nnscratch import data
from nnscratch.experiments.networks import check_dtype
from nnscratch.training import builders
from nnscratch.training.config import TrainConfig


def load_splits(
    dataset: str = "synthetic",
    *,
    data_dir: str | None = None,
    n_train: int | None = None,
    n_test: int | None = None,
    seed: int = 0,
) -> builders.DataSplits:
    """Train and test splits (no validation split) with train's channel statistics."""
    config = TrainConfig(
        dataset=dataset,
        data_dir=data_dir,
        download=dataset != "synthetic",
        n_train=n_train,
        n_test=n_test,
        val_fraction=0.0,
        seed=seed,
    )
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
    check_dtype(dtype)
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
