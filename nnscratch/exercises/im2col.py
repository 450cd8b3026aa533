"""Exercises: im2col, which turns convolution into one matrix product, and its transpose col2im.

Rows of the column matrix are indexed (c, i, j), columns (n, p, q), both in row-major order:

    cols[(c*KH + i)*KW + j, (n*H_out + p)*W_out + q] = x_pad[n, c, p*s + i, q*s + j]
"""

from __future__ import annotations

import numpy as np

from nnscratch.exercises.checking import Case, Exercise, Mistake, Output, image_words
from nnscratch.functional.conv import ConvGeometry
from nnscratch.functional.conv import col2im as library_col2im
from nnscratch.functional.conv import im2col as library_im2col

# (x shape, KH, KW, stride, padding): odd sizes, a non-square kernel, stride 2, padding 0 and 1
GEOMETRIES = (
    ((1, 1, 4, 4), 2, 2, 1, 0),
    ((2, 3, 5, 7), 3, 2, 2, 1),
    ((2, 2, 6, 5), 3, 3, 1, 1),
    ((1, 2, 3, 4), 1, 3, 1, 0),
)


def geometry(x_shape, KH: int, KW: int, stride: int, padding: int) -> ConvGeometry:
    """The library's geometry record: H_out = (H + 2*padding - KH) // stride + 1, same for W."""
    H, W = x_shape[2:]
    H_out = (H + 2 * padding - KH) // stride + 1
    W_out = (W + 2 * padding - KW) // stride + 1
    return ConvGeometry(KH, KW, stride, stride, padding, padding, H_out, W_out)


def geometry_words(x_shape, KH: int, KW: int, stride: int, padding: int) -> str:
    """'batch 2, 3 channels, 5x7 image, 3x2 kernel, stride 2, padding 1'."""
    return f"{image_words(x_shape)}, {KH}x{KW} kernel, stride {stride}, padding {padding}"


def im2col(x: np.ndarray, KH: int, KW: int, stride: int, padding: int) -> np.ndarray:
    """Every receptive field of x (N, C, H, W) as a column: (C*KH*KW, N*H_out*W_out)."""
    return library_im2col(x, geometry(x.shape, KH, KW, stride, padding))


def col2im(dcols: np.ndarray, x_shape, KH: int, KW: int, stride: int, padding: int) -> np.ndarray:
    """Add every column of dcols back onto the pixels it was copied from: (N, C, H, W)."""
    return library_col2im(dcols, tuple(x_shape), geometry(x_shape, KH, KW, stride, padding))


def _im2col_cases() -> list[Case]:
    rng = np.random.default_rng(13)
    return [
        Case(
            geometry_words(*g),
            {
                "x": rng.standard_normal(g[0]),
                "KH": g[1],
                "KW": g[2],
                "stride": g[3],
                "padding": g[4],
            },
        )
        for g in GEOMETRIES
    ]


def _col2im_cases() -> list[Case]:
    rng = np.random.default_rng(14)
    cases = []
    for x_shape, KH, KW, stride, padding in GEOMETRIES:
        g = geometry(x_shape, KH, KW, stride, padding)
        C, N = x_shape[1], x_shape[0]
        dcols = rng.standard_normal((C * KH * KW, N * g.H_out * g.W_out))
        cases.append(
            Case(
                geometry_words(x_shape, KH, KW, stride, padding),
                {
                    "dcols": dcols,
                    "x_shape": x_shape,
                    "KH": KH,
                    "KW": KW,
                    "stride": stride,
                    "padding": padding,
                },
                {"x": rng.standard_normal(x_shape)},
                lambda p, g=g, dcols=dcols: float(np.sum(library_im2col(p["x"], g) * dcols)),
            )
        )
    return cases


def _reorder_rows(cols: np.ndarray, C: int, KH: int, KW: int, order: tuple[int, ...]) -> np.ndarray:
    """Rows indexed (c, i, j) re-indexed in another order of the three, e.g. (i, j, c)."""
    return cols.reshape(C, KH, KW, -1).transpose(*order, 3).reshape(cols.shape)


def _rows_channel_last(x, KH, KW, stride, padding):
    return _reorder_rows(im2col(x, KH, KW, stride, padding), x.shape[1], KH, KW, (1, 2, 0))


def _rows_column_major(x, KH, KW, stride, padding):
    return _reorder_rows(im2col(x, KH, KW, stride, padding), x.shape[1], KH, KW, (0, 2, 1))


def _batch_last_columns(x, KH, KW, stride, padding):
    g = geometry(x.shape, KH, KW, stride, padding)
    cols = im2col(x, KH, KW, stride, padding).reshape(-1, x.shape[0], g.H_out, g.W_out)
    return cols.transpose(0, 2, 3, 1).reshape(cols.shape[0], -1)


def _padded_on_one_side(x, KH, KW, stride, padding):
    shifted = np.pad(x, ((0, 0), (0, 0), (0, 2 * padding), (0, 2 * padding)))
    return im2col(shifted, KH, KW, stride, 0)


def _col2im_rows_channel_last(dcols, x_shape, KH, KW, stride, padding):
    reordered = dcols.reshape(KH, KW, x_shape[1], -1).transpose(2, 0, 1, 3).reshape(dcols.shape)
    return col2im(reordered, x_shape, KH, KW, stride, padding)


def col2im_overwriting_by_offset(dcols, x_shape, KH, KW, stride, padding):
    """col2im with `=` where `+=` belongs, looping over kernel offsets (i, j)."""
    g = geometry(x_shape, KH, KW, stride, padding)
    N, C, H, W = x_shape
    d = dcols.reshape(C, KH, KW, N, g.H_out, g.W_out)
    dx_pad = np.zeros((N, C, H + 2 * padding, W + 2 * padding))
    for i in range(KH):
        for j in range(KW):
            rows = slice(i, i + stride * g.H_out, stride)
            cols = slice(j, j + stride * g.W_out, stride)
            dx_pad[:, :, rows, cols] = d[:, i, j].transpose(1, 0, 2, 3)
    return dx_pad[:, :, padding : padding + H, padding : padding + W]


def col2im_overwriting_by_window(dcols, x_shape, KH, KW, stride, padding):
    """col2im with `=` where `+=` belongs, looping over windows (n, p, q)."""
    g = geometry(x_shape, KH, KW, stride, padding)
    N, C, H, W = x_shape
    d = dcols.reshape(C, KH, KW, N, g.H_out, g.W_out)
    dx_pad = np.zeros((N, C, H + 2 * padding, W + 2 * padding))
    for n, p, q in np.ndindex(N, g.H_out, g.W_out):
        rows = slice(p * stride, p * stride + KH)
        cols = slice(q * stride, q * stride + KW)
        dx_pad[n, :, rows, cols] = d[:, :, :, n, p, q]
    return dx_pad[:, :, padding : padding + H, padding : padding + W]


def col2im_cropped_at_the_corner(dcols, x_shape, KH, KW, stride, padding):
    """col2im that crops the padded image's top-left corner instead of its middle."""
    H, W = x_shape[2:]
    grown = (*x_shape[:2], H + 2 * padding, W + 2 * padding)
    return col2im(dcols, grown, KH, KW, stride, 0)[:, :, :H, :W]


_LAYOUT = """
Rows are indexed (c, i, j) and columns (n, p, q), each in row-major order:
    cols[(c*KH + i)*KW + j, (n*H_out + p)*W_out + q] = x_pad[n, c, p*stride + i, q*stride + j]
where x_pad is x with `padding` zeros on every side (top, bottom, left, right) and
H_out = (H + 2*padding - KH) // stride + 1, W_out = (W + 2*padding - KW) // stride + 1.
"""

IM2COL = Exercise(
    name="im2col",
    title="every receptive field of the input as one column of a matrix",
    signature="im2col(x, KH, KW, stride, padding) -> cols",
    task="x is (N, C, H, W); cols is (C*KH*KW, N*H_out*W_out). stride and padding are ints.\n"
    + _LAYOUT
    + "With it, conv2d is one product: w.reshape(C_out, -1) @ cols.",
    outputs=(Output("cols"),),
    reference=im2col,
    cases=_im2col_cases,
    mistakes=(
        Mistake(
            "your rows are ordered (i, j, c), channel last; the library's are (c, i, j), so "
            "that w.reshape(C_out, -1) lines up with them",
            _rows_channel_last,
        ),
        Mistake(
            "your rows run over the kernel in column-major order (j before i); row "
            "(c*KH + i)*KW + j holds offset (i, j)",
            _rows_column_major,
        ),
        Mistake(
            "your columns put the batch last, (p, q, n); the library's are (n, p, q), image "
            "after image",
            _batch_last_columns,
        ),
        Mistake(
            "the padding goes on every side: `padding` zeros above and below, left and right, "
            "not 2*padding at the bottom and right",
            _padded_on_one_side,
        ),
    ),
)

COL2IM = Exercise(
    name="col2im",
    title="the transpose of im2col: columns back onto the image, adding overlaps",
    signature="col2im(dcols, x_shape, KH, KW, stride, padding) -> dx",
    task="dcols is (C*KH*KW, N*H_out*W_out), laid out as im2col's output; x_shape is "
    "(N, C, H, W); dx has that shape.\n"
    + _LAYOUT
    + "col2im is im2col's transpose: each entry of dcols is added to the pixel it was copied "
    "from, so a pixel in several windows collects several terms, and what falls on the "
    "padding is dropped. dx is the gradient of sum(im2col(x) * dcols) with respect to x.",
    outputs=(Output("dx", "x", gradient=True),),
    reference=col2im,
    cases=_col2im_cases,
    mistakes=(
        *(
            Mistake(
                "a pixel that lies in several windows must collect every term: add (+=) into "
                "dx, do not overwrite (=)",
                overwriting,
            )
            for overwriting in (col2im_overwriting_by_window, col2im_overwriting_by_offset)
        ),
        Mistake(
            "off by the padding: after adding into the padded image, keep its middle, where "
            "x sat, not its top-left corner",
            col2im_cropped_at_the_corner,
        ),
        Mistake(
            "your rows are read as (i, j, c), channel last; im2col's rows are (c, i, j)",
            _col2im_rows_channel_last,
        ),
    ),
)
