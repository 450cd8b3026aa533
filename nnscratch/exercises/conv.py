"""Exercises: conv2d forward (PyTorch's cross-correlation) and its backward pass."""

from __future__ import annotations

import numpy as np

from nnscratch.exercises.checking import Case, Exercise, Mistake, Output
from nnscratch.exercises.im2col import (
    col2im,
    col2im_cropped_at_the_corner,
    col2im_overwriting_by_offset,
    col2im_overwriting_by_window,
    geometry_words,
    im2col,
)
from nnscratch.functional.conv import conv2d_backward as library_conv2d_backward
from nnscratch.functional.conv import conv2d_forward as library_conv2d_forward

# (x shape, C_out, KH, KW, stride, padding): batch 1, odd sizes, non-square kernels,
# C_in != C_out, stride 2, padding 0 and 1, a 1x1 kernel
GEOMETRIES = (
    ((1, 2, 5, 7), 3, 3, 2, 2, 1),
    ((2, 3, 4, 4), 3, 3, 3, 1, 1),
    ((2, 1, 6, 5), 2, 2, 3, 1, 0),
    ((3, 4, 3, 3), 2, 1, 1, 1, 0),
)


def conv2d_forward(x, w, b, stride: int, padding: int) -> np.ndarray:
    """y (N, C_out, H_out, W_out) = cross-correlation of x (N, C_in, H, W) with w, plus b."""
    return library_conv2d_forward(x, w, b, stride=stride, padding=padding)[0]


def conv2d_backward(dy, x, w, stride: int, padding: int) -> tuple:
    """(dx, dw, db) of conv2d from dy (N, C_out, H_out, W_out), as the library computes them."""
    dx, dw, _ = library_conv2d_backward(
        dy, library_conv2d_forward(x, w, stride=stride, padding=padding)[1]
    )
    return dx, dw, dy.sum(axis=(0, 2, 3))


def _cases(with_upstream: bool) -> list[Case]:
    rng = np.random.default_rng(15 + with_upstream)
    cases = []
    for x_shape, C_out, KH, KW, stride, padding in GEOMETRIES:
        point = {
            "x": rng.standard_normal(x_shape),
            "w": rng.standard_normal((C_out, x_shape[1], KH, KW)),
            "b": rng.standard_normal(C_out),
        }
        words = (
            f"{geometry_words(x_shape, KH, KW, stride, padding)}, {x_shape[1]} -> {C_out} channels"
        )
        if not with_upstream:
            cases.append(Case(words, {**point, "stride": stride, "padding": padding}))
            continue
        y = conv2d_forward(point["x"], point["w"], point["b"], stride, padding)
        dy = rng.standard_normal(y.shape)

        def loss(p, dy=dy, stride=stride, padding=padding):
            return float(np.sum(conv2d_forward(p["x"], p["w"], p["b"], stride, padding) * dy))

        args = {"dy": dy, "x": point["x"], "w": point["w"], "stride": stride, "padding": padding}
        cases.append(Case(words, args, point, loss))
    return cases


def _c(b: np.ndarray) -> np.ndarray:
    """A per-channel vector (C_out,) shaped to broadcast against (N, C_out, H_out, W_out)."""
    return b[:, None, None]


def _flipped(w: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(w[:, :, ::-1, ::-1])


def _padded_on_one_side(x, w, b, stride, padding):
    shifted = np.pad(x, ((0, 0), (0, 0), (0, 2 * padding), (0, 2 * padding)))
    return conv2d_forward(shifted, w, b, stride, 0)


def _untransposed(y: np.ndarray) -> np.ndarray:
    """y (N, C_out, H_out, W_out) as Y = W2 @ cols (C_out, N*H_out*W_out) reshaped straight
    to (N, C_out, H_out, W_out), without moving the batch axis to the front."""
    return y.transpose(1, 0, 2, 3).reshape(y.shape)


def _untransposed_backward(dy, x, w, stride, padding):
    """dx, dw and db by im2col from dY = dy.reshape(C_out, -1), which mixes images and
    channels (db as dY's row sums; the right db where the batch is 1)."""
    C_out, _, KH, KW = w.shape
    dY = dy.reshape(C_out, -1)
    dw = (dY @ im2col(x, KH, KW, stride, padding).T).reshape(w.shape)
    dx = col2im(w.reshape(C_out, -1).T @ dY, x.shape, KH, KW, stride, padding)
    return dx, dw, dY.sum(axis=1)


def _with(position: int, gradient):
    """A conv2d_backward that is right except for output ``position`` (0 dx, 1 dw, 2 db)."""

    def backward(dy, x, w, stride, padding):
        grads = list(conv2d_backward(dy, x, w, stride, padding))
        grads[position] = gradient(dy, x, w, stride, padding)
        return tuple(grads)

    return backward


def _dx_by(col2im_variant):
    """dx through a (mistaken) col2im: dcols = w2.T @ dY, then the variant."""

    def dx(dy, x, w, stride, padding):
        C_out = w.shape[0]
        dcols = w.reshape(C_out, -1).T @ dy.transpose(1, 0, 2, 3).reshape(C_out, -1)
        return col2im_variant(dcols, x.shape, *w.shape[2:], stride, padding)

    return dx


CONV2D_FORWARD = Exercise(
    name="conv2d_forward",
    title="2-D convolution as PyTorch computes it (cross-correlation)",
    signature="conv2d_forward(x, w, b, stride, padding) -> y",
    task="""
x is (N, C_in, H, W), w is (C_out, C_in, KH, KW) (PyTorch's layout), b is (C_out,);
stride and padding are ints, the same in both directions. y is (N, C_out, H_out, W_out) with
    y[n, o, p, q] = b[o] + sum over c, i, j of w[o, c, i, j] * x_pad[n, c, p*stride + i, q*stride + j]
(cross-correlation: the kernel is not flipped), x_pad being x with `padding` zeros on every
side, H_out = (H + 2*padding - KH) // stride + 1 and likewise W_out. Loops are fine;
im2col and one matrix product are faster.
""",
    outputs=(Output("y"),),
    reference=conv2d_forward,
    cases=lambda: _cases(with_upstream=False),
    mistakes=(
        Mistake(
            "you computed a true convolution, with the kernel flipped; PyTorch's conv2d (and "
            "this one) is cross-correlation: w[o, c, i, j] meets x_pad[n, c, p*stride + i, ...]",
            lambda x, w, b, stride, padding: conv2d_forward(x, _flipped(w), b, stride, padding),
        ),
        Mistake(
            "the bias is missing: add b[o] to every position of output channel o",
            lambda x, w, b, stride, padding: conv2d_forward(x, w, None, stride, padding),
        ),
        Mistake(
            "the padding goes on every side: `padding` zeros above and below, left and right, "
            "not 2*padding at the bottom and right",
            _padded_on_one_side,
        ),
        *(
            Mistake(
                "images and channels are mixed up: W2 @ cols has a row per output channel and "
                "a column per (n, p, q), so reshaped straight to (N, C_out, H_out, W_out) "
                "the batch axis is in the wrong place",
                mistaken,
            )
            for mistaken in (
                lambda x, w, b, stride, padding: _untransposed(
                    conv2d_forward(x, w, b, stride, padding)
                ),
                lambda x, w, b, stride, padding: (
                    _untransposed(conv2d_forward(x, w, None, stride, padding)) + _c(b)
                ),
            )
        ),
    ),
)

CONV2D_BACKWARD = Exercise(
    name="conv2d_backward",
    title="the gradients of conv2d with respect to its input, weight and bias",
    signature="conv2d_backward(dy, x, w, stride, padding) -> (dx, dw, db)",
    task="""
The forward is conv2d_forward(x, w, b, stride, padding) (see describe("conv2d_forward"));
its cache, passed to you unpacked, is x (N, C_in, H, W), w (C_out, C_in, KH, KW), stride and
padding. dy is (N, C_out, H_out, W_out). Return dx of x's shape, dw of w's shape and db
(C_out,). Each y[n, o, p, q] read w[o, c, i, j] * x_pad[n, c, p*stride + i, q*stride + j], so
    dw[o, c, i, j] += dy[n, o, p, q] * x_pad[n, c, p*stride + i, q*stride + j]
    dx_pad[n, c, p*stride + i, q*stride + j] += dy[n, o, p, q] * w[o, c, i, j]
summed over every (n, o, p, q); dx is dx_pad without its padding; db[o] sums dy over
(n, p, q). With im2col: dw = dY @ cols.T and dx = col2im(W2.T @ dY).
""",
    outputs=(
        Output("dx", "x", gradient=True),
        Output("dw", "w", gradient=True),
        Output("db", "b", gradient=True),
    ),
    reference=conv2d_backward,
    cases=lambda: _cases(with_upstream=True),
    mistakes=(
        Mistake(
            "dx used the flipped kernel: written as scatter-adds (or col2im(W2.T @ dY)) dx "
            "uses w as it is; the flip only appears if you write dx as a convolution of dy",
            _with(0, lambda dy, x, w, s, p: conv2d_backward(dy, x, _flipped(w), s, p)[0]),
        ),
        Mistake(
            "dw is flipped: dw[o, c, i, j] pairs dy[n, o, p, q] with x_pad[n, c, p*stride + i, "
            "q*stride + j], offset (i, j) as it is",
            _with(1, lambda dy, x, w, s, p: _flipped(conv2d_backward(dy, x, w, s, p)[1])),
        ),
        Mistake(
            "dw sums over the batch; it is not the mean (a loss that averages has already put "
            "its 1/N into dy)",
            _with(1, lambda dy, x, w, s, p: conv2d_backward(dy, x, w, s, p)[1] / len(x)),
        ),
        Mistake(
            "the bias gradient is missing: b[o] is added at every position of channel o, so "
            "each of them contributes its dy to db[o]",
            _with(2, lambda dy, x, w, s, p: np.zeros(w.shape[0])),
        ),
        Mistake(
            "db sums dy over the batch and every position (each adds b[o] once); it is not "
            "the mean",
            _with(2, lambda dy, x, w, s, p: dy.mean(axis=(0, 2, 3))),
        ),
        Mistake(
            "images and channels are mixed up: dy is (N, C_out, H_out, W_out), batch first, "
            "while dY needs a row per output channel and a column per (n, p, q) as im2col's "
            "columns; reshaping dy straight to (C_out, -1) puts the batch in the wrong place",
            _untransposed_backward,
        ),
        *(
            Mistake(
                "a pixel in several windows collects every term: col2im must add (+=), not "
                "overwrite (=)",
                _with(0, _dx_by(overwriting)),
            )
            for overwriting in (col2im_overwriting_by_window, col2im_overwriting_by_offset)
        ),
        Mistake(
            "off by the padding: x sits in the middle of x_pad, so dx is the middle of "
            "dx_pad, not its top-left corner",
            _with(0, _dx_by(col2im_cropped_at_the_corner)),
        ),
    ),
)
