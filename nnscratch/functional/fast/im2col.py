"""The numba kernels of the fast convolutions: im2col and its transpose col2im.

They work plane by plane: x[n, c] (or dx[n, c]) lives in a small zero-bordered "tile"
of shape (Hp, Wp), flattened, so the KH*KW shifted copies need no bounds checks. Their
indices are unsigned (np.uint64) and index the arrays directly rather than through row
views: numba then skips its negative-index wrap-around, so LLVM vectorises the copy
loops, and no view is built per row (both matter: 2-4x on small planes such as 4x4).

They run on the calling thread (no ``parallel=True``) and release the GIL: the
parallelism is one share of the batch per core (see ``workers.py``), each share running
its own kernels and a single-threaded GEMM on its own images.
"""

from __future__ import annotations

import numpy as np
from numba import njit


def _tile_shape(H, W, KH, KW, sh, sw, ph, pw, H_out, W_out):
    """Size of a zero-bordered copy of one input plane that every window fits into."""
    return max(H + 2 * ph, (H_out - 1) * sh + KH), max(W + 2 * pw, (W_out - 1) * sw + KW)


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
