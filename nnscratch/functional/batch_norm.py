"""Batch normalisation over (N, H, W) for each channel, as in Ioffe & Szegedy (2015).

Training mode normalises with the statistics of the batch, over M = N*H*W values:

    mu = mean(x),   var = mean((x - mu)^2)                           (biased)
    xhat = (x - mu) * inv_std,   inv_std = 1 / sqrt(var + eps)
    y = gamma * xhat + beta

and moves the running statistics towards them (PyTorch's convention, momentum 0.1):

    running_mean <- (1 - momentum) * running_mean + momentum * mu
    running_var  <- (1 - momentum) * running_var  + momentum * var * M / (M - 1)   (unbiased)

Evaluation mode uses the running statistics instead, so y is an affine map of x.

Backward in training mode, where mu and var depend on every x of the channel:

    dbeta = sum(dy),   dgamma = sum(dy * xhat)
    dx = gamma * inv_std * (dy - dbeta / M - xhat * dgamma / M)

(the two subtracted terms are the paths through mu and through var). In evaluation
mode the statistics are constants and ``dx = gamma * inv_std * dy``.

This is the readable tier; ``nnscratch/functional/fast/batch_norm.py`` computes the same
with numba kernels that read x once per pass, on every core.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from nnscratch.functional._checks import (
    InputShapeError,
    check_float_array,
    check_same_dtype,
    check_upstream,
    require_cache,
)


class BatchNormCache(NamedTuple):
    """x (N, C, H, W); mean, inv_std, gamma (C,); whether batch statistics were used."""

    x: np.ndarray
    mean: np.ndarray
    inv_std: np.ndarray
    gamma: np.ndarray
    training: bool


def check_batch_norm_args(op, x, gamma, beta, running_mean, running_var, training) -> None:
    """x (N, C, H, W) against the (C,) parameters and statistics; a training batch needs M >= 2."""
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
    N, _, H, W = x.shape
    if training and N * H * W < 2:
        raise InputShapeError(
            f"{op}: training mode needs more than one value per channel, got x of shape "
            f"{x.shape}; use a batch of 2 or more, or eval mode"
        )


def update_running_stats(running_mean, running_var, mean, var, momentum, M) -> None:
    """Move the running statistics towards the batch's, in place (unbiased variance)."""
    running_mean *= 1 - momentum
    running_mean += momentum * mean.astype(running_mean.dtype)
    running_var *= 1 - momentum
    running_var += (momentum * M / (M - 1)) * var.astype(running_var.dtype)


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
    N, _, H, W = x.shape
    if training:
        mean = x.mean(axis=(0, 2, 3))  # (C,)
        var = x.var(axis=(0, 2, 3))  # (C,), biased: divided by M
        update_running_stats(running_mean, running_var, mean, var, momentum, N * H * W)
    else:
        mean = running_mean.astype(x.dtype)
        var = running_var.astype(x.dtype)
    inv_std = (1 / np.sqrt(var + eps)).astype(x.dtype)
    xhat = (x - mean[:, None, None]) * inv_std[:, None, None]  # (N, C, H, W)
    y = gamma[:, None, None] * xhat + beta[:, None, None]
    return y, BatchNormCache(np.ascontiguousarray(x), mean, inv_std, gamma, training)


def batch_norm2d_backward(
    dy: np.ndarray, cache: BatchNormCache
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients (dx, dgamma, dbeta) of batch norm from dy (N, C, H, W)."""
    require_cache("batch_norm2d", cache)
    x, mean, inv_std, gamma, training = cache
    check_upstream("batch_norm2d", dy, x.shape)
    N, _, H, W = x.shape
    M = N * H * W
    xhat = (x - mean[:, None, None]) * inv_std[:, None, None]  # recomputed, not cached
    dbeta = dy.sum(axis=(0, 2, 3))  # (C,)
    dgamma = (dy * xhat).sum(axis=(0, 2, 3))  # (C,)
    scale = (gamma * inv_std)[:, None, None]
    if training:
        dx = scale * (dy - dbeta[:, None, None] / M - xhat * dgamma[:, None, None] / M)
    else:
        dx = scale * dy
    return dx, dgamma, dbeta
