"""The numba kernels of Winograd F(2x2, 3x3)'s tile transforms (:mod:`.winograd`).

Both transforms are separable, a 1-D transform along the columns of a tile and one along
its rows, with these 1-D maps (B^T for the input, A^T for the output):

    B^T (d0, d1, d2, d3) = (d0 - d2,  d1 + d2,  d2 - d1,  d1 - d3)
    A^T (m0, m1, m2, m3) = (m0 + m1 + m2,  m1 - m2 - m3)

Each kernel does one of its two 1-D passes inside a row of the plane (short loops) and
the other in loops over all the tiles of a plane at once: hundreds of iterations
that LLVM vectorises (indices unsigned, as in :mod:`.im2col`), and that write (or read)
each of the 16 rows of V (or M) contiguously, straight into the operands of the 16
products. (Both 1-D passes inside rows of tiles left the loops too short to vectorise:
2-4x slower.) They run on the calling thread and release the GIL. Like all numba kernels
here they do not check bounds: the callers in :mod:`.winograd` size V, M and y.

Tile (ty, tx) of a plane covers rows 2ty-1 .. 2ty+2 and columns 2tx-1 .. 2tx+2 of the
input (zero outside it) and outputs rows 2ty, 2ty+1 and columns 2tx, 2tx+1; it is
column ``t0 + k * th * tw + ty * tw + tx`` of V and M for the k-th image of a call.
"""

from __future__ import annotations

import numpy as np
from numba import njit


def _input_tiles(x, n0, nb, V, t0):
    """V[4i + j, c, tile] = (B^T d B)[i, j] for the 4x4 input tile d of every tile of
    the images n0 .. n0+nb-1 of x (N, C, H, W), padding 1; V is (16, C, T).

    1. Per input row (its padded index r), B^T along the columns, for every tile
       column: ``cols[j][r % 2][r // 2, tx] = (B^T d_r)[j]``, d_r the row's four
       pixels under the tile, split by the parity of r.
    2. B^T along the rows, over all tiles t = ty * tw + tx at once: the four rows of
       tile row ty are 2ty .. 2ty+3, i.e. parity planes 0, 1, 0, 1 at ty, ty, ty+1, ty+1
       (offset tw in a plane).
    """
    C, H, W = x.shape[1], x.shape[2], x.shape[3]
    th, tw = (H + 1) // 2, (W + 1) // 2
    u = np.uint64
    utw, uL, one, two = u(tw), u(th * tw), u(1), u(2)
    P = u((th + 1) * tw)  # one parity plane of one column combination
    cols = np.zeros(8 * (th + 1) * tw, dtype=x.dtype)  # [j][parity][ty'][tx]; rows past H stay 0
    row = np.zeros(2 * tw + 2, dtype=x.dtype)  # one padded input row; its border stays 0
    for k in range(nb):
        n = u(n0 + k)
        for c in range(C):
            uc = u(c)
            for h in range(H):
                for w in range(u(W)):
                    row[w + one] = x[n, uc, u(h), w]
                o = u((h + 1) % 2) * P + u((h + 1) // 2) * utw
                for q in range(utw):
                    d0 = row[two * q]
                    d1 = row[two * q + one]
                    d2 = row[two * q + two]
                    d3 = row[two * q + u(3)]
                    cols[o + q] = d0 - d2
                    cols[two * P + o + q] = d1 + d2
                    cols[u(4) * P + o + q] = d2 - d1
                    cols[u(6) * P + o + q] = d1 - d3
            base = u(t0 + k * th * tw)
            for j in range(4):
                e = u(2 * j) * P  # parity plane 0 of column combination j; plane 1 at e + P
                for t in range(uL):
                    d0 = cols[e + t]
                    d1 = cols[e + P + t]
                    d2 = cols[e + t + utw]
                    d3 = cols[e + P + t + utw]
                    V[j, uc, base + t] = d0 - d2
                    V[4 + j, uc, base + t] = d1 + d2
                    V[8 + j, uc, base + t] = d2 - d1
                    V[12 + j, uc, base + t] = d1 - d3


def _output_tiles(M, y, n0, c0):
    """y[n0 + k, c0 + c] (H, W) = the 2x2 output tiles A^T m A, with m[i, j] = M[4i + j, c,
    tile], for the tiles of M (16, C, nb * th * tw), cropped to y's planes.

    1. A^T along the rows, over all tiles at once: ``s_j = m_0j + m_1j + m_2j`` (output
       row 2ty) and ``e_j = m_1j - m_2j - m_3j`` (row 2ty + 1).
    2. Per output row, A^T along the columns: pixels 2tx and 2tx + 1 are
       ``r_0 + r_1 + r_2`` and ``r_1 - r_2 - r_3`` with r = s or e; assembled in a
       buffer, then cropped into y.
    """
    C, T = M.shape[1], M.shape[2]
    H, W = y.shape[2], y.shape[3]
    th, tw = (H + 1) // 2, (W + 1) // 2
    u = np.uint64
    utw, uL, one, two = u(tw), u(th * tw), u(1), u(2)
    se = np.empty(8 * th * tw, dtype=y.dtype)  # s_0..s_3, e_0..e_3 over a plane's tiles
    row = np.empty(2 * tw, dtype=y.dtype)
    for k in range(T // (th * tw)):
        n = u(n0 + k)
        for c in range(C):
            uc, yc = u(c), u(c0 + c)
            base = u(k * th * tw)
            for j in range(4):
                sj, ej = u(j) * uL, u(4 + j) * uL
                for t in range(uL):
                    m1 = M[4 + j, uc, base + t]
                    m2 = M[8 + j, uc, base + t]
                    se[sj + t] = M[j, uc, base + t] + m1 + m2
                    se[ej + t] = m1 - m2 - M[12 + j, uc, base + t]
            for h in range(H):
                o = u(4 * (h % 2)) * uL + u(h // 2) * utw
                for q in range(utw):
                    r1 = se[o + uL + q]
                    r2 = se[o + two * uL + q]
                    row[two * q] = se[o + q] + r1 + r2
                    row[two * q + one] = r1 - r2 - se[o + u(3) * uL + q]
                for w in range(u(W)):
                    y[n, yc, u(h), w] = row[w]


input_tiles_kernel = njit(cache=True, nogil=True)(_input_tiles)
output_tiles_kernel = njit(cache=True, nogil=True)(_output_tiles)
