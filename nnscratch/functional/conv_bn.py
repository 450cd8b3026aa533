"""Inference's convolution -> batch norm -> [+ shortcut] -> [ReLU], as one op.

In eval mode batch norm uses its running statistics, so it is an affine map per channel:

    y = relu( conv2d(x, w) * scale + shift + plus )
    scale = gamma / sqrt(running_var + eps),   shift = beta - running_mean * scale

x (N, C_in, H, W), w (C_out, C_in, KH, KW), gamma, beta and the statistics (C_out,), plus
(the shortcut of a residual block, optional) and y (N, C_out, H_out, W_out). Nothing is
kept for a backward pass: the op is for inference (``no_grad()``) only.

This readable version is the composition of the three ops. The fast tier applies the
scale, the shift, the sum and the ReLU to each block of the convolution's output while it
is still in the cache, instead of in passes over memory of their own, with the same
numbers.
"""

from __future__ import annotations

import numpy as np

from nnscratch.functional._checks import (
    InputShapeError,
    check_float_array,
    check_same_dtype,
)
from nnscratch.functional.activation import relu_forward
from nnscratch.functional.batch_norm import batch_norm2d_forward
from nnscratch.functional.conv import ConvGeometry, conv2d_forward, conv_geometry

OP = "conv2d_bn_inference"


def check_conv_bn_args(x, w, gamma, beta, running_mean, running_var, plus, stride, padding):
    """The convolution's arguments, batch norm's (C_out,) arrays and plus against the
    output's shape; returns the convolution's geometry."""
    g = conv_geometry(OP, x, w, stride, padding)
    C_out = w.shape[0]
    named = {"gamma": gamma, "beta": beta, "running_mean": running_mean, "running_var": running_var}
    for name, v in named.items():
        check_float_array(OP, name, v)
        if v.shape != (C_out,):
            raise InputShapeError(f"{OP}: expected {name} of shape ({C_out},), got {v.shape}")
    if plus is not None:
        check_float_array(OP, "plus", plus)
        shape = (x.shape[0], C_out, g.H_out, g.W_out)
        if plus.shape != shape:
            raise InputShapeError(
                f"{OP}: expected plus of the output's shape {shape}, got {plus.shape}"
            )
    check_same_dtype(OP, "x", {"x": x, "w": w, "gamma": gamma, "beta": beta, "plus": plus})
    return g


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
    g: ConvGeometry = check_conv_bn_args(
        x, w, gamma, beta, running_mean, running_var, plus, stride, padding
    )
    y, _ = conv2d_forward(x, w, stride=(g.sh, g.sw), padding=(g.ph, g.pw))
    y, _ = batch_norm2d_forward(y, gamma, beta, running_mean, running_var, training=False, eps=eps)
    if plus is not None:
        y = y + plus
    if relu:
        y, _ = relu_forward(y)
    return y
