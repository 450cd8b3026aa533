"""Winograd F(2x2, 3x3): a 3x3, stride-1, padding-1 convolution with 2.25x fewer multiplications.

Lavin & Gray (2016). Cut the padded input into 4x4 tiles d that overlap by 2 (one per
2x2 block of the output); for each tile and each pair (c_out, c_in) of channels,

    y_tile (2x2) = A^T [ (G g G^T)  *  (B^T d B) ] A          (* elementwise, 16 products)

with the 3x3 kernel g and the small constant matrices below. Summed over c_in, the
16 elementwise products become 16 matrix products, one per tile position k (0..15):

    U[k] = (G g G^T)[k]     (16, C_out, C_in)   the weight, transformed
    V[k] = (B^T d B)[k]     (16, C_in, T)       every tile of the input, transformed
    M[k] = U[k] @ V[k]      (16, C_out, T)      16 products of C_out x C_in x T
    y    = A^T M A          per tile            back to (N, C_out, H, W)

against one product of C_out x 9 C_in x 4T for im2col: 16 / 36 of the multiplications.
The transforms are linear maps of 16 numbers, so they are written here as small matrix
products too: the 4x4 tiles are gathered with the im2col kernel (kernel 4, stride 2,
padding 1), then ``V = kron(B^T, B^T) @ tiles`` and ``y_tiles = kron(A^T, A^T) @ M``.

The backward pass uses the same machinery:
- dx is a 3x3 convolution of dy with the kernel rotated by 180 degrees and its channel
  axes swapped; rotating g permutes the tile positions of U (G's first and last rows
  swap), so dx reuses U^T with the transforms' tile positions permuted.
- dw: the forward is linear in U, so dU[k] = sum over tiles of dM[k] V[k]^T with
  dM = kron(A, A) @ dy_tiles, and dw = kron(G, G)^T dU (the transpose of U = kron(G, G) g).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from nnscratch.functional.conv import ConvGeometry
from nnscratch.functional.fast.im2col import im2col_kernel
from nnscratch.functional.fast.scratch import image_chunks, scratch
from nnscratch.functional.fast.workers import map_shares

B_T = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=np.float64)
G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], dtype=np.float64)
A_T = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=np.float64)

# The transforms of a tile flattened row by row: vec(P X Q^T) = kron(P, Q) vec(X).
INPUT_TRANSFORM = np.kron(B_T, B_T)  # (16, 16): 4x4 input tile -> V
WEIGHT_TRANSFORM = np.kron(G, G)  # (16, 9):  3x3 kernel -> U
OUTPUT_TRANSFORM = np.kron(A_T, A_T)  # (4, 16):  M -> 2x2 output tile
# Rotating the kernel by 180 degrees swaps G's rows 0 and 3 (G J = P G), so the tile
# position (i, j) of U becomes (r(i), r(j)) with r swapping 0 and 3.
ROTATED = np.array([4 * r + s for r in (3, 1, 2, 0) for s in (3, 1, 2, 0)])
IDENTITY = np.arange(16)

# U's size from which the cores share a layer's channels rather than its images (measured
# with 2 cores and a 32 MB L3: images faster with 256 channels, 4 MB of U; channels
# faster from 384, 9 MB, at every plane size and batch tried).
CHANNEL_SPLIT_BYTES = 8 << 20
# Output planes from this wide get their tiles written by a numba kernel (_output_tiles).
KERNEL_MIN_WIDTH = 16


def applies(g: ConvGeometry) -> bool:
    """True for the convolutions Winograd F(2x2, 3x3) computes: 3x3, stride 1, padding 1."""
    return tuple(g[:6]) == (3, 3, 1, 1, 1, 1)


def transform_weight(w: np.ndarray) -> np.ndarray:
    """U (16, C_out, C_in) = G g G^T for every kernel g = w[c_out, c_in] (3x3).

    One product (16, 9) @ (9, C_in) per output channel, in shares across the cores (a
    multithreaded BLAS call here would leave BLAS's threads spinning on the cores the
    next convolution's workers need).
    """
    C_out, C_in = w.shape[:2]
    U = np.empty((16, C_out, C_in), dtype=w.dtype)

    def share(n0: int, n1: int) -> None:  # output channels n0 .. n1-1
        U[:, n0:n1] = _transform(w[n0:n1])

    map_shares(share, C_out, size=U.size)
    return U


def _transform(w: np.ndarray) -> np.ndarray:
    """U (16, C_out, C_in) of w (C_out, C_in, 3, 3) on the calling thread."""
    C_out, C_in = w.shape[:2]
    kernels = np.ascontiguousarray(w.reshape(C_out * C_in, 9).T)
    return (WEIGHT_TRANSFORM.astype(w.dtype) @ kernels).reshape(16, C_out, C_in)


def _weight_gradient(dU: np.ndarray) -> np.ndarray:
    """dw (C_out, C_in, 3, 3) from dU (16, C_out, C_in): the transpose of U = kron(G, G) g."""
    _, C_out, C_in = dU.shape
    return (dU.reshape(16, C_out * C_in).T @ WEIGHT_TRANSFORM.astype(dU.dtype)).reshape(
        C_out, C_in, 3, 3
    )


def _tiles(H: int, W: int) -> tuple[int, int]:
    """Tiles down and across: one per 2x2 block of the (H, W) output, the last one cropped."""
    return (H + 1) // 2, (W + 1) // 2


def _input_transform(dtype: np.dtype, rotated: bool) -> np.ndarray:
    """to_v (16, 16) in ``dtype``; for dx's convolution (``rotated``), with the tile
    positions permuted as U's are for the rotated kernel."""
    to_v = INPUT_TRANSFORM.astype(dtype)
    return to_v[ROTATED] if rotated else to_v


def _input_tiles(x: np.ndarray, a: int, z: int, to_v: np.ndarray, out: np.ndarray) -> None:
    """out (16, C_in, T) = V for images a .. z-1 of x: their 4x4 tiles (gathered by the
    im2col kernel: window 4, stride 2, padding 1), transformed by ``to_v`` (16, 16)."""
    C_in, H, W = x.shape[1:]
    th, tw = _tiles(H, W)
    T = (z - a) * th * tw
    tiles = scratch("wino_tiles", (C_in, 16, T), x.dtype)
    im2col_kernel(x, a, 4, 4, 2, 2, 1, 1, th, tw, tiles.reshape(C_in * 16, T))
    np.matmul(to_v, tiles, out=out.transpose(1, 0, 2))


def _output_tiles(M: np.ndarray, rotated: bool, y: np.ndarray, n0: int, c0: int) -> None:
    """y[n0 : n0+nb, c0 : c0+c] = the 2x2 output tiles A^T M A of M (16, c, nb * tiles),
    cropped to y's planes; ``rotated`` as for :func:`_input_transform`.

    Planes from ``KERNEL_MIN_WIDTH`` wide go through :func:`output_tiles_kernel`, which
    writes each tile's pixels straight into y (measured 2-3x faster on 16- and 32-wide
    planes); on narrower planes its rows are too short, and one product
    ``kron(A^T, A^T) @ M`` followed by a copy into y's layout is faster.
    """
    c, T = M.shape[1:]
    H, W = y.shape[2:]
    th, tw = _tiles(H, W)
    if W >= KERNEL_MIN_WIDTH:
        output_tiles_kernel(M, ROTATED if rotated else IDENTITY, y, n0, c0)
        return
    nb = T // (th * tw)
    to_y = OUTPUT_TRANSFORM.astype(M.dtype)
    out = scratch("wino_y", (4, c * T), M.dtype)
    np.matmul(to_y[:, ROTATED] if rotated else to_y, M.reshape(16, -1), out=out)
    blocks = out.reshape(2, 2, c, nb, th, tw).transpose(3, 2, 4, 0, 5, 1)
    y = y[n0 : n0 + nb, c0 : c0 + c]
    if H % 2 == 0 and W % 2 == 0:
        y.reshape(nb, c, th, 2, tw, 2)[...] = blocks
    else:  # the last row or column of tiles sticks out: crop it
        y[...] = blocks.reshape(nb, c, 2 * th, 2 * tw)[:, :, :H, :W]


def _output_tiles_loops(M, perm, y, n0, c0):
    """The numba kernel of :func:`_output_tiles`: with m_ij = M[perm[4i + j], c, tile],

        s_j = m_0j + m_1j + m_2j,  e_j = m_1j - m_2j - m_3j       (A^T along the rows)
        y[2ty, 2tx : 2tx+2]     = (s_0 + s_1 + s_2,  s_1 - s_2 - s_3)
        y[2ty + 1, 2tx : 2tx+2] = (e_0 + e_1 + e_2,  e_1 - e_2 - e_3)

    a row of tiles at a time, in loops over the tiles (indices unsigned, so LLVM
    vectorises them); two output rows are assembled in a buffer, then cropped into y.
    """
    C, T = M.shape[1], M.shape[2]
    H, W = y.shape[2], y.shape[3]
    th, tw = (H + 1) // 2, (W + 1) // 2
    nb = T // (th * tw)
    u = np.uint64
    utw, two = u(tw), u(2)
    rows = np.empty(4 * tw, dtype=y.dtype)
    se = np.empty(8 * tw, dtype=y.dtype)  # s_0..s_3, e_0..e_3 for one row of tiles
    p = np.empty(16, dtype=np.uint64)
    for k in range(16):
        p[k] = u(perm[k])
    for k in range(nb):
        n = u(n0 + k)
        for c in range(C):
            uc, yc = u(c), u(c0 + c)
            for ty in range(th):
                base = u((k * th + ty) * tw)
                for j in range(4):
                    a0, a1, a2, a3 = p[j], p[4 + j], p[8 + j], p[12 + j]
                    sj, ej = u(j) * utw, u(4 + j) * utw
                    for q in range(utw):
                        m1 = M[a1, uc, base + q]
                        m2 = M[a2, uc, base + q]
                        se[sj + q] = M[a0, uc, base + q] + m1 + m2
                        se[ej + q] = m1 - m2 - M[a3, uc, base + q]
                for h in range(2):
                    o, r = u(4 * h) * utw, u(h) * two * utw
                    for q in range(utw):
                        t1 = se[o + utw + q]
                        t2 = se[o + two * utw + q]
                        rows[r + two * q] = se[o + q] + t1 + t2
                        rows[r + two * q + u(1)] = t1 - t2 - se[o + u(3) * utw + q]
                for h in range(min(2, H - 2 * ty)):
                    r, yh = u(h) * two * utw, u(2 * ty + h)
                    for w in range(u(W)):
                        y[n, yc, yh, w] = rows[r + w]


output_tiles_kernel = njit(cache=True, nogil=True)(_output_tiles_loops)


def _output_gradient_tiles(dy: np.ndarray, a: int, z: int, out: np.ndarray) -> None:
    """out (16, C_out, T) = dM = kron(A, A) @ the 2x2 tiles of dy[a:z] (the transpose of
    :func:`_output_tiles`); the missing outputs of cropped tiles get no gradient."""
    k, C_out, H, W = z - a, *dy.shape[1:]
    th, tw = _tiles(H, W)
    d = dy[a:z]
    if H % 2 or W % 2:
        d = np.zeros((k, C_out, 2 * th, 2 * tw), dtype=dy.dtype)
        d[:, :, :H, :W] = dy[a:z]
    dy_tiles = scratch("wino_y", (C_out, 4, k * th * tw), dy.dtype)
    dy_tiles.reshape(C_out, 2, 2, k, th, tw)[...] = d.reshape(k, C_out, th, 2, tw, 2).transpose(
        1, 3, 5, 0, 2, 4
    )
    np.matmul(OUTPUT_TRANSFORM.T.astype(dy.dtype), dy_tiles, out=out.transpose(1, 0, 2))


def splits_channels(C_in: int, C_out: int, itemsize: int) -> bool:
    """True when the cores should share the channels of a layer rather than its images.

    Split by images, every core reads all of U (16 C_out C_in numbers) and, in the
    backward pass, sums a whole dU of its own; split by channels, each reads and writes
    only its part of them but all of the tiles. Once U outgrows the caches (ResNet-18's
    last stage: 16.8 MB) the channels win.
    """
    return 16 * C_in * C_out * itemsize >= CHANNEL_SPLIT_BYTES


def _convolve_by_images(x: np.ndarray, U: np.ndarray, rotated: bool) -> np.ndarray:
    """y (N, C_out, H, W) = the 3x3 padding-1 convolution of x (N, C_in, H, W) given U,
    each core on a share of the images, in chunks. ``rotated``: U is the forward weight's
    and this is dx's convolution (U[k]^T at the permuted tile positions)."""
    N, C_in, H, W = x.shape
    C_out = U.shape[2] if rotated else U.shape[1]
    th, tw = _tiles(H, W)
    L = th * tw
    dtype = x.dtype
    to_v = _input_transform(dtype, rotated)
    weights = U.transpose(0, 2, 1) if rotated else U
    y = np.empty((N, C_out, H, W), dtype=dtype)

    def share(n0: int, n1: int) -> None:
        for a, z in image_chunks(n0, n1, 16 * max(C_in, C_out), L, dtype.itemsize):
            T = (z - a) * L
            V = scratch("wino_v", (16, C_in, T), dtype)
            _input_tiles(x, a, z, to_v, V)
            M = np.matmul(weights, V, out=scratch("wino_m", (16, C_out, T), dtype))
            _output_tiles(M, rotated, y, a, 0)

    map_shares(share, N, size=x.size * 4 + y.size)
    return y


def _all_input_tiles(x: np.ndarray, to_v: np.ndarray) -> np.ndarray:
    """V (16, C_in, N * tiles) of the whole batch, the images shared across the cores."""
    N, C_in, H, W = x.shape
    L = np.prod(_tiles(H, W))
    V = np.empty((16, C_in, N * L), dtype=x.dtype)

    def share(n0: int, n1: int) -> None:
        for a, z in image_chunks(n0, n1, 16 * C_in, L, x.itemsize):
            _input_tiles(x, a, z, to_v, V[:, :, a * L : z * L])

    map_shares(share, N, size=V.size)
    return V


def _convolve_by_channels(x: np.ndarray, w: np.ndarray, rotated: bool) -> np.ndarray:
    """:func:`_convolve_by_images` from w itself, each core on a share of the output
    channels: it transforms its part of w and multiplies it with the whole batch's tiles."""
    N, _, H, W = x.shape
    C_out = w.shape[1] if rotated else w.shape[0]
    to_v = _input_transform(x.dtype, rotated)
    V = _all_input_tiles(x, to_v)
    y = np.empty((N, C_out, H, W), dtype=x.dtype)

    def share(c0: int, c1: int) -> None:
        weights = _transform(w[:, c0:c1]).transpose(0, 2, 1) if rotated else _transform(w[c0:c1])
        M = np.matmul(weights, V, out=scratch("wino_m", (16, c1 - c0, V.shape[2]), x.dtype))
        _output_tiles(M, rotated, y, 0, c0)

    map_shares(share, C_out, size=V.size * 2)
    return y


def winograd_forward(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """y (N, C_out, H, W) = conv2d(x, w, stride 1, padding 1) for x (N, C_in, H, W), w 3x3."""
    C_out, C_in = w.shape[:2]
    if splits_channels(C_in, C_out, x.itemsize):
        return _convolve_by_channels(x, w, rotated=False)
    return _convolve_by_images(x, transform_weight(w), rotated=False)


def winograd_backward(
    dy: np.ndarray, x: np.ndarray, w: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(dx, dw) of :func:`winograd_forward` from dy (N, C_out, H, W)."""
    C_out, C_in = w.shape[:2]
    if splits_channels(C_in, C_out, x.itemsize):
        return _convolve_by_channels(dy, w, rotated=True), _weight_gradient_by_channels(dy, x)
    dx = _convolve_by_images(dy, transform_weight(w), rotated=True)
    return dx, _weight_gradient_by_images(dy, x)


def _weight_gradient_by_images(dy: np.ndarray, x: np.ndarray) -> np.ndarray:
    """dw: each core sums dU[k] = dM[k] V[k]^T over its share of the images, in chunks."""
    N, C_in, H, W = x.shape
    C_out = dy.shape[1]
    L = np.prod(_tiles(H, W))
    dtype = x.dtype
    to_v = INPUT_TRANSFORM.astype(dtype)

    def share(n0: int, n1: int) -> np.ndarray:  # this share's part of dU (16, C_out, C_in)
        dU = np.zeros((16, C_out, C_in), dtype=dtype)
        for a, z in image_chunks(n0, n1, 16 * max(C_in, C_out), L, dtype.itemsize):
            T = (z - a) * L
            V = scratch("wino_v", (16, C_in, T), dtype)
            _input_tiles(x, a, z, to_v, V)
            dM = scratch("wino_m", (16, C_out, T), dtype)
            _output_gradient_tiles(dy, a, z, dM)
            dU += np.matmul(dM, V.transpose(0, 2, 1))
        return dU

    dU, *others = map_shares(share, N, size=x.size * 4 + dy.size)
    for part in others:
        dU += part
    dw = np.empty((C_out, C_in, 3, 3), dtype=dtype)

    def transpose_share(c0: int, c1: int) -> None:  # on single-threaded BLAS, as everywhere
        dw[c0:c1] = _weight_gradient(dU[:, c0:c1])

    map_shares(transpose_share, C_out, size=dU.size)
    return dw


def _weight_gradient_by_channels(dy: np.ndarray, x: np.ndarray) -> np.ndarray:
    """dw: the tiles of the whole batch first, then each core computes dU and dw for its
    share of the output channels."""
    N, C_in, H, W = x.shape
    C_out = dy.shape[1]
    L = np.prod(_tiles(H, W))
    V = _all_input_tiles(x, INPUT_TRANSFORM.astype(x.dtype))
    dM = np.empty((16, C_out, N * L), dtype=x.dtype)

    def gradient_tiles(n0: int, n1: int) -> None:
        _output_gradient_tiles(dy, n0, n1, dM[:, :, n0 * L : n1 * L])

    map_shares(gradient_tiles, N, size=dM.size)
    dw = np.empty((C_out, C_in, 3, 3), dtype=x.dtype)

    def share(c0: int, c1: int) -> None:
        dw[c0:c1] = _weight_gradient(np.matmul(dM[:, c0:c1], V.transpose(0, 2, 1)))

    map_shares(share, C_out, size=V.size + dM.size)
    return dw
