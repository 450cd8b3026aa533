"""ReLU: y = max(x, 0), with the convention relu'(0) = 0 (as in PyTorch)."""

from __future__ import annotations

import numpy as np

from nnscratch.functional._checks import check_float_array, require_cache


def relu_forward(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """y = max(x, 0) for x of any shape; the cache is y itself (y > 0 exactly where x > 0)."""
    check_float_array("relu", "x", x)
    y = np.maximum(x, 0)
    return y, y


def relu_backward(dy: np.ndarray, cache: np.ndarray) -> np.ndarray:
    """dx = dy where the input was positive, else 0 (so relu'(0) = 0)."""
    require_cache("relu", cache)
    y = cache
    if dy.shape != y.shape:
        raise ValueError(f"relu backward: expected dy of shape {y.shape}, got {dy.shape}")
    return np.where(y > 0, dy, 0).astype(dy.dtype, copy=False)
