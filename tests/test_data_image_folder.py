"""image_folder() on tiny PNG/JPEG files made with Pillow inside the test."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from PIL import Image

from nnscratch.data import image_folder

# The package re-exports a function named like this module; patch the module itself.
module = importlib.import_module("nnscratch.data.image_folder")

COLOURS = {"blue": (0, 0, 255), "green": (0, 255, 0), "red": (255, 0, 0)}


def make_folder(root, per_class=5, size=(12, 10), fmt="PNG"):
    for name, colour in COLOURS.items():
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            suffix = ".png" if fmt == "PNG" else ".JPG"
            Image.new("RGB", size, colour).save(root / name / f"{i:02d}{suffix}", fmt)
    return root


def test_flat_layout_is_split_stratified(tmp_path):
    root = make_folder(tmp_path / "imgs")
    (root / "red" / "notes.txt").write_text("not an image")  # ignored
    (root / "red" / ".hidden.png").write_bytes(b"junk")  # ignored
    train, test = image_folder(root, size=8, test_fraction=0.2, seed=0)
    assert train.classes == ["blue", "green", "red"]
    assert train.images.shape == (12, 3, 8, 8) and test.images.shape == (3, 3, 8, 8)
    assert train.images.dtype == np.uint8 and train.labels.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(test.labels), [1, 1, 1])
    for ds in (train, test):  # each image is the solid colour of its class
        for image, label in zip(ds.images, ds.labels, strict=True):
            expected = COLOURS[ds.classes[label]]
            np.testing.assert_array_equal(image[:, 4, 4], expected)
    assert train.source == test.source == str(root)  # split() keeps the source
    train2, test2 = image_folder(root, size=8, seed=0)
    np.testing.assert_array_equal(train2.images, train.images)
    np.testing.assert_array_equal(test2.labels, test.labels)


def test_train_test_layout_greyscale_and_jpeg(tmp_path):
    make_folder(tmp_path / "train", per_class=3, fmt="JPEG")
    make_folder(tmp_path / "test", per_class=2)
    train, test = image_folder(tmp_path, size=4, channels=1)
    assert train.images.shape == (9, 1, 4, 4) and test.images.shape == (6, 1, 4, 4)
    assert (train.source, test.source) == (str(tmp_path / "train"), str(tmp_path / "test"))
    np.testing.assert_array_equal(test.labels, [0, 0, 1, 1, 2, 2])
    # Pillow's "L" conversion of pure red is round(0.299 * 255) = 76.
    assert abs(int(test.images[4, 0, 2, 2]) - 76) <= 1


def test_resize_is_to_size_by_size(tmp_path):
    make_folder(tmp_path, per_class=5, size=(40, 7))
    train, _ = image_folder(tmp_path, size=16)
    assert train.image_shape == (3, 16, 16)


def test_errors_are_clear(tmp_path):
    with pytest.raises(ValueError, match="no class sub-folders"):
        image_folder(tmp_path)
    root = make_folder(tmp_path / "a")
    (root / "empty").mkdir()
    with pytest.raises(ValueError, match="class 'empty' has no images"):
        image_folder(root)
    (root / "empty" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(ValueError, match=r"cannot read image .*broken\.png"):
        image_folder(root)
    with pytest.raises(FileNotFoundError):
        image_folder(tmp_path / "missing")
    with pytest.raises(ValueError, match="channels"):
        image_folder(root, channels=2)


def test_test_split_with_unknown_class(tmp_path):
    make_folder(tmp_path / "train")
    make_folder(tmp_path / "test")
    (tmp_path / "test" / "zebra").mkdir()
    with pytest.raises(ValueError, match="zebra"):
        image_folder(tmp_path)


def test_image_over_the_pixel_limit_is_refused_before_decoding(tmp_path, monkeypatch):
    root = make_folder(tmp_path, per_class=2, size=(12, 10))
    monkeypatch.setattr(module, "MAX_IMAGE_PIXELS", 12 * 10 - 1)
    pillow_limit = Image.MAX_IMAGE_PIXELS
    with pytest.raises(ValueError, match=r"refusing image .*00\.png: it declares 12 x 10 = 120"):
        image_folder(root)
    assert Image.MAX_IMAGE_PIXELS == pillow_limit  # Pillow's global is left alone
    monkeypatch.setattr(module, "MAX_IMAGE_PIXELS", 12 * 10)
    train, test = image_folder(root, size=4)
    assert len(train) + len(test) == 6
