"""Losses on logits: softmax cross-entropy and binary cross-entropy with logits.

Both average over the batch and take the upstream gradient ``dloss`` in backward, so
they can be scaled or sit inside a larger graph like any other op.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from nnscratch.functional._checks import (
    InputDtypeError,
    InputShapeError,
    check_float_array,
    require_cache,
)


class CrossEntropyCache(NamedTuple):
    """Softmax probabilities (N, K) and the target distribution q (N, K)."""

    probs: np.ndarray
    q: np.ndarray


def _class_targets(op: str, targets: object, N: int, K: int) -> np.ndarray:
    """Validate integer class indices (N,) in [0, K)."""
    targets = np.asarray(targets)
    if targets.dtype.kind not in "iu":
        raise InputDtypeError(f"{op}: expected integer class indices, got dtype {targets.dtype}")
    if targets.shape != (N,):
        raise InputShapeError(f"{op}: expected targets of shape ({N},), got {targets.shape}")
    if N and (targets.min() < 0 or targets.max() >= K):
        raise InputShapeError(
            f"{op}: class indices must lie in [0, {K}), got values from "
            f"{targets.min()} to {targets.max()}"
        )
    return targets


def cross_entropy_forward(
    logits: np.ndarray, targets: np.ndarray, label_smoothing: float = 0.0
) -> tuple[float, CrossEntropyCache]:
    """Mean softmax cross-entropy of logits (N, K) against class indices (N,).

    log p = z - logsumexp(z)         (stable: subtract max(z) first)
    q = (1 - eps) * onehot(t) + eps / K
    loss = -(1/N) * sum_n sum_k q[n, k] * log p[n, k]
    """
    op = "cross_entropy"
    check_float_array(op, "logits", logits, "N, K")
    N, K = logits.shape
    if N == 0:
        raise InputShapeError(f"{op}: empty batch, logits of shape {logits.shape}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{op}: label_smoothing must lie in [0, 1], got {label_smoothing}")
    targets = _class_targets(op, targets, N, K)
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    q = np.full_like(logits, label_smoothing / K)
    q[np.arange(N), targets] += 1.0 - label_smoothing
    loss = -float(np.sum(q * log_probs)) / N
    return loss, CrossEntropyCache(np.exp(log_probs), q)


def cross_entropy_backward(dloss: float, cache: CrossEntropyCache) -> np.ndarray:
    """dlogits (N, K) = dloss * (softmax(z) - q) / N."""
    require_cache("cross_entropy", cache)
    probs, q = cache
    return (probs - q) * (float(dloss) / probs.shape[0])


class BCEWithLogitsCache(NamedTuple):
    """sigmoid(z) and the targets t, both of the logits' shape."""

    probs: np.ndarray
    targets: np.ndarray


def bce_with_logits_forward(
    logits: np.ndarray, targets: np.ndarray
) -> tuple[float, BCEWithLogitsCache]:
    """Mean binary cross-entropy of logits z against targets t in [0, 1] (same shape).

        loss = mean( max(z, 0) - z * t + log(1 + exp(-|z|)) )
    which equals -mean(t log sigmoid(z) + (1 - t) log(1 - sigmoid(z))) without overflow.
    """
    op = "bce_with_logits"
    check_float_array(op, "logits", logits)
    targets = np.asarray(targets)
    if targets.shape != logits.shape:
        raise InputShapeError(
            f"{op}: expected targets of shape {logits.shape}, got {targets.shape}"
        )
    if logits.size == 0:
        raise InputShapeError(f"{op}: empty batch, logits of shape {logits.shape}")
    if targets.dtype.kind not in "biuf" or np.any((targets < 0) | (targets > 1)):
        raise InputShapeError(f"{op}: targets must be numbers in [0, 1]")
    t = targets.astype(logits.dtype)
    loss = float(np.mean(np.maximum(logits, 0) - logits * t + np.log1p(np.exp(-np.abs(logits)))))
    probs = np.exp(-np.logaddexp(0, -logits)).astype(logits.dtype)  # stable sigmoid
    return loss, BCEWithLogitsCache(probs, t)


def bce_with_logits_backward(dloss: float, cache: BCEWithLogitsCache) -> np.ndarray:
    """dlogits = dloss * (sigmoid(z) - t) / (number of elements)."""
    require_cache("bce_with_logits", cache)
    probs, t = cache
    return (probs - t) * (float(dloss) / probs.size)
