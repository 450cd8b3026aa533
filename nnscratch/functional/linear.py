"""Fully connected layer: y = x @ w.T + b, with PyTorch's weight layout (out, in)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from nnscratch.functional._checks import (
    InputShapeError,
    check_float_array,
    check_same_dtype,
    require_cache,
)


class LinearCache(NamedTuple):
    """The input x (N, in_features) and weight w (out_features, in_features)."""

    x: np.ndarray
    w: np.ndarray
    has_bias: bool


def linear_forward(
    x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None
) -> tuple[np.ndarray, LinearCache]:
    """y (N, out_features) = x (N, in_features) @ w.T (in_features, out_features) + b."""
    op = "linear"
    check_float_array(op, "x", x, "N, in_features")
    check_float_array(op, "w", w, "out_features, in_features")
    if x.shape[1] != w.shape[1]:
        raise InputShapeError(
            f"{op}: expected x of shape (N, {w.shape[1]}) (in_features={w.shape[1]}), "
            f"got shape {x.shape}"
        )
    check_same_dtype(op, "x", {"x": x, "w": w, "b": b})
    y = x @ w.T
    if b is not None:
        y += b
    return y, LinearCache(x, w, b is not None)


def linear_backward(
    dy: np.ndarray, cache: LinearCache
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """dx = dy @ w, dw = dy.T @ x, db = sum of dy over the batch (None without bias)."""
    require_cache("linear", cache)
    x, w, has_bias = cache
    expected = (x.shape[0], w.shape[0])
    if dy.shape != expected:
        raise ValueError(f"linear backward: expected dy of shape {expected}, got {dy.shape}")
    dx = dy @ w
    dw = dy.T @ x
    db = dy.sum(axis=0) if has_bias else None
    return dx, dw, db
