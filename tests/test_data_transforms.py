"""Batch transforms: shapes, dtypes, determinism and correctness."""

from __future__ import annotations

import numpy as np
import pytest

from nnscratch.data import (
    ColorJitter,
    HorizontalFlip,
    Normalize,
    Pipeline,
    RandomCrop,
    channel_stats,
    color_jitter,
    horizontal_flip,
    normalize,
    random_crop,
    to_float,
)


def images(n=16, c=3, h=8, w=10, seed=0, low=1):
    return np.random.default_rng(seed).integers(low, 256, size=(n, c, h, w), dtype=np.uint8)


def rng(seed=0):
    return np.random.default_rng(seed)


def test_random_crop_shape_dtype_determinism():
    x = images()
    a, b = random_crop(x, rng(1), padding=2), random_crop(x, rng(1), padding=2)
    assert a.shape == x.shape and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(random_crop(x, rng(1), padding=0), x)
    f = random_crop(x.astype(np.float32), rng(1), padding=2)
    assert f.dtype == np.float32
    np.testing.assert_array_equal(f, a.astype(np.float32))


def test_random_crop_is_a_shifted_window_with_zeros_outside():
    """Each output is padded[n, :, dy:dy+H, dx:dx+W] for some offset; with images that have
    no zero pixel, the zeros show exactly where the padding came in."""
    p, x = 3, images(n=200, h=8, w=10)
    out = random_crop(x, rng(2), padding=p)
    padded = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    seen = set()
    for n in range(len(x)):
        offsets = [
            (dy, dx)
            for dy in range(2 * p + 1)
            for dx in range(2 * p + 1)
            if np.array_equal(out[n], padded[n, :, dy : dy + 8, dx : dx + 10])
        ]
        assert len(offsets) == 1, n
        dy, dx = offsets[0]
        seen.add((dy, dx))
        zero_rows = np.flatnonzero(~out[n].any(axis=(0, 2)))
        zero_cols = np.flatnonzero(~out[n].any(axis=(0, 1)))
        expected_rows = [r for r in range(8) if not p <= r + dy < p + 8]
        expected_cols = [c for c in range(10) if not p <= c + dx < p + 10]
        assert zero_rows.tolist() == expected_rows and zero_cols.tolist() == expected_cols
    assert len(seen) > 30  # offsets vary across the 49 possible


def test_flip_twice_with_the_same_draws_is_identity():
    x = images(n=64)
    once = horizontal_flip(x, rng(3))
    flipped = np.array([not np.array_equal(once[i], x[i]) for i in range(len(x))])
    assert 10 < flipped.sum() < 54
    np.testing.assert_array_equal(once[flipped], x[flipped][..., ::-1])
    np.testing.assert_array_equal(once[~flipped], x[~flipped])
    np.testing.assert_array_equal(horizontal_flip(once, rng(3)), x)
    np.testing.assert_array_equal(horizontal_flip(x, rng(0), p=1.0), x[..., ::-1])
    np.testing.assert_array_equal(horizontal_flip(x, rng(0), p=0.0), x)


def test_color_jitter_float32_range_determinism_and_identity():
    x = images()
    a = color_jitter(x, rng(4), 0.5, 0.5, 0.5)
    assert a.dtype == np.float32 and a.shape == x.shape
    assert a.min() >= 0 and a.max() <= 1
    np.testing.assert_array_equal(a, color_jitter(x, rng(4), 0.5, 0.5, 0.5))
    assert not np.allclose(a, to_float(x))
    np.testing.assert_allclose(color_jitter(x, rng(4), 0, 0, 0), to_float(x), atol=1e-6)


def test_color_jitter_brightness_scales_each_image():
    x = images(low=10) // 4  # dark enough that x * 1.5 stays below 1
    out = color_jitter(x, rng(5), brightness=0.5, contrast=0, saturation=0)
    ratio = out / to_float(x)  # (N, C, H, W): one factor per image
    per_image = ratio.reshape(len(x), -1)
    np.testing.assert_allclose(
        per_image, np.repeat(per_image[:, :1], per_image.shape[1], 1), rtol=1e-5
    )
    assert per_image[:, 0].min() >= 0.5 and per_image[:, 0].max() <= 1.5
    assert np.ptp(per_image[:, 0]) > 0.1


def test_color_jitter_saturation_leaves_grey_alone():
    grey = np.repeat(images(c=1), 3, axis=1)  # R = G = B
    out = color_jitter(grey, rng(6), brightness=0, contrast=0, saturation=0.9)
    np.testing.assert_allclose(out, to_float(grey), atol=1e-6)
    single = color_jitter(images(c=1), rng(6), 0.2, 0.2, 0.2)  # 1 channel works too
    assert single.shape == (16, 1, 8, 10)


def test_normalize_and_channel_stats():
    x = images(n=50, seed=1)
    mean, std = channel_stats(x, chunk=7)  # several chunks
    ref = x.astype(np.float64) / 255
    np.testing.assert_allclose(mean, ref.mean(axis=(0, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(std, ref.std(axis=(0, 2, 3)), rtol=1e-5)
    assert mean.dtype == np.float32 and mean.shape == (3,)
    z = normalize(x, mean, std)
    assert z.dtype == np.float32
    np.testing.assert_allclose(z.mean(axis=(0, 2, 3)), 0, atol=1e-4)
    np.testing.assert_allclose(z.std(axis=(0, 2, 3)), 1, atol=1e-4)
    np.testing.assert_allclose(z[0, 1], (x[0, 1] / 255 - mean[1]) / std[1], atol=1e-6)
    assert normalize(x.astype(np.float64) / 255, mean, std).dtype == np.float32
    with pytest.raises(ValueError, match="3 entries for 3 channels"):
        normalize(x, [0.5], [0.5])
    with pytest.raises(ValueError, match="positive"):
        normalize(x, [0.5] * 3, [0.5, 0.0, 0.5])


def test_bad_batches():
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        random_crop(np.zeros((3, 4, 4), np.uint8), rng())
    with pytest.raises(TypeError, match="int64"):
        horizontal_flip(np.zeros((1, 3, 4, 4), np.int64), rng())


def test_pipeline_from_options():
    x = images()
    mean, std = channel_stats(x)
    evaluation = Pipeline.from_options(mean, std)
    assert [type(s) for s in evaluation.steps] == [Normalize]
    np.testing.assert_array_equal(evaluation(x, rng(0)), evaluation(x, rng(1)))
    np.testing.assert_allclose(evaluation(x, rng(0)), normalize(x, mean, std))
    train = Pipeline.from_options(mean, std, crop=4, flip=True, jitter=0.3)
    assert [type(s) for s in train.steps] == [RandomCrop, HorizontalFlip, ColorJitter, Normalize]
    a, b = train(x, rng(7)), train(x, rng(7))
    assert a.dtype == np.float32 and a.shape == x.shape
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, train(x, rng(8)))
    # Composition: the pipeline is its steps applied in order with one generator.
    r = rng(9)
    manual = normalize(
        color_jitter(horizontal_flip(random_crop(x, r, 4), r), r, 0.3, 0.3, 0.3), mean, std
    )
    np.testing.assert_array_equal(train(x, rng(9)), manual)
    plain = Pipeline()(x, rng())
    assert plain.dtype == np.float32 and plain.max() <= 1
    assert "RandomCrop(padding=4)" in repr(train)
    with pytest.raises(ValueError, match="both mean and std"):
        Pipeline.from_options(mean=mean)
