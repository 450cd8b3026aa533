"""The fast max pooling: the readable op's window loops as numba kernels.

Same signatures and results as ``nnscratch/functional/pooling.py`` (which explains the
math and the tie convention): a window's first maximum in row-major order wins, and a
padded position never does.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from nnscratch.functional._checks import check_upstream, require_cache
from nnscratch.functional.pooling import MaxPoolCache, pool_geometry


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
    N, C = x.shape[:2]
    y = np.empty((N, C, H_out, W_out), dtype=x.dtype)
    argmax = np.empty((N, C, H_out, W_out), dtype=np.int64)
    max_pool_kernel(np.ascontiguousarray(x), KH, KW, sh, sw, ph, pw, y, argmax)
    return y, MaxPoolCache(x.shape, argmax)


def max_pool2d_backward(dy: np.ndarray, cache: MaxPoolCache) -> np.ndarray:
    """dx (N, C, H, W): each dy entry goes to the input that won its window."""
    require_cache("max_pool2d", cache)
    x_shape, argmax = cache
    check_upstream("max_pool2d", dy, argmax.shape)
    dx = np.empty(x_shape, dtype=dy.dtype)
    max_pool_backward_kernel(np.ascontiguousarray(dy), argmax, dx)
    return dx
