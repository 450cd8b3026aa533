"""Winograd F(2x2, 3x3) in the fast tier: exact in float64, as accurate as im2col in float32,
chosen by a rule that the tests pin down, correct in every share and chunk."""

import numpy as np
import pytest
from conftest import readonly

import nnscratch.functional as readable
from nnscratch.functional.conv import conv_geometry
from nnscratch.functional.fast import conv as fast_conv
from nnscratch.functional.fast import scratch as scratch_space
from nnscratch.functional.fast import winograd, winograd_tiles, winograd_tiles_channels_last
from nnscratch.functional.fast import workers as worker_pool


def test_transforms_reproduce_one_tile_of_the_convolution(rng):
    """A^T [(G g G^T) * (B^T d B)] A is the 2x2 valid correlation of a 4x4 tile with g."""
    d, g = rng.standard_normal((4, 4)), rng.standard_normal((3, 3))
    m = (winograd.G @ g @ winograd.G.T) * (winograd.B_T @ d @ winograd.B_T.T)
    direct = np.array([[(d[i : i + 3, j : j + 3] * g).sum() for j in range(2)] for i in range(2)])
    np.testing.assert_allclose(winograd.A_T @ m @ winograd.A_T.T, direct, atol=1e-13)


def test_rotating_the_kernel_permutes_the_tile_positions(rng):
    w = rng.standard_normal((3, 4, 3, 3))
    rotated = winograd.transform_weight(np.ascontiguousarray(w[:, :, ::-1, ::-1]))
    np.testing.assert_allclose(rotated, winograd.transform_weight(w)[winograd.ROTATED], atol=1e-14)


@pytest.mark.parametrize(
    "x_shape, w_shape, stride, padding, path",
    [
        ((2, 128, 8, 8), (128, 128, 3, 3), 1, 1, "winograd"),
        ((2, 128, 5, 7), (256, 128, 3, 3), 1, 1, "winograd"),  # 128 channels, a small plane
        ((2, 127, 4, 4), (128, 127, 3, 3), 1, 1, "im2col"),  # too narrow for a small plane
        ((2, 128, 4, 4), (64, 128, 3, 3), 1, 1, "im2col"),
        ((2, 128, 2, 2), (128, 128, 3, 3), 1, 1, "winograd"),
        ((2, 8, 8, 8), (16, 8, 3, 3), 1, 1, "winograd"),  # 8 channels in, an 8 x 8 plane
        ((2, 16, 32, 32), (16, 16, 3, 3), 1, 1, "winograd"),
        ((2, 64, 8, 9), (4, 64, 3, 3), 1, 1, "winograd"),
        ((2, 7, 32, 32), (64, 7, 3, 3), 1, 1, "im2col"),  # too few input channels
        ((2, 3, 32, 32), (64, 3, 3, 3), 1, 1, "im2col"),  # an RGB stem
        ((2, 64, 7, 32), (64, 64, 3, 3), 1, 1, "im2col"),  # a plane under 8 high
        ((2, 64, 4, 4), (64, 64, 3, 3), 1, 1, "im2col"),
        ((2, 128, 8, 8), (128, 128, 3, 3), 2, 1, "im2col"),  # strided
        ((2, 128, 8, 8), (128, 128, 3, 3), 1, 0, "im2col"),  # unpadded
        ((2, 128, 8, 8), (128, 128, 5, 5), 1, 1, "im2col"),
        ((2, 128, 1, 1), (128, 128, 3, 3), 1, 1, "im2col"),  # one pixel: 3/4 of a tile wasted
        ((2, 128, 1, 8), (128, 128, 3, 3), 1, 1, "im2col"),
        ((2, 16, 8, 8), (32, 16, 1, 1), 1, 0, "pointwise"),
        ((2, 16, 8, 8), (32, 16, 1, 1), 2, 0, "im2col"),
    ],
)
def test_the_rule_that_chooses_the_path(x_shape, w_shape, stride, padding, path, monkeypatch):
    x, w = np.zeros(x_shape), np.zeros(w_shape)
    g = conv_geometry("t", x, w, stride, padding)
    assert fast_conv.conv_path(x.shape, w.shape, g) == path
    calls = []
    monkeypatch.setattr(winograd, "winograd_forward", lambda *a: calls.append(a) or 1 / 0)
    if path == "winograd":
        with pytest.raises(ZeroDivisionError):
            fast_conv.conv2d_forward(x, w, stride=stride, padding=padding)
        assert len(calls) == 1
    else:
        fast_conv.conv2d_forward(x, w, stride=stride, padding=padding)
        assert not calls


def test_the_rule_that_splits_channels_rather_than_images():
    """By U's size: ResNet-18's last stage (512 channels) splits its channels in float32,
    the stage before (256) its images, unless in float64 (twice the bytes)."""
    assert winograd.splits_channels(512, 512, 4)
    assert winograd.splits_channels(384, 384, 4)
    assert not winograd.splits_channels(256, 256, 4)
    assert winograd.splits_channels(256, 256, 8)
    assert not winograd.splits_channels(128, 512, 4)


SPLITS = {"images": 1 << 62, "channels": 0}  # CHANNEL_SPLIT_BYTES forcing each split


def planes_layout_tiles(x, N, th, tw, M):
    """V and y of the kernels of :mod:`.winograd_tiles` for images 1 .. N of x, written
    from tile column 5 on and from image 2, channel 3 on."""
    V = np.full((16, x.shape[1], 5 + N * th * tw), np.nan)
    winograd_tiles.input_tiles_kernel(x, 1, N, V, 5)
    y = np.full((N + 2, x.shape[1] + 3, *x.shape[2:]), np.nan)
    winograd_tiles.output_tiles_kernel(M, y, 2, 3)
    return V, y


def channels_last_tiles(x, N, th, tw, M):
    """The same by the kernels of :mod:`.winograd_tiles_channels_last` (whose V and M are
    (16, T, C)), after copying the images into a zero border over NaN scratch; V returned
    as (16, C, T)."""
    padded = np.full((N, 2 * th + 2, 2 * tw + 2, x.shape[1]), np.nan)
    winograd_tiles_channels_last.padded_kernel(x, 1, N, padded)
    V = np.full((16, 5 + N * th * tw, x.shape[1]), np.nan)
    winograd_tiles_channels_last.input_tiles_kernel(padded, N, V, 5)
    y = np.full((N + 2, x.shape[1] + 3, *x.shape[2:]), np.nan)
    M_last = np.ascontiguousarray(M.transpose(0, 2, 1))
    winograd_tiles_channels_last.output_tiles_kernel(M_last, y, 2, 3)
    return V.transpose(0, 2, 1), y


@pytest.mark.parametrize("kernels", [planes_layout_tiles, channels_last_tiles])
@pytest.mark.parametrize("H, W", [(4, 4), (5, 3), (1, 1), (2, 9), (8, 7), (17, 32)])
def test_tile_kernels_are_the_transforms_of_every_tile(H, W, kernels, rng):
    """V[:, c, t] = kron(B^T, B^T) @ (the 4x4 tile t of the zero-padded plane), written
    from column t0 on; y's 2x2 blocks = kron(A^T, A^T) @ M[:, c, t], cropped, written into
    the images and channels from (n0, c0) on and nowhere else."""
    N, C = 3, 5
    th, tw = (H + 1) // 2, (W + 1) // 2
    x = rng.standard_normal((N + 1, C, H, W))
    padded = np.zeros((N + 1, C, 2 * th + 2, 2 * tw + 2))
    padded[:, :, 1 : H + 1, 1 : W + 1] = x
    M = rng.standard_normal((16, C, N * th * tw))
    V, y = kernels(x, N, th, tw, M)
    assert np.isnan(V[:, :, :5]).all()
    assert np.isnan(y[:2]).all() and np.isnan(y[:, :3]).all()
    in_transform = np.kron(winograd.B_T, winograd.B_T)
    out_transform = np.kron(winograd.A_T, winograd.A_T)
    for n in range(N):
        for c in range(C):
            for ty in range(th):
                for tx in range(tw):
                    t = (n * th + ty) * tw + tx
                    tile = padded[n + 1, c, 2 * ty : 2 * ty + 4, 2 * tx : 2 * tx + 4]
                    np.testing.assert_allclose(V[:, c, 5 + t], in_transform @ tile.ravel())
                    block = (out_transform @ M[:, c, t]).reshape(2, 2)
                    h, w = min(2, H - 2 * ty), min(2, W - 2 * tx)
                    got = y[n + 2, c + 3, 2 * ty : 2 * ty + h, 2 * tx : 2 * tx + w]
                    np.testing.assert_allclose(got, block[:h, :w])


def test_the_rule_that_transforms_small_planes_channels_last():
    assert winograd.channels_last(8, 8) and winograd.channels_last(4, 1)
    assert not winograd.channels_last(16, 16) and not winograd.channels_last(2, 9)


LAYOUTS = {"planes": 0, "channels_last": winograd.CHANNELS_LAST_MAX_SIDE}


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("workers, chunk_images", [(1, 1), (3, 1), (3, 2), (2, 64)])
def test_every_share_and_chunk(workers, chunk_images, split, layout, rng, monkeypatch):
    """Uneven shares of 7 images (or of 17 and 16 channels), chunks of 1-2 images or all,
    odd plane sizes, both layouts of the tiles."""
    monkeypatch.setattr(winograd, "CHANNEL_SPLIT_BYTES", SPLITS[split])
    monkeypatch.setattr(winograd, "CHANNELS_LAST_MAX_SIDE", LAYOUTS[layout])
    monkeypatch.setenv("NNSCRATCH_NUM_THREADS", str(workers))
    monkeypatch.setattr(worker_pool, "_available_cores", lambda: 4)
    monkeypatch.setattr(worker_pool, "MIN_SPLIT_SIZE", 0)
    for H, W in ((6, 6), (5, 3), (1, 1), (1, 4)):
        x = rng.standard_normal((7, 16, H, W))
        w = rng.standard_normal((17, 16, 3, 3))
        L = ((H + 1) // 2) * ((W + 1) // 2)
        monkeypatch.setattr(scratch_space, "CHUNK_BYTES", chunk_images * 16 * 17 * L * 8)
        y = winograd.winograd_forward(x, w)  # directly: the rule skips one-pixel planes
        y_ref, cache_ref = readable.conv2d_naive_forward(x, w, padding=1)
        np.testing.assert_allclose(y, y_ref, rtol=0, atol=1e-11)
        dy = readonly(rng.standard_normal(y.shape))
        dx, dw = winograd.winograd_backward(dy, x, w)
        dx_ref, dw_ref, _ = readable.conv2d_naive_backward(dy, cache_ref)
        np.testing.assert_allclose(dx, dx_ref, rtol=0, atol=1e-11)
        np.testing.assert_allclose(dw, dw_ref, rtol=0, atol=1e-10)


def float32_errors(x64, w64, dy64, path, monkeypatch):
    """|float32 - float64 truth| / |truth| (Frobenius norms) of y, dx and dw on one path.

    (The max-entry error is the same to within its noise: it moves by about 30% from
    one random draw to the next, the norm by under 2%.)"""
    monkeypatch.setenv("NNSCRATCH_WINOGRAD", "1" if path == "winograd" else "0")
    monkeypatch.setattr(fast_conv, "WINOGRAD_MIN_CHANNELS_SMALL_PLANE", 1)
    truth_y, cache = readable.conv2d_forward(x64, w64, padding=1)
    truth = [truth_y, *readable.conv2d_backward(dy64, cache)[:2]]
    y, cache32 = fast_conv.conv2d_forward(x64.astype(np.float32), w64.astype(np.float32), padding=1)
    got = [y, *fast_conv.conv2d_backward(dy64.astype(np.float32), cache32)[:2]]
    return [np.linalg.norm(g - t) / np.linalg.norm(t) for g, t in zip(got, truth)]


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize(
    "channels, size", [(16, 32), (32, 16), (64, 8), (64, 32), (128, 16), (256, 8), (512, 4)]
)
def test_float32_error_at_most_twice_im2col(channels, size, split, rng, monkeypatch):
    """ResNet-18's 3x3 stride-1 layers at full and quarter width (batch 4), He-initialised
    weights."""
    monkeypatch.setattr(winograd, "CHANNEL_SPLIT_BYTES", SPLITS[split])
    x = np.abs(rng.standard_normal((4, channels, size, size)))  # post-ReLU inputs
    w = rng.standard_normal((channels, channels, 3, 3)) * np.sqrt(2 / (9 * channels))
    dy = rng.standard_normal((4, channels, size, size))
    wino = float32_errors(x, w, dy, "winograd", monkeypatch)
    im2col = float32_errors(x, w, dy, "im2col", monkeypatch)
    for name, a, b in zip(("y", "dx", "dw"), wino, im2col):
        assert a <= 2 * b, f"{name}: Winograd {a:.2e} against im2col {b:.2e}"
