"""Exercise: ReLU's backward pass, with PyTorch's convention relu'(0) = 0."""

from __future__ import annotations

import numpy as np

from nnscratch.exercises.checking import Case, Exercise, Mistake, Output
from nnscratch.functional.activation import relu_backward as library_relu_backward
from nnscratch.functional.activation import relu_forward


def relu_backward(dy: np.ndarray, x: np.ndarray) -> np.ndarray:
    """dx = dy where x > 0, else 0 (the library's op, whose cache is relu(x))."""
    return library_relu_backward(dy, relu_forward(x)[0])


def _cases() -> list[Case]:
    rng = np.random.default_rng(12)
    cases = []
    for words, x, smooth in (
        ("a (2, 3, 4, 5) input away from 0", rng.standard_normal((2, 3, 4, 5)) + 0.0, True),
        ("a (1, 7) input with exact zeros", rng.integers(-2, 3, (1, 7)).astype(float), False),
        ("a (3, 2, 1, 5) input with exact zeros", rng.integers(-1, 2, (3, 2, 1, 5)) * 0.5, False),
    ):
        if smooth:
            x = np.where(np.abs(x) < 0.1, 0.5, x)  # finite differences never cross the kink
        dy = rng.standard_normal(x.shape)
        loss = (lambda p, dy=dy: float(np.sum(np.maximum(p["x"], 0) * dy))) if smooth else None
        cases.append(Case(words, {"dy": dy, "x": x}, {"x": x}, loss))
    return cases


RELU_BACKWARD = Exercise(
    name="relu_backward",
    title="the backward pass of ReLU, y = max(x, 0)",
    signature="relu_backward(dy, x) -> dx",
    task="""
dy is the gradient of the loss with respect to y = max(x, 0); x is the input (the cache),
of any shape; dx has x's shape. At the kink the convention is PyTorch's: relu'(0) = 0,
so an input that is exactly 0 passes no gradient. Do not modify dy.
""",
    outputs=(Output("dx", "x", gradient=True),),
    reference=relu_backward,
    cases=_cases,
    mistakes=(
        Mistake(
            "relu'(0) is 0 (PyTorch's convention): keep dy where x > 0, not x >= 0",
            lambda dy, x: np.where(x >= 0, dy, 0.0),
        ),
        Mistake(
            "that is relu'(x) alone: the chain rule multiplies it by the upstream gradient dy",
            lambda dy, x: (x > 0).astype(float),
        ),
        Mistake(
            "the mask comes from the input x (where the forward was linear), not from the sign "
            "of dy",
            lambda dy, x: np.where(dy > 0, dy, 0.0),
        ),
        Mistake(
            "dx is dy times the derivative of relu (0 or 1), not times relu(x) itself",
            lambda dy, x: dy * np.maximum(x, 0),
        ),
    ),
)
