"""The fast conv2d: the readable op's im2col + GEMM, a few images at a time, on every core.

Same signatures and results as ``nnscratch/functional/conv.py`` (which explains the
math). What differs is how the work is laid out:

- The columns are built for a few images at a time (about ``CHUNK_BYTES``), not for the
  whole batch: for ResNet-18's first stage the whole-batch matrix would be 576 x 65536
  floats (151 MB, twice that with ``dcols``), more than all the activations PyTorch
  keeps. A chunk stays in the CPU caches between im2col, the GEMM and col2im, and its
  GEMM is still large enough (hundreds of columns or more) to run near the BLAS peak.
- Each core works through its own share of the batch (:mod:`.workers`), with a
  single-threaded GEMM; im2col and col2im are numba kernels that release the GIL.
- Scratch arrays are reused from call to call instead of being allocated anew.
- A 1x1 convolution with stride 1 and no padding needs no im2col at all: ``x[n]``
  viewed as (C_in, H*W) already is its column matrix.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np
from numba import njit

from nnscratch.functional._checks import check_same_dtype, check_upstream, require_cache
from nnscratch.functional.conv import Conv2dCache, conv_geometry
from nnscratch.functional.fast.workers import map_shares

# Bytes of im2col columns built at once, per worker thread: about one core's L2 cache,
# still GEMMs of hundreds to thousands of columns. (With both cores at work, 16 MB chunks
# spilled out of the shared L3 and made ResNet-18's first-stage convolutions 15-30% slower.)
CHUNK_BYTES = 2 << 20


def _tile_shape(H, W, KH, KW, sh, sw, ph, pw, H_out, W_out):
    """Size of a zero-bordered copy of one input plane that every window fits into."""
    return max(H + 2 * ph, (H_out - 1) * sh + KH), max(W + 2 * pw, (W_out - 1) * sw + KW)


# The two kernels below work plane by plane: x[n, c] (or dx[n, c]) lives in a small
# zero-bordered "tile" of shape (Hp, Wp), flattened, so the KH*KW shifted copies need
# no bounds checks. Their indices are unsigned (np.uint64) and index the arrays
# directly rather than through row views: numba then skips its negative-index
# wrap-around, so LLVM vectorises the copy loops, and no view is built per row (both
# matter: 2-4x on small planes such as 4x4).
#
# They run on the calling thread (no ``parallel=True``) and release the GIL: the
# parallelism is one share of the batch per core (see ``workers.py``), each share
# running im2col, a single-threaded GEMM and col2im on its own images.
def _im2col(x, n0, KH, KW, sh, sw, ph, pw, H_out, W_out, cols):
    """Fill cols (C*KH*KW, nb*H_out*W_out) from the images n0 .. n0+nb-1 of x (N, C, H, W).

    ``cols[(c*KH + i)*KW + j, k*L + p*W_out + q] = x_pad[n0+k, c, p*sh + i, q*sw + j]``:
    column ``k*L + p*W_out + q`` is the receptive field of output (n0+k, :, p, q).
    """
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    L = H_out * W_out
    nb = cols.shape[1] // L
    Hp, Wp = _tile_shape(H, W, KH, KW, sh, sw, ph, pw, H_out, W_out)
    u = np.uint64
    tile = np.zeros(Hp * Wp, dtype=x.dtype)  # its border stays 0: the zero padding
    for k in range(nb):
        for c in range(C):
            n, uc = u(n0 + k), u(c)
            for h in range(H):
                to, uh = u((h + ph) * Wp + pw), u(h)
                for w in range(u(W)):
                    tile[to + w] = x[n, uc, uh, w]
            for i in range(KH):
                for j in range(KW):
                    row = u((c * KH + i) * KW + j)
                    for p in range(H_out):
                        to, fro = u(k * L + p * W_out), u((p * sh + i) * Wp + j)
                        if sw == 1:
                            for q in range(u(W_out)):
                                cols[row, to + q] = tile[fro + q]
                        else:
                            for q in range(u(W_out)):
                                cols[row, to + q] = tile[fro + q * u(sw)]


def _col2im(dcols, n0, KH, KW, sh, sw, ph, pw, H_out, W_out, dx):
    """Set dx[n0 .. n0+nb-1] to the sum of the columns of dcols copied from each pixel.

    dcols is (C*KH*KW, nb*H_out*W_out), laid out as :func:`_im2col` writes it, and this
    is that map's exact transpose; entries that came from the zero padding are dropped.
    """
    C, H, W = dx.shape[1], dx.shape[2], dx.shape[3]
    L = H_out * W_out
    nb = dcols.shape[1] // L
    Hp, Wp = _tile_shape(H, W, KH, KW, sh, sw, ph, pw, H_out, W_out)
    u = np.uint64
    tile = np.empty(Hp * Wp, dtype=dx.dtype)
    for k in range(nb):
        for c in range(C):
            n, uc = u(n0 + k), u(c)
            tile[:] = 0
            for i in range(KH):
                for j in range(KW):
                    row = u((c * KH + i) * KW + j)
                    for p in range(H_out):
                        fro, to = u(k * L + p * W_out), u((p * sh + i) * Wp + j)
                        if sw == 1:
                            for q in range(u(W_out)):
                                tile[to + q] += dcols[row, fro + q]
                        else:
                            for q in range(u(W_out)):
                                tile[to + q * u(sw)] += dcols[row, fro + q]
            for h in range(H):
                fro, uh = u((h + ph) * Wp + pw), u(h)
                for w in range(u(W)):
                    dx[n, uc, uh, w] = tile[fro + w]


_tile_shape = njit(cache=True, nogil=True)(_tile_shape)
im2col_kernel = njit(cache=True, nogil=True)(_im2col)
col2im_kernel = njit(cache=True, nogil=True)(_col2im)


# ----------------------------------------------------------------------- scratch space
# Scratch arrays are reused from call to call instead of being allocated (and page-
# faulted in) anew: one set per thread, so concurrent calls from two threads are safe.
_scratch = threading.local()


def scratch(name: str, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A reusable array of ``shape`` (contents undefined) that must not outlive the call."""
    buffers = _scratch.__dict__.setdefault("buffers", {})
    size = int(np.prod(shape))
    key = (name, np.dtype(dtype))
    flat = buffers.get(key)
    if flat is None or flat.size < size:
        flat = buffers[key] = np.empty(size, dtype=dtype)
    return flat[:size].reshape(shape)


def _chunks(n0: int, n1: int, rows: int, L: int, itemsize: int) -> Iterator[tuple[int, int]]:
    """Split images [n0, n1) into runs [a, b) whose columns fill about CHUNK_BYTES."""
    per_image = max(1, rows * L * itemsize)
    nb = int(min(n1 - n0, max(1, CHUNK_BYTES // per_image)))
    for a in range(n0, n1, nb):
        yield a, min(n1, a + nb)


# ----------------------------------------------------------------------- the op
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
    Per chunk of nb images: ``Y = W2 @ cols``, (C_out, nb*L) -> y[n0:n1] (nb, C_out, L).
    """
    g = conv_geometry("conv2d", x, w, stride, padding)
    check_same_dtype("conv2d", "x", {"x": x, "w": w, "b": b})
    x = np.ascontiguousarray(x)
    N, C_in = x.shape[:2]
    C_out, L = w.shape[0], g.H_out * g.W_out
    w2 = w.reshape(C_out, -1)  # (C_out, K), K = C_in*KH*KW
    y = np.empty((N, C_out, g.H_out, g.W_out), dtype=x.dtype)
    y3 = y.reshape(N, C_out, L)
    K = w2.shape[1]

    def share(n0: int, n1: int) -> None:  # y[n0:n1], on one core
        if g.pointwise:  # one GEMM per image, straight into NCHW
            np.matmul(w2, x[n0:n1].reshape(n1 - n0, C_in, L), out=y3[n0:n1])
            return
        for a, z in _chunks(n0, n1, K, L, x.itemsize):
            cols = scratch("cols", (K, (z - a) * L), x.dtype)
            im2col_kernel(x, a, *g, cols)
            if z - a == 1:
                np.matmul(w2, cols, out=y3[a])
            else:  # (C_out, nb*L) -> (nb, C_out, L): a copy of the chunk, in cache
                y_chunk = np.matmul(w2, cols, out=scratch("gemm", (C_out, (z - a) * L), x.dtype))
                y3[a:z] = y_chunk.reshape(C_out, z - a, L).transpose(1, 0, 2)

    map_shares(share, N, size=x.size * g.KH * g.KW + y.size)
    if b is not None:
        y3 += b[:, None]
    return y, Conv2dCache(x, w, b is not None, g)


def conv2d_backward(
    dy: np.ndarray, cache: Conv2dCache
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Gradients (dx, dw, db) of conv2d from dy (N, C_out, H_out, W_out); db is None without bias.

    Per chunk of nb images, with dY the chunk of dy as (C_out, nb*L):
        dW2 += dY @ cols.T              (C_out, K)
        dx[n0:n1] = col2im(W2.T @ dY)   (K, nb*L) -> (nb, C_in, H, W)
    """
    require_cache("conv2d", cache)
    x, w, has_bias, g = cache
    N, C_in = x.shape[:2]
    C_out, L = w.shape[0], g.H_out * g.W_out
    check_upstream("conv2d", dy, (N, C_out, g.H_out, g.W_out))
    dy3 = np.ascontiguousarray(dy).reshape(N, C_out, L)
    w2 = w.reshape(C_out, -1)  # (C_out, K)
    K = w2.shape[1]
    db = dy3.sum(axis=(0, 2)) if has_bias else None
    dx = np.empty(x.shape, dtype=x.dtype)

    def share(n0: int, n1: int) -> np.ndarray:  # dx[n0:n1] and this share's part of dW2
        if g.pointwise:
            x3, d3 = x[n0:n1].reshape(n1 - n0, C_in, L), dy3[n0:n1]
            np.matmul(w2.T, d3, out=dx[n0:n1].reshape(n1 - n0, C_in, L))  # already NCHW
            return np.tensordot(d3, x3, axes=([0, 2], [0, 2]))  # sum_n dy[n] @ x[n].T
        dw2 = np.empty((C_out, K), dtype=x.dtype)
        for a, z in _chunks(n0, n1, K, L, x.itemsize):
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
    return dx, dw2.reshape(w.shape), db
