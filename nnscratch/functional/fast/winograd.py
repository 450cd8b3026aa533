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
    kernels = w.reshape(C_out * C_in, 9)
    transform = WEIGHT_TRANSFORM.astype(w.dtype)
    U = np.empty((16, C_out * C_in), dtype=w.dtype)

    def share(n0: int, n1: int) -> None:  # output channels n0 .. n1-1
        a, b = n0 * C_in, n1 * C_in
        np.matmul(transform, np.ascontiguousarray(kernels[a:b].T), out=U[:, a:b])

    map_shares(share, C_out, size=U.size)
    return U.reshape(16, C_out, C_in)


def _weight_gradient(dU: np.ndarray) -> np.ndarray:
    """dw (C_out, C_in, 3, 3) from dU (16, C_out, C_in): the transpose of U = kron(G, G) g."""
    _, C_out, C_in = dU.shape
    transform = WEIGHT_TRANSFORM.astype(dU.dtype)
    dw = np.empty((C_out * C_in, 9), dtype=dU.dtype)
    flat = dU.reshape(16, C_out * C_in)

    def share(n0: int, n1: int) -> None:  # output channels n0 .. n1-1, on one core
        a, b = n0 * C_in, n1 * C_in
        np.matmul(flat[:, a:b].T, transform, out=dw[a:b])

    map_shares(share, C_out, size=flat.size)
    return dw.reshape(C_out, C_in, 3, 3)


def _tiles(H: int, W: int) -> tuple[int, int]:
    """Tiles down and across: one per 2x2 block of the (H, W) output, the last one cropped."""
    return (H + 1) // 2, (W + 1) // 2


def _input_tiles(x: np.ndarray, a: int, z: int, to_v: np.ndarray) -> np.ndarray:
    """V (16, C_in, T) for images a .. z-1 of x: their 4x4 tiles (gathered by the im2col
    kernel: window 4, stride 2, padding 1), transformed by ``to_v`` (16, 16). Scratch space."""
    C_in, H, W = x.shape[1:]
    th, tw = _tiles(H, W)
    T = (z - a) * th * tw
    tiles = scratch("wino_tiles", (C_in, 16, T), x.dtype)
    im2col_kernel(x, a, 4, 4, 2, 2, 1, 1, th, tw, tiles.reshape(C_in * 16, T))
    V = scratch("wino_v", (16, C_in, T), x.dtype)
    np.matmul(to_v, tiles, out=V.transpose(1, 0, 2))
    return V


def _convolve(x: np.ndarray, U: np.ndarray, rotated: bool) -> np.ndarray:
    """y (N, C_out, H, W) = the 3x3 padding-1 convolution of x (N, C_in, H, W) given U.

    ``rotated``: U is the forward weight's and this is dx's convolution (U[k]^T at the
    permuted tile positions). Each core takes a share of the images, in chunks.
    """
    N, C_in, H, W = x.shape
    C_out = U.shape[2] if rotated else U.shape[1]
    th, tw = _tiles(H, W)
    L = th * tw
    dtype = x.dtype
    to_v, to_y = INPUT_TRANSFORM.astype(dtype), OUTPUT_TRANSFORM.astype(dtype)
    weights = U.transpose(0, 2, 1) if rotated else U
    if rotated:
        to_v, to_y = to_v[ROTATED], to_y[:, ROTATED]
    y = np.empty((N, C_out, H, W), dtype=dtype)
    even = H % 2 == 0 and W % 2 == 0

    def share(n0: int, n1: int) -> None:
        for a, z in image_chunks(n0, n1, 16 * max(C_in, C_out), L, dtype.itemsize):
            T = (z - a) * L
            V = _input_tiles(x, a, z, to_v)
            M = np.matmul(weights, V, out=scratch("wino_m", (16, C_out, T), dtype))
            out = np.matmul(
                to_y, M.reshape(16, C_out * T), out=scratch("wino_y", (4, C_out * T), dtype)
            )
            blocks = out.reshape(2, 2, C_out, z - a, th, tw).transpose(3, 2, 4, 0, 5, 1)
            if even:
                y[a:z].reshape(z - a, C_out, th, 2, tw, 2)[...] = blocks
            else:  # the last row or column of tiles sticks out: crop it
                y[a:z] = blocks.reshape(z - a, C_out, 2 * th, 2 * tw)[:, :, :H, :W]

    map_shares(share, N, size=x.size * 4 + y.size)
    return y


def winograd_forward(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """y (N, C_out, H, W) = conv2d(x, w, stride 1, padding 1) for x (N, C_in, H, W), w 3x3."""
    return _convolve(x, transform_weight(w), rotated=False)


def winograd_backward(
    dy: np.ndarray, x: np.ndarray, w: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(dx, dw) of :func:`winograd_forward` from dy (N, C_out, H, W)."""
    U = transform_weight(w)
    dx = _convolve(dy, U, rotated=True)
    N, C_in, H, W = x.shape
    C_out = w.shape[0]
    th, tw = _tiles(H, W)
    L = th * tw
    dtype = x.dtype
    to_v, back_m = INPUT_TRANSFORM.astype(dtype), OUTPUT_TRANSFORM.T.astype(dtype)
    even = H % 2 == 0 and W % 2 == 0

    def share(n0: int, n1: int) -> np.ndarray:  # this share's part of dU (16, C_out, C_in)
        dU = np.zeros((16, C_out, C_in), dtype=dtype)
        for a, z in image_chunks(n0, n1, 16 * max(C_in, C_out), L, dtype.itemsize):
            k, T = z - a, (z - a) * L
            V = _input_tiles(x, a, z, to_v)
            d = dy[a:z]
            if not even:  # the missing outputs of the cropped tiles have no gradient
                d = np.zeros((k, C_out, 2 * th, 2 * tw), dtype=dtype)
                d[:, :, :H, :W] = dy[a:z]
            dy_tiles = scratch("wino_y", (4, C_out * T), dtype)
            dy_tiles.reshape(2, 2, C_out, k, th, tw)[...] = d.reshape(
                k, C_out, th, 2, tw, 2
            ).transpose(3, 5, 1, 0, 2, 4)
            dM = np.matmul(back_m, dy_tiles, out=scratch("wino_m", (16, C_out * T), dtype))
            dU += np.matmul(dM.reshape(16, C_out, T), V.transpose(0, 2, 1))
        return dU

    dU, *others = map_shares(share, N, size=x.size * 4 + dy.size)
    for part in others:
        dU += part
    return dx, _weight_gradient(dU)
