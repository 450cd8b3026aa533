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
The tile transforms are numba kernels (:mod:`.winograd_tiles`) that write V, and read M,
in the layout of the 16 products' operands. On planes up to 8 x 8 they run over the
channels instead (:mod:`.winograd_tiles_channels_last`): V and M are then (16, T, C)
and the products M[k] = V[k] @ U[k]^T.

The backward pass uses the same machinery:
- dx is a 3x3 convolution of dy with the kernel rotated by 180 degrees and its channel
  axes swapped. Rotating g swaps G's first and last rows, which permutes the tile
  positions of U: dx multiplies U[ROTATED]^T with dy's tiles.
- dw: the forward is linear in U, so dU[k] = sum over tiles of dM[k] V[k]^T with
  dM = kron(A, A) @ dy_tiles, and dw = kron(G, G)^T dU (the transpose of U = kron(G, G) g).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from nnscratch.functional.conv import ConvGeometry
from nnscratch.functional.fast import winograd_tiles, winograd_tiles_channels_last
from nnscratch.functional.fast.scratch import image_chunks, scratch
from nnscratch.functional.fast.weight_cache import derived
from nnscratch.functional.fast.workers import map_shares

B_T = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=np.float64)
G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], dtype=np.float64)
A_T = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=np.float64)

# The transforms of a tile flattened row by row: vec(P X Q^T) = kron(P, Q) vec(X).
WEIGHT_TRANSFORM = np.kron(G, G)  # (16, 9):  3x3 kernel -> U
OUTPUT_TRANSFORM = np.kron(A_T, A_T)  # (4, 16):  M -> 2x2 output tile
# Rotating the kernel by 180 degrees swaps G's rows 0 and 3 (G J = P G), so the tile
# position (i, j) of U becomes (r(i), r(j)) with r swapping 0 and 3.
ROTATED = np.array([4 * r + s for r in (3, 1, 2, 0) for s in (3, 1, 2, 0)])

# finish(y, n0, n1, c0, c1): work on the block y[n0:n1, c0:c1] of a forward pass's output
# just completed (still in cache), such as inference's batch norm and ReLU (:mod:`.conv_bn`).
Finish = Callable[[np.ndarray, int, int, int, int], None]

# Planes up to this side are transformed channels-last (one core, 16-512 channels: 0.53-0.88
# of the time of the tiles of a plane, 8 x 8 and 4 x 4; even on 16 x 16, slower on 32 x 32).
CHANNELS_LAST_MAX_SIDE = 8

# U's size from which the cores share a layer's channels rather than its images (measured
# with 2 cores and a 32 MB L3: images faster with 256 channels, 4 MB of U; channels
# faster from 384, 9 MB, at every plane size and batch tried).
CHANNEL_SPLIT_BYTES = 8 << 20


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
    flat = U.reshape(16, C_out * C_in)
    transform = WEIGHT_TRANSFORM.astype(w.dtype)

    def share(n0: int, n1: int) -> None:  # output channels n0 .. n1-1
        kernels = np.ascontiguousarray(w[n0:n1].reshape(-1, 9).T)
        np.matmul(transform, kernels, out=flat[:, n0 * C_in : n1 * C_in])

    map_shares(share, C_out, size=U.size)
    return U


def transformed(w: np.ndarray) -> np.ndarray:
    """:func:`transform_weight` of w, computed once while w keeps its values
    (:mod:`.weight_cache`): a step's forward and backward pass share it, and inference
    calls reuse it until the weights change."""
    return derived(w, "winograd U", transform_weight)


def channels_last(H: int, W: int) -> bool:
    """True when the tiles of (H, W) planes are transformed channels-last."""
    return max(H, W) <= CHANNELS_LAST_MAX_SIDE


def _products(U: np.ndarray, V: np.ndarray, rotated: bool, M: np.ndarray, last: bool) -> np.ndarray:
    """M[k] = U[k] @ V[k] for the 16 tile positions k; for dx's convolution (``rotated``),
    M[k] = U[ROTATED[k]]^T @ V[k]. Channels ``last``: the transposes, M[k] = V[k] @ U[k]^T
    and M[k] = V[k] @ U[ROTATED[k]]."""
    if not rotated:
        return np.matmul(V, U.transpose(0, 2, 1), out=M) if last else np.matmul(U, V, out=M)
    for k in range(16):
        if last:
            np.matmul(V[k], U[ROTATED[k]], out=M[k])
        else:
            np.matmul(U[ROTATED[k]].T, V[k], out=M[k])
    return M


def _tile_array(name: str, C: int, T: int, dtype: np.dtype, last: bool) -> np.ndarray:
    """Scratch for V or M: (16, C, T), or (16, T, C) with the channels ``last``."""
    return scratch(name, (16, T, C) if last else (16, C, T), dtype)


def _input_tiles(x: np.ndarray, n0: int, nb: int, V: np.ndarray, t0: int, last: bool) -> None:
    """V's tiles t0 .. for the images n0 .. n0+nb-1 of x, by the kernels of the layout."""
    if not last:
        winograd_tiles.input_tiles_kernel(x, n0, nb, V, t0)
        return
    th, tw = _tiles(*x.shape[2:])
    padded = scratch("wino_padded", (nb, 2 * th + 2, 2 * tw + 2, x.shape[1]), x.dtype)
    winograd_tiles_channels_last.padded_kernel(x, n0, nb, padded)
    winograd_tiles_channels_last.input_tiles_kernel(padded, nb, V, t0)


def _output_tiles(M: np.ndarray, y: np.ndarray, n0: int, c0: int, last: bool) -> None:
    """y[n0 + k, c0 + c] from the tiles of M, by the kernel of the layout."""
    kernels = winograd_tiles_channels_last if last else winograd_tiles
    kernels.output_tiles_kernel(M, y, n0, c0)


def _weight_gradient(dU: np.ndarray) -> np.ndarray:
    """dw (C_out, C_in, 3, 3) from dU (16, C_out, C_in): the transpose of U = kron(G, G) g."""
    _, C_out, C_in = dU.shape
    return (dU.reshape(16, C_out * C_in).T @ WEIGHT_TRANSFORM.astype(dU.dtype)).reshape(
        C_out, C_in, 3, 3
    )


def _tiles(H: int, W: int) -> tuple[int, int]:
    """Tiles down and across: one per 2x2 block of the (H, W) output, the last one cropped."""
    return (H + 1) // 2, (W + 1) // 2


def _output_gradient_tiles(dy: np.ndarray, a: int, z: int, out: np.ndarray) -> None:
    """out (16, C_out, T) = dM = kron(A, A) @ the 2x2 tiles of dy[a:z] (the transpose of
    the output transform); the missing outputs of cropped tiles get no gradient.

    (A numba kernel for it, built like :mod:`.winograd_tiles`, took 1.8 ms against 2.7
    for 32 images of 64 channels on 32 x 32 planes, but 1.1-1.9 against 0.7-1.3 on the
    smaller planes: about even over ResNet-18's layers.)"""
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


def _convolve_by_images(
    x: np.ndarray, U: np.ndarray, rotated: bool, finish: Finish | None = None
) -> np.ndarray:
    """y = the 3x3 padding-1 convolution of x (N, C_in, H, W) whose transformed weight is U
    (``rotated``: dx's convolution for the forward weight's U, see :func:`_products`),
    each core on a share of the images, in chunks; ``finish(y, a, z, 0, C_out)`` runs on
    each chunk of images a .. z-1 of y while it is in cache."""
    N, C_in, H, W = x.shape
    C_out = U.shape[2] if rotated else U.shape[1]
    L = math.prod(_tiles(H, W))
    last = channels_last(H, W)
    y = np.empty((N, C_out, H, W), dtype=x.dtype)

    def share(n0: int, n1: int) -> None:
        for a, z in image_chunks(n0, n1, 16 * max(C_in, C_out), L, x.itemsize):
            T = (z - a) * L
            V = _tile_array("wino_v", C_in, T, x.dtype, last)
            _input_tiles(x, a, z - a, V, 0, last)
            M = _products(U, V, rotated, _tile_array("wino_m", C_out, T, x.dtype, last), last)
            _output_tiles(M, y, a, 0, last)
            if finish is not None:
                finish(y, a, z, 0, C_out)

    map_shares(share, N, size=x.size * 4 + y.size)
    return y


def _all_input_tiles(x: np.ndarray) -> np.ndarray:
    """V (16, C_in, N * tiles) of the whole batch, or (16, N * tiles, C_in) with the
    channels last, the images shared across the cores."""
    N, C_in, H, W = x.shape
    L = math.prod(_tiles(H, W))
    last = channels_last(H, W)
    V = np.empty((16, N * L, C_in) if last else (16, C_in, N * L), dtype=x.dtype)

    def share(n0: int, n1: int) -> None:
        for a, z in image_chunks(n0, n1, 16 * C_in, L, x.itemsize):
            _input_tiles(x, a, z - a, V, a * L, last)

    map_shares(share, N, size=V.size)
    return V


def _convolve_by_channels(
    x: np.ndarray, U: np.ndarray, rotated: bool, finish: Finish | None = None
) -> np.ndarray:
    """:func:`_convolve_by_images`, each core on a share of the output channels: it
    multiplies its rows (or, ``rotated``, columns) of U with the whole batch's tiles
    (``finish(y, 0, N, c0, c1)`` on its channels c0 .. c1-1 at the end)."""
    N, _, H, W = x.shape
    C_out = U.shape[2] if rotated else U.shape[1]
    last = channels_last(H, W)
    V = _all_input_tiles(x)
    T = N * math.prod(_tiles(H, W))
    y = np.empty((N, C_out, H, W), dtype=x.dtype)

    def share(c0: int, c1: int) -> None:
        part = U[:, :, c0:c1] if rotated else U[:, c0:c1]
        M = _tile_array("wino_m", c1 - c0, T, x.dtype, last)
        _output_tiles(_products(part, V, rotated, M, last), y, 0, c0, last)
        if finish is not None:
            finish(y, 0, N, c0, c1)

    map_shares(share, C_out, size=V.size * 2)
    return y


def winograd_forward(x: np.ndarray, w: np.ndarray, finish: Finish | None = None) -> np.ndarray:
    """y (N, C_out, H, W) = conv2d(x, w, stride 1, padding 1) for x (N, C_in, H, W), w 3x3;
    ``finish(y, n0, n1, c0, c1)``, if given, runs on each block of y as it is completed."""
    by_channels = splits_channels(w.shape[1], w.shape[0], x.itemsize)
    convolve = _convolve_by_channels if by_channels else _convolve_by_images
    return convolve(x, transformed(w), rotated=False, finish=finish)


def winograd_backward(
    dy: np.ndarray, x: np.ndarray, w: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(dx, dw) of :func:`winograd_forward` from dy (N, C_out, H, W)."""
    if splits_channels(w.shape[1], w.shape[0], x.itemsize):
        convolve, weight_gradient = _convolve_by_channels, _weight_gradient_by_channels
    else:
        convolve, weight_gradient = _convolve_by_images, _weight_gradient_by_images
    return convolve(dy, transformed(w), rotated=True), weight_gradient(dy, x)


def _weight_gradient_by_images(dy: np.ndarray, x: np.ndarray) -> np.ndarray:
    """dw: each core sums dU[k] = dM[k] V[k]^T over its share of the images, in chunks."""
    N, C_in, H, W = x.shape
    C_out = dy.shape[1]
    L = math.prod(_tiles(H, W))
    last = channels_last(H, W)
    dtype = x.dtype

    def share(n0: int, n1: int) -> np.ndarray:  # this share's part of dU (16, C_out, C_in)
        dU = np.zeros((16, C_out, C_in), dtype=dtype)
        for a, z in image_chunks(n0, n1, 16 * max(C_in, C_out), L, dtype.itemsize):
            T = (z - a) * L
            V = _tile_array("wino_v", C_in, T, dtype, last)
            _input_tiles(x, a, z - a, V, 0, last)
            dM = scratch("wino_m", (16, C_out, T), dtype)
            _output_gradient_tiles(dy, a, z, dM)
            dU += np.matmul(dM, V if last else V.transpose(0, 2, 1))
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
    L = math.prod(_tiles(H, W))
    V = _all_input_tiles(x)
    dM = np.empty((16, C_out, N * L), dtype=x.dtype)

    def gradient_tiles(n0: int, n1: int) -> None:
        _output_gradient_tiles(dy, n0, n1, dM[:, :, n0 * L : n1 * L])

    map_shares(gradient_tiles, N, size=dM.size)
    dw = np.empty((C_out, C_in, 3, 3), dtype=x.dtype)

    V_T = V if channels_last(H, W) else V.transpose(0, 2, 1)  # (16, N * tiles, C_in)

    def share(c0: int, c1: int) -> None:
        dw[c0:c1] = _weight_gradient(np.matmul(dM[:, c0:c1], V_T))

    map_shares(share, C_out, size=V.size + dM.size)
    return dw
