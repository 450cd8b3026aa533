"""2-D convolution (cross-correlation, as in PyTorch) as im2col and one matrix product.

Forward, for output channel o at output position (p, q):

    y[n, o, p, q] = b[o] + sum_{c, i, j} w[o, c, i, j] * x_pad[n, c, p*sh + i, q*sw + j]

im2col copies every receptive field into a column, so the triple sum becomes one matrix
product ``Y = W2 @ cols`` with ``W2 = w.reshape(C_out, C_in*KH*KW)``. Backward is the
same product read the other way:

    dW2 = dY @ cols.T            dcols = W2.T @ dY            db = sum of dY over columns

and col2im, the exact transpose of im2col, adds every column of ``dcols`` back onto the
input pixels it was copied from (a pixel in several windows collects several terms).

Output size: ``H_out = (H + 2*ph - KH) // sh + 1`` (and likewise for W).

This is the readable tier; ``nnscratch/functional/fast/conv.py`` computes the same with
numba kernels, a few images at a time, on every core. ``conv2d_naive_*`` at the bottom
are the four-loop twins that both are tested against.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from nnscratch.functional._checks import (
    InputShapeError,
    check_float_array,
    check_same_dtype,
    check_upstream,
    pair,
    require_cache,
)


class ConvGeometry(NamedTuple):
    """Sizes that fix a convolution: kernel, stride, padding and the output size."""

    KH: int
    KW: int
    sh: int
    sw: int
    ph: int
    pw: int
    H_out: int
    W_out: int

    @property
    def pointwise(self) -> bool:
        """A 1x1 kernel with stride 1 and no padding: x[n] is its own column matrix."""
        return self[:6] == (1, 1, 1, 1, 0, 0)


class Conv2dCache(NamedTuple):
    """What conv2d_backward needs: the input (cols are rebuilt from it), weight, geometry."""

    x: np.ndarray
    w: np.ndarray
    has_bias: bool
    geom: ConvGeometry


def conv_geometry(
    op: str,
    x: np.ndarray,
    w: np.ndarray,
    stride: int | tuple[int, int],
    padding: int | tuple[int, int],
) -> ConvGeometry:
    """Validate x (N, C_in, H, W) against w (C_out, C_in, KH, KW) and compute the output size."""
    check_float_array(op, "x", x, "N, C_in, H, W")
    check_float_array(op, "w", w, "C_out, C_in, KH, KW")
    if x.shape[1] != w.shape[1]:
        raise InputShapeError(
            f"{op}: expected x with C_in={w.shape[1]} channels, shape "
            f"(N, {w.shape[1]}, H, W), got shape {x.shape}"
        )
    sh, sw = pair(op, "stride", stride, 1)
    ph, pw = pair(op, "padding", padding, 0)
    _, _, H, W = x.shape
    KH, KW = w.shape[2:]
    H_out = (H + 2 * ph - KH) // sh + 1
    W_out = (W + 2 * pw - KW) // sw + 1
    if H_out < 1 or W_out < 1:
        raise InputShapeError(
            f"{op}: input of size {H}x{W} with padding {(ph, pw)} is smaller than the "
            f"kernel {KH}x{KW}"
        )
    return ConvGeometry(KH, KW, sh, sw, ph, pw, H_out, W_out)


def im2col(x: np.ndarray, g: ConvGeometry) -> np.ndarray:
    """Receptive fields of x (N, C, H, W) as columns: (C*KH*KW, N*H_out*W_out).

    ``cols[(c*KH + i)*KW + j, (n*H_out + p)*W_out + q] = x_pad[n, c, p*sh + i, q*sw + j]``
    """
    N, C = x.shape[:2]
    x_pad = np.pad(x, ((0, 0), (0, 0), (g.ph, g.ph), (g.pw, g.pw)))
    windows = sliding_window_view(x_pad, (g.KH, g.KW), axis=(2, 3))  # every window, stride 1
    windows = windows[:, :, :: g.sh, :: g.sw]  # (N, C, H_out, W_out, KH, KW)
    return windows.transpose(1, 4, 5, 0, 2, 3).reshape(C * g.KH * g.KW, N * g.H_out * g.W_out)


def col2im(dcols: np.ndarray, x_shape: tuple[int, ...], g: ConvGeometry) -> np.ndarray:
    """Sum columns (C*KH*KW, N*H_out*W_out) back into an image gradient (N, C, H, W).

    The transpose of :func:`im2col`: for each kernel offset (i, j), the rows it filled
    are added back onto the pixels they were copied from; what fell on the zero
    padding is dropped.
    """
    N, C, H, W = x_shape
    d = dcols.reshape(C, g.KH, g.KW, N, g.H_out, g.W_out)
    dx_pad = np.zeros((N, C, H + 2 * g.ph, W + 2 * g.pw), dtype=dcols.dtype)
    for i in range(g.KH):
        for j in range(g.KW):
            rows = slice(i, i + g.sh * g.H_out, g.sh)
            cols = slice(j, j + g.sw * g.W_out, g.sw)
            dx_pad[:, :, rows, cols] += d[:, i, j].transpose(1, 0, 2, 3)  # (N, C, H_out, W_out)
    return dx_pad[:, :, g.ph : g.ph + H, g.pw : g.pw + W].copy()


def conv2d_forward(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None = None,
    *,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
) -> tuple[np.ndarray, Conv2dCache]:
    """Convolve x (N, C_in, H, W) with w (C_out, C_in, KH, KW) [+ b (C_out,)].

    Returns y (N, C_out, H_out, W_out) and the cache for :func:`conv2d_backward`.
    """
    g = conv_geometry("conv2d", x, w, stride, padding)
    check_same_dtype("conv2d", "x", {"x": x, "w": w, "b": b})
    N, C_out = x.shape[0], w.shape[0]
    cols = im2col(x, g)  # (K, N*L), K = C_in*KH*KW, L = H_out*W_out
    y = w.reshape(C_out, -1) @ cols  # (C_out, N*L)
    if b is not None:
        y += b[:, None]
    y = y.reshape(C_out, N, g.H_out, g.W_out).transpose(1, 0, 2, 3)  # (N, C_out, H_out, W_out)
    return np.ascontiguousarray(y), Conv2dCache(np.ascontiguousarray(x), w, b is not None, g)


def conv2d_backward(
    dy: np.ndarray, cache: Conv2dCache
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Gradients (dx, dw, db) of conv2d from dy (N, C_out, H_out, W_out); db is None without bias."""
    require_cache("conv2d", cache)
    x, w, has_bias, g = cache
    N, C_out = x.shape[0], w.shape[0]
    check_upstream("conv2d", dy, (N, C_out, g.H_out, g.W_out))
    dY = dy.transpose(1, 0, 2, 3).reshape(C_out, -1)  # (C_out, N*L), columns as im2col's
    cols = im2col(x, g)  # rebuilt rather than cached: memory is the scarcer resource
    dw = (dY @ cols.T).reshape(w.shape)  # (C_out, K) -> (C_out, C_in, KH, KW)
    dcols = w.reshape(C_out, -1).T @ dY  # (K, N*L)
    dx = col2im(dcols, x.shape, g)  # (N, C_in, H, W)
    db = dy.sum(axis=(0, 2, 3)) if has_bias else None
    return dx, dw, db


# ----------------------------------------------------------------------- the loop twins
def conv2d_naive_forward(
    x: np.ndarray,
    w: np.ndarray,
    b: np.ndarray | None = None,
    *,
    stride: int | tuple[int, int] = 1,
    padding: int | tuple[int, int] = 0,
) -> tuple[np.ndarray, Conv2dCache]:
    """Loop-by-loop reference for :func:`conv2d_forward` (same arguments, same results)."""
    g = conv_geometry("conv2d_naive", x, w, stride, padding)
    N, C_out = x.shape[0], w.shape[0]
    x_pad = np.pad(x, ((0, 0), (0, 0), (g.ph, g.ph), (g.pw, g.pw)))
    y = np.zeros((N, C_out, g.H_out, g.W_out), dtype=x.dtype)
    for n in range(N):
        for o in range(C_out):
            for p in range(g.H_out):
                for q in range(g.W_out):
                    h, v = p * g.sh, q * g.sw
                    window = x_pad[n, :, h : h + g.KH, v : v + g.KW]
                    y[n, o, p, q] = np.sum(window * w[o]) + (b[o] if b is not None else 0)
    return y, Conv2dCache(x, w, b is not None, g)


def conv2d_naive_backward(
    dy: np.ndarray, cache: Conv2dCache
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Loop-by-loop reference for :func:`conv2d_backward`: each output adds its share back."""
    require_cache("conv2d_naive", cache)
    x, w, has_bias, g = cache
    N, C_out = dy.shape[:2]
    x_pad = np.pad(x, ((0, 0), (0, 0), (g.ph, g.ph), (g.pw, g.pw)))
    dx_pad = np.zeros_like(x_pad)
    dw = np.zeros_like(w)
    for n in range(N):
        for o in range(C_out):
            for p in range(g.H_out):
                for q in range(g.W_out):
                    h, v = p * g.sh, q * g.sw
                    dx_pad[n, :, h : h + g.KH, v : v + g.KW] += w[o] * dy[n, o, p, q]
                    dw[o] += x_pad[n, :, h : h + g.KH, v : v + g.KW] * dy[n, o, p, q]
    H, W = x.shape[2:]
    dx = dx_pad[:, :, g.ph : g.ph + H, g.pw : g.pw + W]
    db = dy.sum(axis=(0, 2, 3)) if has_bias else None
    return np.ascontiguousarray(dx), dw, db
