"""The fast batch norm: the readable op's formulas as numba kernels, on every core.

Same signatures and results as ``nnscratch/functional/batch_norm.py`` (which explains
the math). Forward reads x once for the statistics and once for the output
``y = x * scale + shift`` (scale = gamma * inv_std, shift = beta - mean * scale);
backward reads x and dy once for the two channel sums and once for dx. The cache keeps
x itself (which the caller holds anyway) rather than a new xhat array.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from nnscratch.functional._checks import check_upstream, require_cache
from nnscratch.functional.batch_norm import (
    BatchNormCache,
    check_batch_norm_args,
    update_running_stats,
)
from nnscratch.functional.fast.workers import map_shares


# ----------------------------------------------------------------------- numba kernels
def _channel_stats(x, c0, c1, mean, var):
    """Mean and biased variance of the channels c0 .. c1-1 of x (N, C, L), reading x once.

    Each (n, c) plane gets an exact two-pass mean and sum of squared deviations (the
    plane is in cache for the second pass); planes are merged with Chan et al.'s
    formula, which stays accurate where E[x^2] - E[x]^2 would cancel.
    """
    N, L = x.shape[0], x.shape[2]
    for c in range(c0, c1):
        m = x.dtype.type(0)  # accumulate in x's dtype: no float64 in a float32 step
        m2 = x.dtype.type(0)
        count = 0
        for n in range(N):
            s = x.dtype.type(0)
            for k in range(L):
                s += x[n, c, k]
            plane_mean = s / x.dtype.type(L)
            s2 = x.dtype.type(0)
            for k in range(L):
                d = x[n, c, k] - plane_mean
                s2 += d * d
            total = count + L
            delta = plane_mean - m
            m += delta * x.dtype.type(L / total)
            m2 += s2 + delta * delta * x.dtype.type(count * L / total)
            count = total
        mean[c] = m
        var[c] = m2 / x.dtype.type(count)


def _affine(x, scale, shift, y):
    """y = x * scale[c] + shift[c] for x, y (N, C, L)."""
    N, C, L = x.shape
    for nc in range(N * C):
        c = nc % C
        a = scale[c]
        b = shift[c]
        n = nc // C
        for k in range(L):
            y[n, c, k] = x[n, c, k] * a + b


def _backward_sums(dy, x, c0, c1, mean, dbeta, dsum):
    """dbeta[c] = sum dy and dsum[c] = sum dy * (x - mean[c]) for c in c0 .. c1-1."""
    N, L = x.shape[0], x.shape[2]
    zero = x.dtype.type(0)
    for c in range(c0, c1):
        mu = mean[c]
        sb = zero
        sg = zero
        for n in range(N):
            pb = zero  # per-plane partial sums: short float32 chains, then a short sum
            pg = zero
            for k in range(L):
                g = dy[n, c, k]
                pb += g
                pg += g * (x[n, c, k] - mu)
            sb += pb
            sg += pg
        dbeta[c] = sb
        dsum[c] = sg


def _backward_dx(dy, x, mean, k_dy, k_x, k_0, dx):
    """dx = k_dy[c] * dy + k_x[c] * (x - mean[c]) + k_0[c] for dy, x, dx (N, C, L)."""
    N, C, L = x.shape
    for nc in range(N * C):
        c = nc % C
        n = nc // C
        mu = mean[c]
        p = k_dy[c]
        q = k_x[c]
        r = k_0[c]
        for k in range(L):
            dx[n, c, k] = p * dy[n, c, k] + q * (x[n, c, k] - mu) + r


# Reductions may be reordered (fastmath "reassoc") so LLVM can vectorise them; the
# elementwise kernels keep strict IEEE order. They release the GIL: the
# reductions run on a share of the channels per core, the elementwise passes on a share
# of the images (workers.map_shares).
channel_stats_kernel = njit(cache=True, nogil=True, fastmath={"reassoc"})(_channel_stats)
affine_kernel = njit(cache=True, nogil=True)(_affine)
backward_sums_kernel = njit(cache=True, nogil=True, fastmath={"reassoc"})(_backward_sums)
backward_dx_kernel = njit(cache=True, nogil=True)(_backward_dx)


# ----------------------------------------------------------------------- forward/backward
def affine_coefficients(
    mean: np.ndarray, var: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(inv_std, scale, shift), each (C,) in mean's dtype, with which batch norm is the
    affine map y = gamma * (x - mean) * inv_std + beta = x * scale + shift."""
    inv_std = (1 / np.sqrt(var + eps)).astype(mean.dtype)
    scale = gamma * inv_std
    return inv_std, scale, beta - mean * scale


def batch_norm2d_forward(
    x: np.ndarray,
    gamma: np.ndarray,
    beta: np.ndarray,
    running_mean: np.ndarray,
    running_var: np.ndarray,
    *,
    training: bool,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> tuple[np.ndarray, BatchNormCache]:
    """Normalise x (N, C, H, W) per channel; gamma, beta, running stats are (C,).

    In training mode ``running_mean`` and ``running_var`` are updated in place.
    Returns y (N, C, H, W) and the cache for :func:`batch_norm2d_backward`.
    """
    check_batch_norm_args("batch_norm2d", x, gamma, beta, running_mean, running_var, training)
    N, C, H, W = x.shape
    x = np.ascontiguousarray(x)
    x3 = x.reshape(N, C, H * W)
    if training:
        mean = np.empty(C, dtype=x.dtype)
        var = np.empty(C, dtype=x.dtype)
        map_shares(lambda c0, c1: channel_stats_kernel(x3, c0, c1, mean, var), C, x.size)
        update_running_stats(running_mean, running_var, mean, var, momentum, N * H * W)
    else:
        mean = running_mean.astype(x.dtype)
        var = running_var.astype(x.dtype)
    inv_std, scale, shift = affine_coefficients(mean, var, gamma, beta, eps)
    y = np.empty_like(x)
    y3 = y.reshape(N, C, H * W)
    map_shares(lambda n0, n1: affine_kernel(x3[n0:n1], scale, shift, y3[n0:n1]), N, x.size)
    return y, BatchNormCache(x, mean, inv_std, gamma, training)


def batch_norm2d_backward(
    dy: np.ndarray, cache: BatchNormCache
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients (dx, dgamma, dbeta) of batch norm from dy (N, C, H, W).

    With the channel sums dbeta = sum(dy) and dsum = sum(dy * (x - mu)), dgamma =
    dsum * inv_std, and dx is one pass: scale * dy + k_x * (x - mu) + k_0.
    """
    require_cache("batch_norm2d", cache)
    x, mean, inv_std, gamma, training = cache
    check_upstream("batch_norm2d", dy, x.shape)
    N, C, H, W = x.shape
    M = N * H * W
    x3 = x.reshape(N, C, H * W)
    dy3 = np.ascontiguousarray(dy, dtype=x.dtype).reshape(N, C, H * W)
    scale = gamma * inv_std
    dbeta = np.empty(C, dtype=x.dtype)
    dsum = np.empty(C, dtype=x.dtype)  # sum of dy * (x - mu)
    map_shares(lambda c0, c1: backward_sums_kernel(dy3, x3, c0, c1, mean, dbeta, dsum), C, x.size)
    dgamma = dsum * inv_std  # sum of dy * xhat
    if training:
        # dx = scale * (dy - dbeta / M - xhat * dgamma / M), xhat = (x - mu) * inv_std
        k_x = -scale * inv_std * dgamma / M
        k_0 = -scale * dbeta / M
    else:  # fixed statistics: dx = scale * dy
        k_x = np.zeros_like(scale)
        k_0 = np.zeros_like(scale)
    dx = np.empty_like(x)
    dx3 = dx.reshape(x3.shape)

    def dx_share(n0: int, n1: int) -> None:  # dx of images n0 .. n1-1
        backward_dx_kernel(dy3[n0:n1], x3[n0:n1], mean, scale, k_x, k_0, dx3[n0:n1])

    map_shares(dx_share, N, x.size)
    return dx, dgamma, dbeta
