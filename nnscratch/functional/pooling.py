"""Pooling: max pooling over KH x KW windows, and global average pooling.

Max pooling keeps the largest value of each window and, in backward, routes each
output's gradient to the one input that won its window:

    y[n, c, p, q] = max_{i, j} x_pad[n, c, p*sh + i, q*sw + j]
    dx[n, c, h, w] = sum of dy[n, c, p, q] over the windows (p, q) that x[n, c, h, w] won

A tie goes to the first maximum in row-major order, so exactly one element gets the
gradient. Padding is -inf, so a padded position never wins. Output size:
``H_out = (H + 2*ph - KH) // sh + 1`` (and likewise for W).

Global average pooling: ``y[n, c] = mean over (h, w) of x[n, c, h, w]``, so every pixel
gets an equal share ``dy[n, c] / (H*W)`` back.

This is the readable tier; ``nnscratch/functional/fast/pooling.py`` runs max pooling
as numba loops.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from nnscratch.functional._checks import (
    InputShapeError,
    check_float_array,
    check_upstream,
    pair,
    require_cache,
)


class MaxPoolCache(NamedTuple):
    """Input shape and, for each output, the flat index h*W + w of its window's winner."""

    x_shape: tuple[int, int, int, int]
    argmax: np.ndarray


def pool_geometry(op, x, kernel_size, stride, padding) -> tuple[int, ...]:
    """Validate the arguments; returns (KH, KW, sh, sw, ph, pw, H_out, W_out)."""
    check_float_array(op, "x", x, "N, C, H, W")
    KH, KW = pair(op, "kernel_size", kernel_size, 1)
    sh, sw = pair(op, "stride", stride if stride is not None else (KH, KW), 1)
    ph, pw = pair(op, "padding", padding, 0)
    if 2 * ph > KH or 2 * pw > KW:
        raise ValueError(f"{op}: padding {(ph, pw)} must be at most half the kernel {(KH, KW)}")
    H, W = x.shape[2:]
    H_out = (H + 2 * ph - KH) // sh + 1
    W_out = (W + 2 * pw - KW) // sw + 1
    if H_out < 1 or W_out < 1:
        raise InputShapeError(f"{op}: input of size {H}x{W} is smaller than the kernel {KH}x{KW}")
    return KH, KW, sh, sw, ph, pw, H_out, W_out


def max_pool2d_forward(
    x: np.ndarray,
    kernel_size: int | tuple[int, int],
    stride: int | tuple[int, int] | None = None,
    padding: int | tuple[int, int] = 0,
) -> tuple[np.ndarray, MaxPoolCache]:
    """Max over KH x KW windows of x (N, C, H, W); stride defaults to the kernel size.

    Returns y (N, C, H_out, W_out) and the cache for :func:`max_pool2d_backward`.
    """
    KH, KW, sh, sw, ph, pw, H_out, W_out = pool_geometry(
        "max_pool2d", x, kernel_size, stride, padding
    )
    N, C, _, W = x.shape
    x_pad = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=-np.inf)
    windows = sliding_window_view(x_pad, (KH, KW), axis=(2, 3))[:, :, ::sh, ::sw]
    windows = windows.reshape(N, C, H_out, W_out, KH * KW)  # each window as one row
    k = windows.argmax(axis=-1)  # (N, C, H_out, W_out): the first maximum in row-major order
    y = np.take_along_axis(windows, k[..., None], axis=-1)[..., 0]
    h = np.arange(H_out)[:, None] * sh - ph + k // KW  # the winner's row in x ...
    w = np.arange(W_out)[None, :] * sw - pw + k % KW  # ... and column
    return y, MaxPoolCache(x.shape, h * W + w)


def max_pool2d_backward(dy: np.ndarray, cache: MaxPoolCache) -> np.ndarray:
    """dx (N, C, H, W): each dy entry goes to the input that won its window."""
    require_cache("max_pool2d", cache)
    x_shape, argmax = cache
    check_upstream("max_pool2d", dy, argmax.shape)
    N, C, H, W = x_shape
    dx = np.zeros((N, C, H * W), dtype=dy.dtype)
    n = np.arange(N)[:, None, None, None]
    c = np.arange(C)[None, :, None, None]
    np.add.at(dx, (n, c, argmax), dy)  # add.at: a pixel that won two windows gets both
    return dx.reshape(x_shape)


def global_avg_pool2d_forward(x: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """y[n, c] = mean over (H, W) of x[n, c]: (N, C, H, W) -> (N, C); the cache is x's shape."""
    check_float_array("global_avg_pool2d", "x", x, "N, C, H, W")
    return x.mean(axis=(2, 3)), x.shape


def global_avg_pool2d_backward(dy: np.ndarray, cache: tuple[int, int, int, int]) -> np.ndarray:
    """dx[n, c, h, w] = dy[n, c] / (H * W): every pixel had an equal share of the mean."""
    require_cache("global_avg_pool2d", cache)
    N, C, H, W = cache
    check_upstream("global_avg_pool2d", dy, (N, C))
    return np.broadcast_to((dy / (H * W))[:, :, None, None], cache).copy()
