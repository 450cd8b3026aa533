"""2-D convolution (cross-correlation, as in PyTorch): im2col + one GEMM, and a naive twin.

Forward, for output channel o at output position (p, q):

    y[n, o, p, q] = b[o] + sum_{c, i, j} w[o, c, i, j] * x_pad[n, c, p*sh + i, q*sw + j]

im2col lays every receptive field out as a column, so the sum becomes one matrix
product ``Y = W2 @ cols`` with ``W2 = w.reshape(C_out, C_in*KH*KW)``. Backward is the
same product read the other way: ``dW2 = dY @ cols.T`` and ``dcols = W2.T @ dY``, and
col2im adds every column of ``dcols`` back onto the input pixels it was copied from.

Output size: ``H_out = (H + 2*ph - KH) // sh + 1`` (and likewise for W).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit, prange

from nnscratch.functional._checks import (
    InputShapeError,
    check_float_array,
    check_same_dtype,
    pair,
    require_cache,
)


def _im2col(x, KH, KW, sh, sw, ph, pw, H_out, W_out, cols):
    """Fill cols (C*KH*KW, N*H_out*W_out) from x (N, C, H, W); zero padding inside."""
    N, C, H, W = x.shape
    L = H_out * W_out
    for row in prange(C * KH * KW):
        c = row // (KH * KW)
        i = (row // KW) % KH
        j = row % KW
        for n in range(N):
            base = n * L
            for p in range(H_out):
                h = p * sh - ph + i
                out = base + p * W_out
                if h < 0 or h >= H:
                    for q in range(W_out):
                        cols[row, out + q] = 0
                    continue
                for q in range(W_out):
                    w = q * sw - pw + j
                    if 0 <= w < W:
                        cols[row, out + q] = x[n, c, h, w]
                    else:
                        cols[row, out + q] = 0


def _col2im(dcols, KH, KW, sh, sw, ph, pw, H_out, W_out, dx):
    """Add every entry of dcols (C*KH*KW, N*H_out*W_out) back onto dx (N, C, H, W)."""
    N, C, H, W = dx.shape
    L = H_out * W_out
    for c in prange(C):  # each channel owns its slice of dx: no write races
        for n in range(N):
            for h in range(H):
                for w in range(W):
                    dx[n, c, h, w] = 0
        for i in range(KH):
            for j in range(KW):
                row = (c * KH + i) * KW + j
                for n in range(N):
                    base = n * L
                    for p in range(H_out):
                        h = p * sh - ph + i
                        if h < 0 or h >= H:
                            continue
                        out = base + p * W_out
                        for q in range(W_out):
                            w = q * sw - pw + j
                            if 0 <= w < W:
                                dx[n, c, h, w] += dcols[row, out + q]


im2col_kernel = njit(cache=True, parallel=True)(_im2col)
col2im_kernel = njit(cache=True, parallel=True)(_col2im)


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
    """Receptive fields of x (N, C, H, W) as columns: (C*KH*KW, N*H_out*W_out)."""
    N, C = x.shape[:2]
    cols = np.empty((C * g.KH * g.KW, N * g.H_out * g.W_out), dtype=x.dtype)
    im2col_kernel(
        np.ascontiguousarray(x), g.KH, g.KW, g.sh, g.sw, g.ph, g.pw, g.H_out, g.W_out, cols
    )
    return cols


def col2im(dcols: np.ndarray, x_shape: tuple[int, ...], g: ConvGeometry) -> np.ndarray:
    """Sum columns (C*KH*KW, N*H_out*W_out) back into an image gradient (N, C, H, W)."""
    dx = np.empty(x_shape, dtype=dcols.dtype)
    col2im_kernel(dcols, g.KH, g.KW, g.sh, g.sw, g.ph, g.pw, g.H_out, g.W_out, dx)
    return dx


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
    cols = im2col(x, g)  # (C_in*KH*KW, N*H_out*W_out)
    y2 = w.reshape(C_out, -1) @ cols  # (C_out, N*H_out*W_out)
    if b is not None:
        y2 += b[:, None]
    y = np.ascontiguousarray(y2.reshape(C_out, N, g.H_out, g.W_out).transpose(1, 0, 2, 3))
    return y, Conv2dCache(x, w, b is not None, g)


def conv2d_backward(
    dy: np.ndarray, cache: Conv2dCache
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Gradients (dx, dw, db) of conv2d from dy (N, C_out, H_out, W_out); db is None without bias."""
    require_cache("conv2d", cache)
    x, w, has_bias, g = cache
    N, C_out = x.shape[0], w.shape[0]
    expected = (N, C_out, g.H_out, g.W_out)
    if dy.shape != expected:
        raise ValueError(f"conv2d backward: expected dy of shape {expected}, got {dy.shape}")
    dy2 = dy.transpose(1, 0, 2, 3).reshape(C_out, -1)  # (C_out, N*H_out*W_out), a copy
    cols = im2col(x, g)  # rebuilt rather than cached: bandwidth is cheaper than memory
    dw = (dy2 @ cols.T).reshape(w.shape)
    db = dy2.sum(axis=1) if has_bias else None
    dcols = w.reshape(C_out, -1).T @ dy2  # (C_in*KH*KW, N*H_out*W_out)
    dx = col2im(dcols, x.shape, g)
    return dx, dw, db


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
