"""The in-memory dataset container, its stratified split, and the by-name registry."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class ArrayDataset:
    """Images and labels held in memory, with the class names.

    ``images`` is uint8 (N, C, H, W); ``labels`` is int64 (N,) with values in
    ``[0, len(classes))``; ``classes[k]`` names label ``k``. Integer labels of another
    dtype are converted to int64; anything else raises a ``ValueError`` naming the
    problem. ``source`` names where the images were read from (a directory, an archive or
    files), for messages; it is empty for generated data.
    """

    images: np.ndarray  # uint8 (N, C, H, W)
    labels: np.ndarray  # int64 (N,)
    classes: list[str]
    source: str = ""

    def __post_init__(self) -> None:
        images, labels = self.images, np.asarray(self.labels)
        if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4:
            got = (
                f"{images.dtype} array of shape {images.shape}"
                if isinstance(images, np.ndarray)
                else type(images).__name__
            )
            raise ValueError(f"ArrayDataset: images must be a uint8 array (N, C, H, W), got {got}")
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(
                "ArrayDataset: labels must be an integer array (N,), "
                f"got {labels.dtype} array of shape {labels.shape}"
            )
        if len(labels) != len(images):
            raise ValueError(
                f"ArrayDataset: {len(images)} images (shape {images.shape}) "
                f"but {len(labels)} labels (shape {labels.shape})"
            )
        self.classes = [str(c) for c in self.classes]
        if labels.size and (labels.min() < 0 or labels.max() >= len(self.classes)):
            raise ValueError(
                f"ArrayDataset: labels must lie in [0, {len(self.classes)}) for "
                f"{len(self.classes)} classes, got min {labels.min()} and max {labels.max()}"
            )
        self.labels = labels.astype(np.int64, copy=False)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        return tuple(self.images.shape[1:])

    def subset(self, indices: np.ndarray) -> ArrayDataset:
        """A new dataset with the rows ``indices`` (copied), same classes and source."""
        indices = np.asarray(indices, dtype=np.int64)
        return ArrayDataset(
            self.images[indices], self.labels[indices], list(self.classes), self.source
        )

    def split(self, val: float | int, seed: int = 0) -> tuple[ArrayDataset, ArrayDataset]:
        """Hold out a seeded, stratified validation set: returns ``(train, val)``.

        ``val`` is a fraction in (0, 1) or a count in [1, N). Each class gives its
        share of the held-out set (largest-remainder rounding, so the total is exact);
        which items go is drawn with ``numpy.random.default_rng(seed)``. The two parts
        are disjoint, cover the dataset, and keep the original order within each part.
        """
        n = len(self)
        if isinstance(val, bool) or not isinstance(val, (int, float, np.integer, np.floating)):
            raise ValueError(f"split: val must be a fraction or a count, got {val!r}")
        if isinstance(val, (float, np.floating)):
            if not 0.0 < val < 1.0:
                raise ValueError(f"split: a fraction must lie in (0, 1), got {val}")
            n_val = int(np.rint(val * n))
        else:
            n_val = int(val)
        if not 1 <= n_val < n:
            raise ValueError(
                f"split: the held-out part must have between 1 and {n - 1} of {n} items, "
                f"got {n_val} (from val={val!r})"
            )
        held_out = stratified_indices(self.labels, n_val, np.random.default_rng(seed))
        keep = np.ones(n, dtype=bool)
        keep[held_out] = False
        return self.subset(np.flatnonzero(keep)), self.subset(np.sort(held_out))


def stratified_indices(labels: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """Pick ``count`` indices of ``labels`` (N,) so each class keeps its proportion.

    Class ``k`` with ``n_k`` items gets ``floor(count * n_k / N)`` picks, and the
    leftover picks go to the classes with the largest remainders.
    """
    classes, counts = np.unique(labels, return_counts=True)
    quota = count * counts / counts.sum()
    take = np.floor(quota).astype(np.int64)
    order = np.argsort(-(quota - take), kind="stable")
    take[order[: count - take.sum()]] += 1
    picked = [
        rng.permutation(np.flatnonzero(labels == k))[:t] for k, t in zip(classes, take, strict=True)
    ]
    return np.concatenate(picked).astype(np.int64)


# name -> (module, function); imported on use, so nothing is read or fetched at import.
_REGISTRY = {
    "synthetic": ("nnscratch.data.synthetic", "synthetic"),
    "cifar10": ("nnscratch.data.cifar", "cifar10"),
    "cifar100": ("nnscratch.data.cifar", "cifar100"),
    "fashion_mnist": ("nnscratch.data.fashion_mnist", "fashion_mnist"),
    "folder": ("nnscratch.data.image_folder", "image_folder"),
}


def names() -> list[str]:
    """The dataset names that :func:`load` accepts."""
    return sorted(_REGISTRY)


def load(
    name: str, root: str | Path | None = None, download: bool = True, **kwargs: Any
) -> tuple[ArrayDataset, ArrayDataset]:
    """Load a dataset by name: returns ``(train, test)``.

    ``root`` is the data directory (for "folder", the image folder itself);
    ``download`` lets the file-backed readers fetch missing files. Extra keyword
    arguments go to the reader, e.g. ``load("cifar100", label="coarse")``,
    ``load("synthetic", n_train=5000)``, ``load("folder", root, size=64)``.
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown dataset {name!r}; valid names are: {', '.join(names())}")
    module, attr = _REGISTRY[name]
    reader = getattr(importlib.import_module(module), attr)
    if name == "synthetic":
        return reader(**kwargs)
    if name == "folder":
        if root is None:
            raise ValueError('load("folder") needs root=, the folder of class sub-folders')
        return reader(root, **kwargs)
    return reader(root, download=download, **kwargs)
