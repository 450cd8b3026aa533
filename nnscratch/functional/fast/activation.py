"""The fast ReLU: each direction is one numba pass over memory, on every core.

Same signatures and results as ``nnscratch/functional/activation.py``. NumPy's
``np.where`` would first build a boolean mask array, then the result.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from nnscratch.functional._checks import check_float_array, check_upstream, require_cache
from nnscratch.functional.fast.workers import map_shares


def _relu(x, y):
    """y = max(x, 0) for flat x, y."""
    zero = x.dtype.type(0)
    for k in range(x.size):
        y[k] = zero if x[k] < zero else x[k]  # NaN stays NaN, as with np.maximum


def _relu_backward(dy, y, dx):
    """dx = dy where y > 0, else 0, for flat dy, y, dx."""
    zero = dy.dtype.type(0)
    for k in range(dy.size):
        dx[k] = dy[k] if y[k] > zero else zero


# Released GIL: each core takes a share of the flat array (workers.map_shares).
relu_kernel = njit(cache=True, nogil=True)(_relu)
relu_backward_kernel = njit(cache=True, nogil=True)(_relu_backward)


def relu_forward(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """y = max(x, 0) for x of any shape; the cache is y itself (y > 0 exactly where x > 0)."""
    check_float_array("relu", "x", x)
    x = np.ascontiguousarray(x)
    y = np.empty_like(x)
    xf, yf = x.reshape(-1), y.reshape(-1)
    map_shares(lambda a, b: relu_kernel(xf[a:b], yf[a:b]), x.size, x.size)
    return y, y


def relu_backward(dy: np.ndarray, cache: np.ndarray) -> np.ndarray:
    """dx = dy where the input was positive, else 0 (so relu'(0) = 0)."""
    require_cache("relu", cache)
    y = cache
    check_upstream("relu", dy, y.shape)
    dyf = np.ascontiguousarray(dy).reshape(-1)
    yf = np.ascontiguousarray(y).reshape(-1)
    dx = np.empty_like(dy)
    dxf = dx.reshape(-1)
    map_shares(lambda a, b: relu_backward_kernel(dyf[a:b], yf[a:b], dxf[a:b]), dy.size, dy.size)
    return dx
