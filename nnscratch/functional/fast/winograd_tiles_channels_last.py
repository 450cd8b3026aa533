"""Winograd F(2x2, 3x3)'s tile transforms for small planes, with the channels last.

On planes of 8 x 8 or less a plane has only 16 tiles (4 on 4 x 4), too few for the loops
over a plane's tiles in :mod:`.winograd_tiles` to vectorise. Here the loops run over the
channels instead: V and M are (16, T, C), a tile's 16 numbers for all C channels
contiguous, and the products become M[k] = V[k] @ U[k]^T (T x C_in times C_in x C_out).

1. :func:`_padded`: the images, channels last, inside a zero border one pixel wide
   (and one more row or column when H or W is odd, for the cropped last tiles).
2. :func:`_input_tiles`: per tile, B^T down each of its 4 columns (combining its rows),
   then along each of the 4 results' rows, each as loops over the channels, into local
   arrays (which LLVM knows alias nothing, so it vectorises them), then copied into V.
3. :func:`_output_tiles`: per tile and channel, A^T m A into an image's channels-last
   buffer, then into y's planes, cropped.

The 1-D maps are those of :mod:`.winograd_tiles`. Like all numba kernels here they do
not check bounds: the callers in :mod:`.winograd` size xp, V, M and y.
"""

from __future__ import annotations

import numpy as np
from numba import njit


def _padded(x, n0, nb, xp):
    """xp[k, 1 + h, 1 + w, c] = x[n0 + k, c, h, w], zero elsewhere; xp (nb, 2 th + 2, 2 tw + 2, C)."""
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    Hp, Wp = xp.shape[1], xp.shape[2]
    zero = xp.dtype.type(0)
    for k in range(nb):
        for h in range(Hp):
            for w in range(Wp):
                if h == 0 or h > H or w == 0 or w > W:
                    for c in range(C):
                        xp[k, h, w, c] = zero
        for c in range(C):
            for h in range(H):
                for w in range(W):
                    xp[k, h + 1, w + 1, c] = x[n0 + k, c, h, w]


def _input_tiles(xp, nb, V, t0):
    """V[4i + j, t0 + t, c] = (B^T d B)[i, j] for the 4x4 tile d of channel c of tile t
    (t = k * th * tw + ty * tw + tx) of the padded images xp (nb, 2 th + 2, 2 tw + 2, C)."""
    C = xp.shape[3]
    th, tw = (xp.shape[1] - 2) // 2, (xp.shape[2] - 2) // 2
    down = np.empty((16, C), dtype=xp.dtype)  # B^T down column j: row combination i at 4 i + j
    tile = np.empty((16, C), dtype=xp.dtype)  # then along the rows: V's 16 rows
    t = t0
    for k in range(nb):
        for ty in range(th):
            for tx in range(tw):
                r, s = 2 * ty, 2 * tx
                for j in range(4):
                    for c in range(C):
                        d0 = xp[k, r, s + j, c]
                        d1 = xp[k, r + 1, s + j, c]
                        d2 = xp[k, r + 2, s + j, c]
                        d3 = xp[k, r + 3, s + j, c]
                        down[j, c] = d0 - d2
                        down[4 + j, c] = d1 + d2
                        down[8 + j, c] = d2 - d1
                        down[12 + j, c] = d1 - d3
                for i in range(4):
                    for c in range(C):
                        e0 = down[4 * i, c]
                        e1 = down[4 * i + 1, c]
                        e2 = down[4 * i + 2, c]
                        e3 = down[4 * i + 3, c]
                        tile[4 * i, c] = e0 - e2
                        tile[4 * i + 1, c] = e1 + e2
                        tile[4 * i + 2, c] = e2 - e1
                        tile[4 * i + 3, c] = e1 - e3
                for q in range(16):
                    for c in range(C):
                        V[q, t, c] = tile[q, c]
                t += 1


def _output_tiles(M, y, n0, c0):
    """y[n0 + k, c0 + c] (H, W) = the 2x2 output tiles A^T m A, m[i, j] = M[4i + j, tile, c],
    for the tiles of M (16, nb * th * tw, C), cropped to y's planes."""
    C = M.shape[2]
    H, W = y.shape[2], y.shape[3]
    th, tw = (H + 1) // 2, (W + 1) // 2
    image = np.empty((2 * th, 2 * tw, C), dtype=y.dtype)  # one image's outputs, channels last
    t = 0
    for k in range(M.shape[1] // (th * tw)):
        for ty in range(th):
            for tx in range(tw):
                r, s = 2 * ty, 2 * tx
                for c in range(C):
                    s0 = M[0, t, c] + M[4, t, c] + M[8, t, c]  # A^T along the rows
                    s1 = M[1, t, c] + M[5, t, c] + M[9, t, c]
                    s2 = M[2, t, c] + M[6, t, c] + M[10, t, c]
                    s3 = M[3, t, c] + M[7, t, c] + M[11, t, c]
                    e0 = M[4, t, c] - M[8, t, c] - M[12, t, c]
                    e1 = M[5, t, c] - M[9, t, c] - M[13, t, c]
                    e2 = M[6, t, c] - M[10, t, c] - M[14, t, c]
                    e3 = M[7, t, c] - M[11, t, c] - M[15, t, c]
                    image[r, s, c] = s0 + s1 + s2  # then along the columns
                    image[r, s + 1, c] = s1 - s2 - s3
                    image[r + 1, s, c] = e0 + e1 + e2
                    image[r + 1, s + 1, c] = e1 - e2 - e3
                t += 1
        for c in range(C):
            for h in range(H):
                for w in range(W):
                    y[n0 + k, c0 + c, h, w] = image[h, w, c]


padded_kernel = njit(cache=True, nogil=True)(_padded)
input_tiles_kernel = njit(cache=True, nogil=True)(_input_tiles)
output_tiles_kernel = njit(cache=True, nogil=True)(_output_tiles)
