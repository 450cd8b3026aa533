"""The fast conv2d: the readable op's im2col + GEMM, a few images at a time, on every core.

Same signatures and results as ``nnscratch/functional/conv.py`` (which explains the
math). What differs is how the work is laid out:

- The columns are built for a few images at a time (about ``scratch.CHUNK_BYTES``), not for the
  whole batch: for ResNet-18's first stage the whole-batch matrix would be 576 x 65536
  floats (151 MB, twice that with ``dcols``), more than all the activations PyTorch
  keeps. A chunk stays in the CPU caches between im2col, the GEMM and col2im, and its
  GEMM is still large enough (hundreds of columns or more) to run near the BLAS peak.
- Each core works through its own share of the batch (:mod:`.workers`), with a
  single-threaded GEMM; im2col and col2im are numba kernels that release the GIL.
- Scratch arrays are reused from call to call instead of being allocated anew.
- A 1x1 convolution with stride 1 and no padding needs no im2col at all: ``x[n]``
  viewed as (C_in, H*W) already is its column matrix.
- The 3x3, stride-1 layers use Winograd F(2x2, 3x3) (:mod:`.winograd`): 2.25x fewer
  multiplications; :func:`conv_path` says which layers.
"""

from __future__ import annotations

import os

import numpy as np

from nnscratch.functional._checks import check_same_dtype, check_upstream, require_cache
from nnscratch.functional.conv import Conv2dCache, ConvGeometry, conv_geometry
from nnscratch.functional.fast import winograd
from nnscratch.functional.fast.im2col import col2im_kernel, im2col_kernel
from nnscratch.functional.fast.scratch import image_chunks, scratch
from nnscratch.functional.fast.workers import map_shares

# Where Winograd measures faster than im2col (docs/benchmarks.md; batches of 64-128, 2
# cores): on planes from 8 x 8 with 8 or more input channels (0.3-0.9 of im2col's time,
# 8 to 256 channels), and on smaller planes from 128 channels. Slower: 3 or 4 input
# channels (a stem's: 1.3-1.6x in the backward pass), 16-64 channels on planes of 4 x 4
# or less, where the transforms and the per-call costs outweigh the products saved.
WINOGRAD_MIN_IN_CHANNELS = 8
WINOGRAD_MIN_SIDE = 8
WINOGRAD_MIN_CHANNELS_SMALL_PLANE = 128


def winograd_enabled() -> bool:
    """False when ``NNSCRATCH_WINOGRAD=0``: every convolution then takes im2col (to compare)."""
    value = os.environ.get("NNSCRATCH_WINOGRAD", "1").strip()
    if value not in ("0", "1"):
        raise ValueError(f"NNSCRATCH_WINOGRAD must be 0 or 1, got {value!r}")
    return value == "1"


def conv_path(x_shape: tuple[int, ...], w_shape: tuple[int, ...], g: ConvGeometry) -> str:
    """Which algorithm computes this convolution: "winograd", "pointwise" or "im2col".

    Winograd F(2x2, 3x3) for the 3x3, stride-1, padding-1 layers where it measures
    faster (the constants above), never when the output is one pixel high or wide (a 2x2
    tile would compute four times what is kept); a 1x1 stride-1 layer needs no columns;
    im2col for the rest.
    """
    side = min(g.H_out, g.W_out)
    large_plane = x_shape[1] >= WINOGRAD_MIN_IN_CHANNELS and side >= WINOGRAD_MIN_SIDE
    wide = min(x_shape[1], w_shape[0]) >= WINOGRAD_MIN_CHANNELS_SMALL_PLANE and side >= 2
    if winograd_enabled() and winograd.applies(g) and (large_plane or wide):
        return "winograd"
    return "pointwise" if g.pointwise else "im2col"


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
    x = np.ascontiguousarray(x)
    y = convolve(x, w, g)
    if b is not None:
        y += b[:, None, None]
    return y, Conv2dCache(x, w, b is not None, g)


def convolve(
    x: np.ndarray, w: np.ndarray, g: ConvGeometry, finish: winograd.Finish | None = None
) -> np.ndarray:
    """y (N, C_out, H_out, W_out) of a contiguous x by the path :func:`conv_path` picks;
    ``finish(y, n0, n1, c0, c1)``, if given, runs on each block of y as it is completed."""
    if conv_path(x.shape, w.shape, g) == "winograd":
        return winograd.winograd_forward(x, w, finish)
    return _gemm_forward(x, w, g, finish)


def _gemm_forward(
    x: np.ndarray, w: np.ndarray, g: ConvGeometry, finish: winograd.Finish | None
) -> np.ndarray:
    """y (N, C_out, H_out, W_out) by im2col + GEMM, per chunk of nb images:
    ``Y = W2 @ cols``, (C_out, nb*L) -> y[n0:n1] (nb, C_out, L); then ``finish`` on it."""
    N, C_in = x.shape[:2]
    C_out, L = w.shape[0], g.H_out * g.W_out
    w2 = w.reshape(C_out, -1)  # (C_out, K), K = C_in*KH*KW
    y = np.empty((N, C_out, g.H_out, g.W_out), dtype=x.dtype)
    y3 = y.reshape(N, C_out, L)
    K = w2.shape[1]

    def share(n0: int, n1: int) -> None:  # y[n0:n1], on one core
        if g.pointwise:  # one GEMM per image, straight into NCHW
            for a, z in image_chunks(n0, n1, C_in + C_out, L, x.itemsize):
                np.matmul(w2, x[a:z].reshape(z - a, C_in, L), out=y3[a:z])
                if finish is not None:
                    finish(y, a, z, 0, C_out)
            return
        for a, z in image_chunks(n0, n1, K, L, x.itemsize):
            cols = scratch("cols", (K, (z - a) * L), x.dtype)
            im2col_kernel(x, a, *g, cols)
            if z - a == 1:
                np.matmul(w2, cols, out=y3[a])
            else:  # (C_out, nb*L) -> (nb, C_out, L): a copy of the chunk, in cache
                y_chunk = np.matmul(w2, cols, out=scratch("gemm", (C_out, (z - a) * L), x.dtype))
                y3[a:z] = y_chunk.reshape(C_out, z - a, L).transpose(1, 0, 2)
            if finish is not None:
                finish(y, a, z, 0, C_out)

    map_shares(share, N, size=x.size * g.KH * g.KW + y.size)
    return y


def conv2d_backward(
    dy: np.ndarray, cache: Conv2dCache
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Gradients (dx, dw, db) of conv2d from dy (N, C_out, H_out, W_out); db is None without bias."""
    require_cache("conv2d", cache)
    x, w, has_bias, g = cache
    N, C_out = x.shape[0], w.shape[0]
    check_upstream("conv2d", dy, (N, C_out, g.H_out, g.W_out))
    dy = np.ascontiguousarray(dy)
    db = dy.sum(axis=(0, 2, 3)) if has_bias else None
    if conv_path(x.shape, w.shape, g) == "winograd":
        dx, dw = winograd.winograd_backward(dy, x, w)
    else:
        dx, dw = _gemm_backward(dy, x, w, g)
    return dx, dw, db


def _gemm_backward(
    dy: np.ndarray, x: np.ndarray, w: np.ndarray, g: ConvGeometry
) -> tuple[np.ndarray, np.ndarray]:
    """(dx, dw) by im2col + GEMM. Per chunk of nb images, with dY the chunk of dy as
    (C_out, nb*L):
        dW2 += dY @ cols.T              (C_out, K)
        dx[n0:n1] = col2im(W2.T @ dY)   (K, nb*L) -> (nb, C_in, H, W)
    """
    N, C_in = x.shape[:2]
    C_out, L = w.shape[0], g.H_out * g.W_out
    dy3 = dy.reshape(N, C_out, L)
    w2 = w.reshape(C_out, -1)  # (C_out, K)
    K = w2.shape[1]
    dx = np.empty(x.shape, dtype=x.dtype)

    def share(n0: int, n1: int) -> np.ndarray:  # dx[n0:n1] and this share's part of dW2
        if g.pointwise:
            x3, d3 = x[n0:n1].reshape(n1 - n0, C_in, L), dy3[n0:n1]
            np.matmul(w2.T, d3, out=dx[n0:n1].reshape(n1 - n0, C_in, L))  # already NCHW
            return np.tensordot(d3, x3, axes=([0, 2], [0, 2]))  # sum_n dy[n] @ x[n].T
        dw2 = np.empty((C_out, K), dtype=x.dtype)
        for a, z in image_chunks(n0, n1, K, L, x.itemsize):
            cols = scratch("cols", (K, (z - a) * L), x.dtype)
            im2col_kernel(x, a, *g, cols)  # rebuilt, not cached: memory is the scarcer
            if z - a == 1:
                dy_chunk = dy3[a]
            else:  # (nb, C_out, L) -> (C_out, nb*L)
                dy_chunk = scratch("dy", (C_out, (z - a) * L), x.dtype)
                dy_chunk.reshape(C_out, z - a, L)[...] = dy3[a:z].transpose(1, 0, 2)
            if a == n0:
                np.matmul(dy_chunk, cols.T, out=dw2)
            else:  # NumPy's GEMM cannot accumulate into its output: add a scratch product
                dw2 += np.matmul(dy_chunk, cols.T, out=scratch("dw", (C_out, K), x.dtype))
            dcols = np.matmul(w2.T, dy_chunk, out=scratch("gemm", (K, (z - a) * L), x.dtype))
            col2im_kernel(dcols, a, *g, dx)
        return dw2

    dw2, *others = map_shares(share, N, size=x.size * g.KH * g.KW + dy3.size)
    for part in others:
        dw2 += part
    return dx, dw2.reshape(w.shape)
