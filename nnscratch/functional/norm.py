"""Batch normalisation over (N, H, W) for each channel, as in Ioffe & Szegedy (2015).

Training mode normalises with the statistics of the batch:

    mu = mean(x),  var = mean((x - mu)^2)          (biased, over M = N*H*W values)
    xhat = (x - mu) / sqrt(var + eps),   y = gamma * xhat + beta

and moves the running statistics towards them (PyTorch's convention, momentum 0.1):

    running_mean <- (1 - momentum) * running_mean + momentum * mu
    running_var  <- (1 - momentum) * running_var  + momentum * var * M / (M - 1)   (unbiased)

Evaluation mode uses the running statistics instead, so y is an affine map of x.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from nnscratch.functional._checks import (
    InputShapeError,
    check_float_array,
    check_same_dtype,
    require_cache,
)


class BatchNormCache(NamedTuple):
    """xhat (N, C, H, W), gamma (C,), inv_std (C,), and whether batch statistics were used."""

    xhat: np.ndarray
    gamma: np.ndarray
    inv_std: np.ndarray
    training: bool


def _per_channel(v: np.ndarray) -> np.ndarray:
    """View a (C,) vector as (1, C, 1, 1) so it broadcasts over N, H, W."""
    return v.reshape(1, -1, 1, 1)


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
    op = "batch_norm2d"
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
    if training:
        M = x.shape[0] * x.shape[2] * x.shape[3]
        if M < 2:
            raise InputShapeError(
                f"{op}: training mode needs more than one value per channel, got x of shape "
                f"{x.shape}; use a batch of 2 or more, or eval mode"
            )
        mu = x.mean(axis=(0, 2, 3))
        xc = x - _per_channel(mu)
        var = np.mean(xc * xc, axis=(0, 2, 3))
        running_mean *= 1 - momentum
        running_mean += momentum * mu.astype(running_mean.dtype)
        running_var *= 1 - momentum
        running_var += (momentum * M / (M - 1)) * var.astype(running_var.dtype)
    else:
        xc = x - _per_channel(running_mean.astype(x.dtype))
        var = running_var.astype(x.dtype)
    inv_std = (1 / np.sqrt(var + eps)).astype(x.dtype)
    xhat = xc * _per_channel(inv_std)
    y = xhat * _per_channel(gamma) + _per_channel(beta)
    return y, BatchNormCache(xhat, gamma, inv_std, training)


def batch_norm2d_backward(
    dy: np.ndarray, cache: BatchNormCache
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients (dx, dgamma, dbeta) of batch norm from dy (N, C, H, W).

    Training mode (mu and var depend on x):
        dxhat = dy * gamma
        dx = inv_std * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
    Evaluation mode (fixed statistics): dx = dy * gamma * inv_std.
    """
    require_cache("batch_norm2d", cache)
    xhat, gamma, inv_std, training = cache
    if dy.shape != xhat.shape:
        raise ValueError(
            f"batch_norm2d backward: expected dy of shape {xhat.shape}, got {dy.shape}"
        )
    dbeta = dy.sum(axis=(0, 2, 3))
    dgamma = np.sum(dy * xhat, axis=(0, 2, 3))
    scale = _per_channel(gamma * inv_std)
    if not training:
        return dy * scale, dgamma, dbeta
    M = xhat.shape[0] * xhat.shape[2] * xhat.shape[3]
    # mean(dxhat) = gamma * dbeta / M and mean(dxhat * xhat) = gamma * dgamma / M
    dx = scale * (dy - _per_channel(dbeta / M) - xhat * _per_channel(dgamma / M))
    return dx, dgamma, dbeta
