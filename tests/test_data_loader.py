"""BatchLoader: batch count, coverage, per-epoch reproducibility, prefetch equality."""

from __future__ import annotations

import numpy as np
import pytest

from nnscratch.data import ArrayDataset, BatchLoader, Pipeline


def dataset(n=50):
    images = np.zeros((n, 1, 4, 4), np.uint8)
    images[:, 0, 0, 0] = np.arange(n)  # pixel (0, 0) holds the item's index
    images[:, 0, 1:, :] = 200
    return ArrayDataset(images, np.arange(n) % 3, ["a", "b", "c"])


def ids(x: np.ndarray) -> list[int]:
    return np.rint(x[:, 0, 0, 0] * 255).astype(int).tolist()


def epoch(loader) -> list[tuple[np.ndarray, np.ndarray]]:
    return list(loader)


def test_len_and_batch_shapes():
    ds = dataset(50)
    assert len(BatchLoader(ds, 16)) == 4
    assert len(BatchLoader(ds, 16, drop_last=True)) == 3
    assert len(BatchLoader(ds, 10, drop_last=True)) == 5
    batches = epoch(BatchLoader(ds, 16, shuffle=False))
    assert [len(y) for _, y in batches] == [16, 16, 16, 2]
    x, y = batches[0]
    assert x.dtype == np.float32 and x.shape == (16, 1, 4, 4) and y.dtype == np.int64
    assert ids(x) == list(range(16)) and y.tolist() == [i % 3 for i in range(16)]
    np.testing.assert_allclose(x[:, 0, 1:], 200 / 255)  # no transform: scaled to [0, 1]
    dropped = epoch(BatchLoader(ds, 16, drop_last=True))
    assert [len(y) for _, y in dropped] == [16, 16, 16]


def test_each_epoch_is_a_permutation_and_differs():
    loader = BatchLoader(dataset(50), 8, seed=3)
    first = [i for x, _ in loader for i in ids(x)]
    second = [i for x, _ in loader for i in ids(x)]
    assert sorted(first) == sorted(second) == list(range(50))
    assert first != second and first != list(range(50))
    assert loader.epoch == 2


def test_resume_at_epoch_k_replays_the_uninterrupted_run():
    ds = dataset(50)
    augment = Pipeline.from_options(crop=1, flip=True)
    uninterrupted = BatchLoader(ds, 8, seed=5, transform=augment)
    runs = [epoch(uninterrupted) for _ in range(3)]
    resumed = BatchLoader(ds, 8, seed=5, transform=augment)
    resumed.set_epoch(np.int64(2))  # as read back from a checkpoint
    for (xa, ya), (xb, yb) in zip(runs[2], epoch(resumed), strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    fixed_order = BatchLoader(ds, 50, shuffle=False, seed=5, transform=augment)
    (x0, y0), (x1, y1) = epoch(fixed_order)[0], epoch(fixed_order)[0]
    np.testing.assert_array_equal(y0, y1)
    assert not np.array_equal(x0, x1)  # fresh augmentation draws every epoch
    other_seed = epoch(BatchLoader(ds, 8, seed=6, transform=augment))
    assert not np.array_equal(other_seed[0][1], runs[0][0][1])
    with pytest.raises(ValueError, match="epoch"):
        resumed.set_epoch(-1)


def test_prefetch_gives_identical_batches():
    ds = dataset(50)
    augment = Pipeline.from_options(mean=[0.5], std=[0.25], crop=2, flip=True, jitter=0.4)
    plain = BatchLoader(ds, 7, seed=1, transform=augment)
    fetched = BatchLoader(ds, 7, seed=1, transform=augment, prefetch=True)
    for _ in range(2):
        a, b = epoch(plain), epoch(fetched)
        assert len(a) == len(b) == 8
        for (xa, ya), (xb, yb) in zip(a, b, strict=True):
            np.testing.assert_array_equal(xa, xb)
            np.testing.assert_array_equal(ya, yb)


def test_prefetch_can_stop_early_and_propagates_errors():
    loader = BatchLoader(dataset(50), 5, prefetch=True)
    for i, _ in enumerate(loader):
        if i == 1:
            break

    def broken(batch, rng):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        epoch(BatchLoader(dataset(10), 5, transform=broken, prefetch=True))


def test_transform_must_return_float32():
    loader = BatchLoader(dataset(10), 5, transform=lambda b, rng: b.astype(np.float64))
    with pytest.raises(TypeError, match=r"float32.*float64"):
        epoch(loader)


@pytest.mark.parametrize(
    "kwargs",
    [{"batch_size": 0}, {"batch_size": 2, "seed": -1}, {"batch_size": 64, "drop_last": True}],
)
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError, match="BatchLoader"):
        BatchLoader(dataset(10), **kwargs)
