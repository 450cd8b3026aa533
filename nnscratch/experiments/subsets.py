"""Fewer images of a real dataset: a fixed, stratified subset of the train and test splits.

:func:`~nnscratch.experiments.datasets.load_splits` sizes the synthetic set itself; a
dataset read from files comes whole, and :func:`subset_splits` cuts it down, so that a
short budget passes over the training images several times.
"""

from __future__ import annotations

import dataclasses

from nnscratch.training import builders


def subset_splits(
    splits: builders.DataSplits, n_train: int | None = None, n_test: int | None = None
) -> builders.DataSplits:
    """``splits`` with at most ``n_train`` training and ``n_test`` test images.

    A split larger than asked keeps a stratified draw of that many images (each class its
    share, drawn with seed 0 whatever the experiment's seeds, original order kept); a
    split no larger, or a size of None, is kept as it is. The normalisation statistics
    stay those of the whole training split.
    """
    parts = {}
    for name, n in (("train", n_train), ("test", n_test)):
        split = getattr(splits, name)
        if n is not None and n < len(split):
            _, split = split.split(n, seed=0)
        parts[name] = split
    return dataclasses.replace(splits, **parts)
