"""Smooth, saturating activations: tanh and the logistic sigmoid.

They are the activations of the networks in which vanishing gradients were first
described (Hochreiter 1991; Glorot & Bengio 2010): both derivatives are at most 1
(tanh) or 1/4 (sigmoid) and go to 0 where the unit saturates. Each cache is the output
y, because both derivatives are functions of y alone:

    tanh'(x) = 1 - y^2                  sigmoid'(x) = y (1 - y)
"""

from __future__ import annotations

import numpy as np

from nnscratch.functional._checks import check_float_array, require_cache


def _check_dy(op: str, dy: np.ndarray, y: np.ndarray) -> None:
    check_float_array(op, "dy", dy)
    if dy.shape != y.shape:
        raise ValueError(f"{op} backward: expected dy of shape {y.shape}, got {dy.shape}")


def tanh_forward(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """y = tanh(x) elementwise for x of any shape; the cache is y."""
    check_float_array("tanh", "x", x)
    y = np.tanh(x)
    return y, y


def tanh_backward(dy: np.ndarray, cache: np.ndarray) -> np.ndarray:
    """dx = dy * (1 - y^2), same shape and dtype as dy."""
    require_cache("tanh", cache)
    y = cache
    _check_dy("tanh", dy, y)
    return dy * (1 - y * y)


def sigmoid_forward(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """y = 1 / (1 + exp(-x)) elementwise for x of any shape; the cache is y.

    Written as exp(-|x|) / (1 + exp(-|x|)) for x < 0 so that exp never overflows.
    """
    check_float_array("sigmoid", "x", x)
    z = np.exp(-np.abs(x))  # in (0, 1]: no overflow for any x
    y = np.where(x >= 0, 1 / (1 + z), z / (1 + z)).astype(x.dtype, copy=False)
    return y, y


def sigmoid_backward(dy: np.ndarray, cache: np.ndarray) -> np.ndarray:
    """dx = dy * y * (1 - y), same shape and dtype as dy."""
    require_cache("sigmoid", cache)
    y = cache
    _check_dy("sigmoid", dy, y)
    return dy * (y * (1 - y))
