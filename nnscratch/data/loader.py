"""A seeded mini-batch loader over an in-memory dataset, with optional prefetch."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from .dataset import ArrayDataset
from .transforms import Transform, to_float


class BatchLoader:
    """Iterate over ``dataset`` in mini-batches of ``(x, y)``: x float32 (B, C, H, W), y int64 (B,).

    The order and the transform's random draws of epoch ``e`` come from
    ``SeedSequence([seed, e])`` alone, so they differ between epochs, yet resuming
    with ``set_epoch(k)`` replays exactly what an uninterrupted run saw in epoch ``k``.
    Each batch has its own generator (spawned from that seed), which is why
    ``prefetch=True`` (one background thread preparing the next batch) gives the same
    batches as ``prefetch=False``.

    Each ``iter()`` uses the current epoch and then advances it by one. Without a
    ``transform``, x is the images scaled to [0, 1].
    """

    def __init__(
        self,
        dataset: ArrayDataset,
        batch_size: int,
        shuffle: bool = True,
        seed: int = 0,
        transform: Transform | None = None,
        drop_last: bool = False,
        prefetch: bool = False,
    ):
        if not _is_int(batch_size) or batch_size < 1:
            raise ValueError(f"BatchLoader: batch_size must be a positive int, got {batch_size!r}")
        if not _is_int(seed) or seed < 0:
            raise ValueError(f"BatchLoader: seed must be a non-negative int, got {seed!r}")
        if drop_last and len(dataset) < batch_size:
            raise ValueError(
                f"BatchLoader: drop_last with batch_size {batch_size} leaves no batch "
                f"from {len(dataset)} items"
            )
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.transform = transform
        self.drop_last = drop_last
        self.prefetch = prefetch
        self.epoch = 0

    def __len__(self) -> int:
        """Batches per epoch."""
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Make the next ``iter()`` produce epoch ``epoch`` (for resuming a run)."""
        if not _is_int(epoch) or epoch < 0:
            raise ValueError(
                f"BatchLoader.set_epoch: epoch must be a non-negative int, got {epoch!r}"
            )
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        epoch, self.epoch = self.epoch, self.epoch + 1
        order_seq, batch_seq = np.random.SeedSequence([self.seed, epoch]).spawn(2)
        n = len(self.dataset)
        order = np.random.default_rng(order_seq).permutation(n) if self.shuffle else np.arange(n)
        starts = range(0, len(self) * self.batch_size, self.batch_size)
        jobs = list(zip(starts, batch_seq.spawn(len(starts)), strict=True))

        def make(job: tuple[int, np.random.SeedSequence]) -> tuple[np.ndarray, np.ndarray]:
            start, seq = job
            idx = order[start : start + self.batch_size]
            return self._batch(idx, np.random.default_rng(seq))

        if self.prefetch:
            return _prefetched(make, jobs)
        return map(make, jobs)

    def _batch(self, idx: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        images = self.dataset.images[idx]  # (B, C, H, W) uint8
        labels = self.dataset.labels[idx]  # (B,) int64
        x = to_float(images) if self.transform is None else self.transform(images, rng)
        if not isinstance(x, np.ndarray) or x.dtype != np.float32 or x.shape[0] != len(idx):
            got = f"{x.dtype} {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
            raise TypeError(
                f"BatchLoader: transform must return float32 (B, C, H, W) with B={len(idx)}, "
                f"got {got}"
            )
        return x, labels


def _is_int(value) -> bool:
    """True for Python and NumPy integers (an epoch read from a checkpoint), not bools."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _prefetched(make, jobs) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``make(job)`` for each job while one worker thread prepares the next one."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="nnscratch-prefetch") as pool:
        pending: Future | None = pool.submit(make, jobs[0]) if jobs else None
        try:
            for i in range(len(jobs)):
                result = pending.result()
                pending = pool.submit(make, jobs[i + 1]) if i + 1 < len(jobs) else None
                yield result
        finally:
            if pending is not None:
                pending.cancel()
