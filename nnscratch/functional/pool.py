"""Pooling: max pooling over k x k windows, and global average pooling.

Max pooling routes each output's gradient to the one input that won its window
(the first maximum in row-major order when there is a tie, so exactly one element
gets it). Padding is implicit -inf, so a padded position never wins.
Output size: ``H_out = (H + 2*ph - KH) // sh + 1`` (and likewise for W).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from nnscratch.functional._checks import InputShapeError, check_float_array, pair, require_cache


def _max_pool(x, KH, KW, sh, sw, ph, pw, y, argmax):
    """y[n, c, p, q] = max over the window; argmax holds the winner's flat index h*W + w."""
    N, C, H, W = x.shape
    H_out, W_out = y.shape[2], y.shape[3]
    for nc in range(N * C):
        n = nc // C
        c = nc % C
        for p in range(H_out):
            for q in range(W_out):
                best = -np.inf
                best_index = -1
                for i in range(KH):
                    h = p * sh - ph + i
                    if h < 0 or h >= H:
                        continue
                    for j in range(KW):
                        w = q * sw - pw + j
                        if 0 <= w < W and (best_index < 0 or x[n, c, h, w] > best):
                            best = x[n, c, h, w]
                            best_index = h * W + w
                y[n, c, p, q] = best
                argmax[n, c, p, q] = best_index


def _max_pool_backward(dy, argmax, dx):
    """Add dy[n, c, p, q] onto dx at the window winner argmax[n, c, p, q]."""
    N, C, H_out, W_out = dy.shape
    W = dx.shape[3]
    for nc in range(N * C):
        n = nc // C
        c = nc % C
        dx[n, c] = 0
        for p in range(H_out):
            for q in range(W_out):
                k = argmax[n, c, p, q]
                dx[n, c, k // W, k % W] += dy[n, c, p, q]


# On the calling thread, between BLAS calls, like every kernel here (see conv.py).
max_pool_kernel = njit(cache=True)(_max_pool)
max_pool_backward_kernel = njit(cache=True)(_max_pool_backward)


class MaxPoolCache(NamedTuple):
    """Input shape and, for each output, the flat index h*W + w of its window's winner."""

    x_shape: tuple[int, int, int, int]
    argmax: np.ndarray


def max_pool2d_forward(
    x: np.ndarray,
    kernel_size: int | tuple[int, int],
    stride: int | tuple[int, int] | None = None,
    padding: int | tuple[int, int] = 0,
) -> tuple[np.ndarray, MaxPoolCache]:
    """Max over KH x KW windows of x (N, C, H, W); stride defaults to the kernel size.

    Returns y (N, C, H_out, W_out) and the cache for :func:`max_pool2d_backward`.
    """
    op = "max_pool2d"
    check_float_array(op, "x", x, "N, C, H, W")
    KH, KW = pair(op, "kernel_size", kernel_size, 1)
    sh, sw = pair(op, "stride", stride if stride is not None else (KH, KW), 1)
    ph, pw = pair(op, "padding", padding, 0)
    if 2 * ph > KH or 2 * pw > KW:
        raise ValueError(f"{op}: padding {(ph, pw)} must be at most half the kernel {(KH, KW)}")
    N, C, H, W = x.shape
    H_out = (H + 2 * ph - KH) // sh + 1
    W_out = (W + 2 * pw - KW) // sw + 1
    if H_out < 1 or W_out < 1:
        raise InputShapeError(f"{op}: input of size {H}x{W} is smaller than the kernel {KH}x{KW}")
    y = np.empty((N, C, H_out, W_out), dtype=x.dtype)
    argmax = np.empty((N, C, H_out, W_out), dtype=np.int64)
    max_pool_kernel(np.ascontiguousarray(x), KH, KW, sh, sw, ph, pw, y, argmax)
    return y, MaxPoolCache(x.shape, argmax)


def max_pool2d_backward(dy: np.ndarray, cache: MaxPoolCache) -> np.ndarray:
    """dx (N, C, H, W): each dy entry goes to the input that won its window."""
    require_cache("max_pool2d", cache)
    x_shape, argmax = cache
    if dy.shape != argmax.shape:
        raise ValueError(
            f"max_pool2d backward: expected dy of shape {argmax.shape}, got {dy.shape}"
        )
    dx = np.empty(x_shape, dtype=dy.dtype)
    max_pool_backward_kernel(np.ascontiguousarray(dy), argmax, dx)
    return dx


def global_avg_pool2d_forward(x: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """y[n, c] = mean over (H, W) of x[n, c]: (N, C, H, W) -> (N, C); the cache is x's shape."""
    check_float_array("global_avg_pool2d", "x", x, "N, C, H, W")
    return x.mean(axis=(2, 3)), x.shape


def global_avg_pool2d_backward(dy: np.ndarray, cache: tuple[int, int, int, int]) -> np.ndarray:
    """dx[n, c, h, w] = dy[n, c] / (H * W): every pixel had an equal share of the mean."""
    require_cache("global_avg_pool2d", cache)
    N, C, H, W = cache
    if dy.shape != (N, C):
        raise ValueError(
            f"global_avg_pool2d backward: expected dy of shape {(N, C)}, got {dy.shape}"
        )
    return np.broadcast_to((dy / (H * W))[:, :, None, None], cache).copy()
