"""Batch normalisation over (N, H, W) for each channel, as in Ioffe & Szegedy (2015).

Training mode normalises with the statistics of the batch:

    mu = mean(x),  var = mean((x - mu)^2)          (biased, over M = N*H*W values)
    xhat = (x - mu) / sqrt(var + eps),   y = gamma * xhat + beta

and moves the running statistics towards them (PyTorch's convention, momentum 0.1):

    running_mean <- (1 - momentum) * running_mean + momentum * mu
    running_var  <- (1 - momentum) * running_var  + momentum * var * M / (M - 1)   (unbiased)

Evaluation mode uses the running statistics instead, so y is an affine map of x.

``batch_norm_relu2d_*`` is the same op followed by ReLU, ``relu(gamma * xhat + beta)``,
in the same passes over memory. Both run as numba kernels that read x once for the
statistics and once for the output; the cache keeps x itself (which the caller holds
anyway) rather than a new xhat array, and backward recomputes xhat on the fly.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from nnscratch.functional._checks import (
    InputShapeError,
    check_float_array,
    check_same_dtype,
    require_cache,
)
from nnscratch.functional.fast.workers import map_shares


class BatchNormCache(NamedTuple):
    """x (N, C, H, W), mean, inv_std, gamma, beta (C,), batch statistics used?, ReLU fused?"""

    x: np.ndarray
    mean: np.ndarray
    inv_std: np.ndarray
    gamma: np.ndarray
    beta: np.ndarray
    training: bool
    relu: bool


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


def _affine(x, scale, shift, relu, y):
    """y = x * scale[c] + shift[c] for x, y (N, C, L); then max(., 0) if relu."""
    N, C, L = x.shape
    zero = x.dtype.type(0)
    for nc in range(N * C):
        c = nc % C
        a = scale[c]
        b = shift[c]
        n = nc // C
        for k in range(L):
            v = x[n, c, k] * a + b
            y[n, c, k] = v if not relu or v > zero else zero


def _backward_sums(dy, x, c0, c1, mean, scale, shift, relu, dbeta, dsum):
    """dbeta[c] = sum g and dsum[c] = sum g * (x - mean[c]) for c in c0 .. c1-1, with g = dy
    masked by ReLU."""
    N, L = x.shape[0], x.shape[2]
    zero = x.dtype.type(0)
    for c in range(c0, c1):
        mu = mean[c]
        a = scale[c]
        b = shift[c]
        sb = zero
        sg = zero
        for n in range(N):
            pb = zero  # per-plane partial sums: short float32 chains, then a short sum
            pg = zero
            for k in range(L):
                g = dy[n, c, k]
                if relu and not x[n, c, k] * a + b > zero:  # relu'(0) = 0
                    g = zero
                pb += g
                pg += g * (x[n, c, k] - mu)
            sb += pb
            sg += pg
        dbeta[c] = sb
        dsum[c] = sg


def _backward_dx(dy, x, mean, scale, shift, relu, k_dy, k_x, k_0, dx):
    """dx = k_dy[c] * g + k_x[c] * (x - mean[c]) + k_0[c], with g = dy masked by ReLU."""
    N, C, L = x.shape
    zero = x.dtype.type(0)
    for nc in range(N * C):
        c = nc % C
        n = nc // C
        mu = mean[c]
        a = scale[c]
        b = shift[c]
        p = k_dy[c]
        q = k_x[c]
        r = k_0[c]
        for k in range(L):
            g = dy[n, c, k]
            if relu and not x[n, c, k] * a + b > zero:
                g = zero
            dx[n, c, k] = p * g + q * (x[n, c, k] - mu) + r


# Reductions may be reordered (fastmath "reassoc") so LLVM can vectorise them; the
# elementwise kernels keep strict IEEE order so backward's recomputed ReLU mask
# x * scale + shift > 0 is bit-for-bit the forward's. They release the GIL: the
# reductions run on a share of the channels per core, the elementwise passes on a share
# of the images (workers.map_shares).
channel_stats_kernel = njit(cache=True, nogil=True, fastmath={"reassoc"})(_channel_stats)
affine_kernel = njit(cache=True, nogil=True)(_affine)
backward_sums_kernel = njit(cache=True, nogil=True, fastmath={"reassoc"})(_backward_sums)
backward_dx_kernel = njit(cache=True, nogil=True)(_backward_dx)


# ----------------------------------------------------------------------- forward/backward
def _check(op, x, gamma, beta, running_mean, running_var) -> int:
    check_float_array(op, "x", x, "N, C, H, W")
    C = gamma.shape[0]
    if x.shape[1] != C:
        raise InputShapeError(
            f"{op}: expected x with C={C} channels, shape (N, {C}, H, W), got shape {x.shape}"
        )
    for name, v in (("beta", beta), ("running_mean", running_mean), ("running_var", running_var)):
        if v.shape != (C,):
            raise ValueError(f"{op}: expected {name} of shape ({C},), got {v.shape}")
    check_same_dtype(op, "x", {"x": x, "gamma": gamma, "beta": beta})
    return C


def _forward(op, x, gamma, beta, running_mean, running_var, training, momentum, eps, relu):
    C = _check(op, x, gamma, beta, running_mean, running_var)
    N, _, H, W = x.shape
    x = np.ascontiguousarray(x)
    x3 = x.reshape(N, C, H * W)
    if training:
        M = N * H * W
        if M < 2:
            raise InputShapeError(
                f"{op}: training mode needs more than one value per channel, got x of shape "
                f"{x.shape}; use a batch of 2 or more, or eval mode"
            )
        mean = np.empty(C, dtype=x.dtype)
        var = np.empty(C, dtype=x.dtype)
        map_shares(lambda c0, c1: channel_stats_kernel(x3, c0, c1, mean, var), C, x.size)
        running_mean *= 1 - momentum
        running_mean += momentum * mean.astype(running_mean.dtype)
        running_var *= 1 - momentum
        running_var += (momentum * M / (M - 1)) * var.astype(running_var.dtype)
    else:
        mean = running_mean.astype(x.dtype)
        var = running_var.astype(x.dtype)
    inv_std = (1 / np.sqrt(var + eps)).astype(x.dtype)
    scale = gamma * inv_std  # y = gamma * (x - mu) * inv_std + beta = x * scale + shift
    shift = beta - mean * scale
    y = np.empty_like(x)
    y3 = y.reshape(N, C, H * W)
    map_shares(
        lambda n0, n1: affine_kernel(x3[n0:n1], scale, shift, relu, y3[n0:n1]), N, x.size
    )
    return y, BatchNormCache(x, mean, inv_std, gamma, beta, training, relu)


def _backward(op, dy, cache):
    require_cache(op, cache)
    x, mean, inv_std, gamma, beta, training, relu = cache
    if dy.shape != x.shape:
        raise ValueError(f"{op} backward: expected dy of shape {x.shape}, got {dy.shape}")
    N, C, H, W = x.shape
    M = N * H * W
    x3 = x.reshape(N, C, H * W)
    dy3 = np.ascontiguousarray(dy, dtype=x.dtype).reshape(N, C, H * W)
    scale = gamma * inv_std
    shift = beta - mean * scale
    dbeta = np.empty(C, dtype=x.dtype)
    dsum = np.empty(C, dtype=x.dtype)  # sum of g * (x - mu)
    def sums(c0: int, c1: int) -> None:  # dbeta, dsum of channels c0 .. c1-1
        backward_sums_kernel(dy3, x3, c0, c1, mean, scale, shift, relu, dbeta, dsum)

    map_shares(sums, C, x.size)
    dgamma = dsum * inv_std  # sum of g * xhat
    if training:
        # dx = scale * (g - mean(g) - xhat * mean(g * xhat)),  mean(g) = dbeta / M
        k_x = -scale * inv_std * dgamma / M
        k_0 = -scale * dbeta / M
    else:  # fixed statistics: dx = scale * g
        k_x = np.zeros_like(scale)
        k_0 = np.zeros_like(scale)
    dx = np.empty_like(x)
    dx3 = dx.reshape(x3.shape)

    def dx_share(n0: int, n1: int) -> None:  # dx of images n0 .. n1-1
        backward_dx_kernel(dy3[n0:n1], x3[n0:n1], mean, scale, shift, relu, scale, k_x, k_0,
                           dx3[n0:n1])  # fmt: skip

    map_shares(dx_share, N, x.size)
    return dx, dgamma, dbeta


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
    return _forward(
        "batch_norm2d", x, gamma, beta, running_mean, running_var, training, momentum, eps, False
    )


def batch_norm2d_backward(
    dy: np.ndarray, cache: BatchNormCache
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients (dx, dgamma, dbeta) of batch norm from dy (N, C, H, W).

    Training mode (mu and var depend on x):
        dxhat = dy * gamma,   dbeta = sum(dy),   dgamma = sum(dy * xhat)
        dx = inv_std * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
           = gamma * inv_std * (dy - dbeta / M - xhat * dgamma / M)
    Evaluation mode (fixed statistics): dx = dy * gamma * inv_std.
    """
    return _backward("batch_norm2d", dy, cache)


def batch_norm_relu2d_forward(
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
    """``relu(batch_norm2d(x))`` in one op: the same arguments and running-stat updates.

    Returns y (N, C, H, W) and the cache for :func:`batch_norm_relu2d_backward`.
    """
    return _forward(
        "batch_norm_relu2d", x, gamma, beta, running_mean, running_var, training, momentum, eps,
        True,
    )  # fmt: skip


def batch_norm_relu2d_backward(
    dy: np.ndarray, cache: BatchNormCache
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients (dx, dgamma, dbeta) of ``relu(batch_norm2d(x))`` from dy (N, C, H, W).

    ReLU's backward first, ``g = dy * [gamma * xhat + beta > 0]`` (recomputed from the
    cached x, so no mask is stored), then batch norm's backward with g for dy.
    """
    return _backward("batch_norm_relu2d", dy, cache)
