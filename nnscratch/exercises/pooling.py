"""Exercises: the backward passes of max pooling (with ties) and global average pooling."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from nnscratch.exercises.checking import Case, Exercise, Mistake, Output, image_words
from nnscratch.functional.pooling import (
    global_avg_pool2d_backward,
    global_avg_pool2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
)


def max_pool_backward(dy, x, kernel_size: int, stride: int) -> np.ndarray:
    """dx (N, C, H, W): each dy entry goes to the first maximum of its window."""
    return max_pool2d_backward(dy, max_pool2d_forward(x, kernel_size, stride)[1])


def global_avg_pool_backward(dy, x_shape) -> np.ndarray:
    """dx[n, c, h, w] = dy[n, c] / (H * W)."""
    return global_avg_pool2d_backward(dy, tuple(x_shape))


def _max_pool_cases() -> list[Case]:
    rng = np.random.default_rng(17)
    cases = []
    for x_shape, kernel_size, stride, ties in (
        ((2, 3, 4, 6), 2, 2, False),
        ((1, 2, 7, 5), 3, 2, False),  # overlapping windows; the last row and column unused
        ((2, 2, 4, 4), 2, 2, True),
        ((1, 3, 5, 5), 3, 2, True),  # overlapping windows sharing a tied maximum
    ):
        if ties:
            x = rng.integers(0, 3, x_shape).astype(float)
        else:  # distinct values, far apart: finite differences never change a winner
            x = rng.permutation(np.prod(x_shape)).reshape(x_shape) * 0.1
        y = max_pool2d_forward(x, kernel_size, stride)[0]
        dy = rng.standard_normal(y.shape)

        def loss(p, dy=dy, kernel_size=kernel_size, stride=stride):
            return float(np.sum(max_pool2d_forward(p["x"], kernel_size, stride)[0] * dy))

        words = f"{image_words(x_shape)}, {kernel_size}x{kernel_size} window, stride {stride}"
        words += ", with ties" if ties else ""
        args = {"dy": dy, "x": x, "kernel_size": kernel_size, "stride": stride}
        cases.append(Case(words, args, {"x": x}, None if ties else loss))
    return cases


def _by_windows(
    winners: Callable[[np.ndarray], np.ndarray], *, add: bool = True, times_dy: bool = True
) -> Callable:
    """A max-pool backward that loops over windows; ``winners(window)`` is the boolean mask
    of the elements that receive the window's gradient (or, with ``add``, their shares)."""

    def backward(dy, x, kernel_size, stride):
        dx = np.zeros_like(x)
        for n, c, p, q in np.ndindex(*dy.shape):
            rows = slice(p * stride, p * stride + kernel_size)
            cols = slice(q * stride, q * stride + kernel_size)
            mask = winners(x[n, c, rows, cols])
            g = dy[n, c, p, q] if times_dy else 1.0
            if add:
                dx[n, c, rows, cols] += mask * g
            else:
                dx[n, c, rows, cols][mask] = g
        return dx

    return backward


def _first_maximum(window: np.ndarray) -> np.ndarray:
    mask = np.zeros(window.shape, dtype=bool)
    mask[np.unravel_index(np.argmax(window), window.shape)] = True
    return mask


def _last_maximum(window: np.ndarray) -> np.ndarray:
    return _first_maximum(window[::-1, ::-1])[::-1, ::-1]


MAX_POOL_BACKWARD = Exercise(
    name="max_pool_backward",
    title="the backward pass of max pooling, ties included",
    signature="max_pool_backward(dy, x, kernel_size, stride) -> dx",
    task="""
The forward took the maximum of every kernel_size x kernel_size window of x (N, C, H, W),
the windows starting every `stride` pixels, no padding: y is (N, C, H_out, W_out) with
H_out = (H - kernel_size) // stride + 1. dy has y's shape; dx has x's shape.
Each dy[n, c, p, q] goes to the one element that won its window. A tie goes to the first
maximum in row-major order (as np.argmax picks it, and as PyTorch does), so exactly one
element per window receives the gradient. Windows may overlap (stride < kernel_size): an
element that wins several windows receives the sum of their gradients.
""",
    outputs=(Output("dx", "x", gradient=True),),
    reference=max_pool_backward,
    cases=_max_pool_cases,
    mistakes=(
        Mistake(
            "with ties, only one element gets the gradient: the first maximum in row-major "
            "order (np.argmax), not every element equal to the maximum",
            _by_windows(lambda window: window == window.max()),
        ),
        Mistake(
            "with ties, one element gets the whole gradient: the first maximum in row-major "
            "order (np.argmax); it is not shared among the tied elements",
            _by_windows(lambda window: (window == window.max()) / np.sum(window == window.max())),
        ),
        Mistake(
            "a tie goes to the first maximum in row-major order (np.argmax), not the last",
            _by_windows(_last_maximum),
        ),
        Mistake(
            "an element that wins two overlapping windows receives both gradients: add (+=), "
            "do not overwrite (=)",
            _by_windows(_first_maximum, add=False),
        ),
        Mistake(
            "the winner receives the upstream gradient dy[n, c, p, q], not 1",
            _by_windows(_first_maximum, times_dy=False),
        ),
    ),
)


def _average_pool_cases() -> list[Case]:
    rng = np.random.default_rng(18)
    cases = []
    for x_shape in ((2, 3, 4, 5), (1, 2, 3, 3), (3, 1, 2, 1)):
        dy = rng.standard_normal(x_shape[:2])
        cases.append(
            Case(
                image_words(x_shape),
                {"dy": dy, "x_shape": x_shape},
                {"x": rng.standard_normal(x_shape)},
                lambda p, dy=dy: float(np.sum(global_avg_pool2d_forward(p["x"])[0] * dy)),
            )
        )
    return cases


def _spread(dy: np.ndarray, x_shape, divisor: int) -> np.ndarray:
    return np.broadcast_to((dy / divisor)[:, :, None, None], x_shape).copy()


GLOBAL_AVG_POOL_BACKWARD = Exercise(
    name="global_avg_pool_backward",
    title="the backward pass of global average pooling",
    signature="global_avg_pool_backward(dy, x_shape) -> dx",
    task="""
The forward was y[n, c] = mean over (h, w) of x[n, c, h, w]: (N, C, H, W) -> (N, C).
dy is (N, C); x_shape is the tuple (N, C, H, W), which is all the cache holds; dx has that
shape.
""",
    outputs=(Output("dx", "x", gradient=True),),
    reference=global_avg_pool_backward,
    cases=_average_pool_cases,
    mistakes=(
        Mistake(
            "divide by H*W: each pixel's share of the mean is 1/(H*W)",
            lambda dy, x_shape: _spread(dy, x_shape, 1),
        ),
        Mistake(
            "divide by H*W only: the mean runs over the pixels of one image and channel, not "
            "over the batch",
            lambda dy, x_shape: _spread(dy, x_shape, x_shape[0] * x_shape[2] * x_shape[3]),
        ),
        Mistake(
            "divide by H*W, the number of pixels, not by H alone",
            lambda dy, x_shape: _spread(dy, x_shape, x_shape[2]),
        ),
    ),
)
