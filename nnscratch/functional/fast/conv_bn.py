"""The fast conv2d -> batch norm -> [+ plus] -> [ReLU] of inference (the readable op in
``nnscratch/functional/conv_bn.py`` explains the math).

The convolution runs as in :mod:`.conv`; each block of its output is finished (scale,
shift, sum, ReLU) by one numba pass while it is still in the cache of the core that
wrote it. Unfused, batch norm, the residual sum and the ReLU each read and write the
whole output once more. The finishing pass computes what the three fast ops compute, in
the same order, so the results are equal bit for bit.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from nnscratch.functional.conv_bn import check_conv_bn_args
from nnscratch.functional.fast.batch_norm import affine_coefficients
from nnscratch.functional.fast.conv import convolve


def _finish(y, n0, n1, c0, c1, scale, shift, plus, floor):
    """y[n, c] = max(y[n, c] * scale[c] + shift[c] + plus[n, c], floor) for n in n0 .. n1-1,
    c in c0 .. c1-1, in place; y, plus (N, C, L). plus may be None; floor is 0 for a ReLU,
    -inf for none (NaN stays NaN either way)."""
    L = y.shape[2]
    for n in range(n0, n1):
        for c in range(c0, c1):
            a = scale[c]
            b = shift[c]
            for k in range(L):
                v = y[n, c, k] * a + b
                if plus is not None:
                    v = v + plus[n, c, k]
                y[n, c, k] = floor if v < floor else v


finish_kernel = njit(cache=True, nogil=True)(_finish)


def conv2d_bn_inference(
    x: np.ndarray,
    w: np.ndarray,
    gamma: np.ndarray,
    beta: np.ndarray,
    running_mean: np.ndarray,
    running_var: np.ndarray,
    *,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
    eps: float = 1e-5,
    plus: np.ndarray | None = None,
    relu: bool = False,
) -> np.ndarray:
    """y = relu(batch_norm(conv2d(x, w)) + plus) with batch norm's running statistics; the
    ReLU (``relu``) and the sum (``plus``) are optional."""
    g = check_conv_bn_args(x, w, gamma, beta, running_mean, running_var, plus, stride, padding)
    N, C_out = x.shape[0], w.shape[0]
    dtype = x.dtype
    _, scale, shift = affine_coefficients(
        running_mean.astype(dtype), running_var.astype(dtype), gamma, beta, eps
    )
    plus3 = None if plus is None else np.ascontiguousarray(plus).reshape(N, C_out, -1)
    floor = dtype.type(0 if relu else -np.inf)

    def finish(y: np.ndarray, n0: int, n1: int, c0: int, c1: int) -> None:
        finish_kernel(y.reshape(N, C_out, -1), n0, n1, c0, c1, scale, shift, plus3, floor)

    return convolve(np.ascontiguousarray(x), w, g, finish)
