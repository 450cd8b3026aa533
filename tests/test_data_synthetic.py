"""The built-in synthetic dataset: determinism, format, and how hard it is."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from nnscratch.data import synthetic
from nnscratch.data.synthetic import CLASSES


def standardized(train_x: np.ndarray, test_x: np.ndarray):
    mu, sd = train_x.mean(0), train_x.std(0) + 1e-3
    return (train_x - mu) / sd, (test_x - mu) / sd


def ridge_accuracy(x, y, x_test, y_test, lam):
    """Least-squares one-vs-rest linear classifier with an L2 penalty ``lam * N``."""
    x, x_test = standardized(x, x_test)
    targets = np.eye(10, dtype=np.float32)[y]  # (N, 10)
    gram = x.T @ x + lam * len(x) * np.eye(x.shape[1], dtype=np.float32)
    w = np.linalg.solve(gram, x.T @ targets)  # (D, 10)
    return float(np.mean(np.argmax(x_test @ w, axis=1) == y_test))


def pixels(ds):
    return ds.images.reshape(len(ds), -1).astype(np.float32) / 255  # (N, 3072)


def test_format_and_balance():
    train, test = synthetic(n_train=95, n_test=20, seed=0)
    assert train.images.shape == (95, 3, 32, 32) and train.images.dtype == np.uint8
    assert test.images.shape == (20, 3, 32, 32)
    assert train.labels.dtype == np.int64 and train.classes == CLASSES and len(CLASSES) == 10
    counts = np.bincount(train.labels, minlength=10)
    assert counts.max() - counts.min() <= 1
    assert train.images.std() > 30  # not a blank image set
    small, _ = synthetic(n_train=10, n_test=0, size=24)
    assert small.images.shape == (10, 3, 24, 24) and len(_) == 0


def test_same_seed_same_data_and_streams_are_independent():
    a_train, a_test = synthetic(n_train=50, n_test=30, seed=7)
    b_train, b_test = synthetic(n_train=50, n_test=30, seed=7)
    np.testing.assert_array_equal(a_train.images, b_train.images)
    np.testing.assert_array_equal(a_test.labels, b_test.labels)
    c_train, _ = synthetic(n_train=50, n_test=30, seed=8)
    assert not np.array_equal(a_train.images, c_train.images)
    d_train, _ = synthetic(n_train=50, n_test=5, seed=7)  # n_test does not change train
    np.testing.assert_array_equal(a_train.images, d_train.images)


@pytest.mark.parametrize("bad", [{"n_train": -1}, {"n_test": 2.5}, {"size": 8}])
def test_bad_arguments(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        synthetic(**bad)


def test_linear_classifier_on_pixels_stays_below_half():
    """Class identity is a local, movable pattern: a pixel-linear model must fail, but
    the classes are not noise (above the 10% chance level)."""
    train, test = synthetic(n_train=3000, n_test=1000, seed=0)
    acc = ridge_accuracy(pixels(train), train.labels, pixels(test), test.labels, lam=0.3)
    assert 0.15 < acc < 0.5, acc


def random_filter_features(images: np.ndarray, filters: np.ndarray) -> np.ndarray:
    """|conv(x, filters)| pooled by max and mean over positions: (N, 2F). A fixed,
    translation-invariant non-linear feature map, a cheap stand-in for a trained CNN."""
    x = images.astype(np.float32) / 255
    x -= x.mean(axis=(2, 3), keepdims=True)
    k, out = filters.shape[-1], []
    for i in range(0, len(x), 250):
        patches = sliding_window_view(x[i : i + 250], (k, k), axis=(2, 3))  # (B, C, H', W', k, k)
        b, _, h, w = patches.shape[:4]
        cols = patches.transpose(0, 2, 3, 1, 4, 5).reshape(b * h * w, -1)  # (B*H'*W', C*k*k)
        r = np.abs(cols @ filters.reshape(len(filters), -1).T).reshape(b, h * w, -1)
        out.append(np.concatenate([r.max(axis=1), r.mean(axis=1)], axis=1))
    return np.concatenate(out)


def test_translation_invariant_features_separate_the_classes():
    train, test = synthetic(n_train=2000, n_test=1000, seed=0)
    filters = np.random.default_rng(0).standard_normal((64, 3, 5, 5)).astype(np.float32)
    acc = ridge_accuracy(
        random_filter_features(train.images, filters),
        train.labels,
        random_filter_features(test.images, filters),
        test.labels,
        lam=1e-2,
    )
    assert acc > 0.7, acc
