"""Exercise: the forward and backward of a fully connected layer, y = x @ w.T + b."""

from __future__ import annotations

import numpy as np

from nnscratch.exercises.checking import Case, Exercise, Mistake, Output, run_pair
from nnscratch.functional.linear import linear_backward, linear_forward


def _cases() -> list[Case]:
    rng = np.random.default_rng(11)
    cases = []
    for N, n_in, n_out in ((1, 3, 2), (4, 5, 5), (3, 2, 4)):
        point = {
            "x": rng.standard_normal((N, n_in)),
            "w": rng.standard_normal((n_out, n_in)),
            "b": rng.standard_normal(n_out),
        }
        dy = rng.standard_normal((N, n_out))
        cases.append(
            Case(
                f"batch {N}, {n_in} -> {n_out} features",
                {**point, "dy": dy},
                point,
                lambda p, dy=dy: float(np.sum(linear_forward(p["x"], p["w"], p["b"])[0] * dy)),
            )
        )
    return cases


def _forward_without_bias(x, w, b):
    return x @ w.T, linear_forward(x, w, b)[1]


def _replace(position: int, gradient):
    """A backward that is right except for the gradient at ``position`` (0 dx, 1 dw, 2 db)."""

    def backward(dy, cache):
        grads = list(linear_backward(dy, cache))
        grads[position] = gradient(dy, cache.x, cache.w)
        return tuple(grads)

    return backward


LINEAR = Exercise(
    name="linear",
    title="forward and backward of a fully connected layer",
    signature=("linear_forward(x, w, b) -> (y, cache)\nlinear_backward(dy, cache) -> (dx, dw, db)"),
    task="""
x is (N, in_features), w is (out_features, in_features) (PyTorch's layout), b is
(out_features,). The forward computes y = x @ w.T + b, shape (N, out_features), and a cache
of your choice (for instance (x, w)): the check passes it only to your backward.
The backward takes dy (N, out_features), the gradient of the loss with respect to y, and
returns dx (N, in_features), dw (out_features, in_features) and db (out_features,).
Do not modify the inputs.
""",
    outputs=(
        Output("y"),
        Output("dx", "x", gradient=True),
        Output("dw", "w", gradient=True),
        Output("db", "b", gradient=True),
    ),
    reference=(linear_forward, linear_backward),
    cases=_cases,
    kind="pair",
    run=run_pair(("x", "w", "b"), "dy", ("dx", "dw", "db")),
    mistakes=(
        Mistake(
            "the forward forgot the bias: y = x @ w.T + b",
            (_forward_without_bias, linear_backward),
        ),
        Mistake(
            "dx has x's shape (N, in_features): each x[n, i] reached every y[n, o] through "
            "w[o, i], so dx sums over the output features; check w's layout (out, in)",
            (linear_forward, _replace(0, lambda dy, x, w: dy @ w.T)),
        ),
        Mistake(
            "dw has w's layout (out_features, in_features); x.T @ dy is its transpose",
            (linear_forward, _replace(1, lambda dy, x, w: x.T @ dy)),
        ),
        Mistake(
            "db sums dy over the batch (every sample adds its share); it is not the mean",
            (linear_forward, _replace(2, lambda dy, x, w: dy.mean(axis=0))),
        ),
        Mistake(
            "no 1/N in a layer's backward: dw sums over the batch, and a loss that averages "
            "has already put its 1/N into dy",
            (linear_forward, _replace(1, lambda dy, x, w: dy.T @ x / len(x))),
        ),
        Mistake(
            "the bias gradient is missing: y = x @ w.T + b adds b to every row, so every "
            "sample contributes to db",
            (linear_forward, _replace(2, lambda dy, x, w: np.zeros(w.shape[0]))),
        ),
    ),
)
