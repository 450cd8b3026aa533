"""ReLU: y = max(x, 0), with the convention relu'(0) = 0 (as in PyTorch).

    forward:   y = max(x, 0)
    backward:  dx = dy where x > 0, else 0

The cache is y itself: y > 0 exactly where x > 0, so no mask needs to be kept. This is
the readable tier; ``nnscratch/functional/fast/activation.py`` makes each direction one
numba pass over memory on every core.
"""

from __future__ import annotations

import numpy as np

from nnscratch.functional._checks import check_float_array, check_upstream, require_cache


def relu_forward(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """y = max(x, 0) for x of any shape (NaN stays NaN); the cache is y."""
    check_float_array("relu", "x", x)
    y = np.maximum(x, 0)
    return y, y


def relu_backward(dy: np.ndarray, cache: np.ndarray) -> np.ndarray:
    """dx = dy where the input was positive, else 0 (so relu'(0) = 0)."""
    require_cache("relu", cache)
    y = cache
    check_upstream("relu", dy, y.shape)
    return np.where(y > 0, dy, 0)
