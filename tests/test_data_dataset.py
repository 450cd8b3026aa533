"""ArrayDataset validation, the stratified split, and the load() registry."""

from __future__ import annotations

import importlib
import subprocess
import sys

import numpy as np
import pytest

from nnscratch.data import ArrayDataset, load, names


def make(n=100, classes=4, seed=0, weights=None):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 3, 4, 4), dtype=np.uint8)
    images[:, 0, 0, 0] = np.arange(n) % 256  # with n <= 256, an id per image
    labels = rng.choice(classes, size=n, p=weights)
    return ArrayDataset(images, labels, [f"c{k}" for k in range(classes)])


def test_valid_dataset_and_label_conversion():
    ds = ArrayDataset(np.zeros((3, 1, 2, 2), np.uint8), np.array([0, 1, 1], np.int32), ["a", "b"])
    assert len(ds) == 3 and ds.labels.dtype == np.int64
    assert ds.num_classes == 2 and ds.image_shape == (1, 2, 2)


@pytest.mark.parametrize(
    ("images", "labels", "message"),
    [
        (
            np.zeros((3, 1, 2, 2), np.float32),
            [0, 1, 1],
            r"uint8 .*float32 array of shape \(3, 1, 2, 2\)",
        ),
        (np.zeros((3, 2, 2), np.uint8), [0, 1, 1], r"\(N, C, H, W\).*shape \(3, 2, 2\)"),
        (np.zeros((3, 1, 2, 2), np.uint8), [0.0, 1.0, 1.0], "integer array.*float64"),
        (np.zeros((3, 1, 2, 2), np.uint8), [0, 1], r"3 images .* but 2 labels"),
        (np.zeros((3, 1, 2, 2), np.uint8), [0, 1, 2], r"\[0, 2\).*max 2"),
        (np.zeros((3, 1, 2, 2), np.uint8), [0, -1, 1], "min -1"),
        ([[0]], [0], "got list"),
    ],
)
def test_invalid_dataset_is_rejected(images, labels, message):
    with pytest.raises(ValueError, match=message):
        ArrayDataset(images, np.asarray(labels), ["a", "b"])


def test_split_is_disjoint_complete_stratified_and_seeded():
    ds = make(n=200, classes=4, weights=[0.1, 0.2, 0.3, 0.4])
    train, val = ds.split(0.25, seed=3)
    assert len(train) + len(val) == 200 and len(val) == 50
    ids_train, ids_val = train.images[:, 0, 0, 0], val.images[:, 0, 0, 0]
    assert not set(ids_train.tolist()) & set(ids_val.tolist())
    assert sorted(np.concatenate([ids_train, ids_val]).tolist()) == sorted(range(200))
    counts, val_counts = np.bincount(ds.labels, minlength=4), np.bincount(val.labels, minlength=4)
    assert np.all(np.abs(val_counts - 0.25 * counts) <= 1)  # each class gives its share
    _, val2 = ds.split(0.25, seed=3)
    np.testing.assert_array_equal(val2.images, val.images)
    _, val3 = ds.split(0.25, seed=4)
    assert not np.array_equal(val3.images, val.images)
    assert train.classes == ds.classes


def test_split_by_count_and_bad_arguments():
    ds = make(n=30, classes=3)
    train, val = ds.split(7)
    assert (len(train), len(val)) == (23, 7)
    for bad in (0, 30, 0.0, 1.0, -0.5, True, "0.1"):
        with pytest.raises(ValueError, match="split"):
            ds.split(bad)


def test_registry_names_and_unknown_name():
    assert names() == ["cifar10", "cifar100", "fashion_mnist", "folder", "synthetic"]
    with pytest.raises(ValueError) as err:
        load("imagenet")
    for name in names():
        assert name in str(err.value)
    with pytest.raises(ValueError, match="root"):
        load("folder")


def test_load_dispatches(tmp_path, monkeypatch):
    train, test = load("synthetic", n_train=20, n_test=10, seed=1)
    assert (len(train), len(test)) == (20, 10)
    with pytest.raises(FileNotFoundError, match="CIFAR-100"):
        load("cifar100", root=tmp_path, download=False, label="coarse")
    fashion = importlib.import_module("nnscratch.data.fashion_mnist")
    monkeypatch.setattr(fashion, "SYSTEM_DIR", tmp_path / "no-system-copy")
    with pytest.raises(FileNotFoundError, match="Fashion-MNIST"):
        load("fashion_mnist", root=tmp_path, download=False, pad_to=32)
    with pytest.raises(FileNotFoundError, match="not a directory"):
        load("folder", root=tmp_path / "missing", size=16)


def test_import_is_light_and_offline():
    """Importing nnscratch.data opens no connection and imports no models/nn code."""
    code = (
        "import socket, sys\n"
        "def refuse(*a, **k): raise AssertionError('network used at import')\n"
        "socket.socket.connect = refuse\n"
        "import nnscratch.data\n"
        "bad = [m for m in sys.modules if m.startswith(('nnscratch.nn', 'nnscratch.models'))]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
