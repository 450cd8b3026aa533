"""Exercise: the backward pass of a residual block, out = relu(main(x) + shortcut(x)):
the `+` fans the same gradient out to both branches, and their input gradients add up."""

from __future__ import annotations

import math

import numpy as np

from nnscratch.exercises.checking import Case, Exercise, Mistake, Output, image_words
from nnscratch.functional.activation import relu_backward, relu_forward
from nnscratch.functional.conv import conv2d_backward, conv2d_forward
from nnscratch.functional.residual import residual_backward


class _Block:
    """A small block on the readable ops: main = conv3x3(stride) -> relu -> conv3x3, and the
    identity shortcut or a 1x1 projection with the same stride."""

    def __init__(self, C_in: int, C_out: int, stride: int, rng: np.random.Generator):
        def he(*shape):
            return rng.standard_normal(shape) * math.sqrt(2 / math.prod(shape[1:]))

        self.stride = stride
        self.w1, self.w2 = he(C_out, C_in, 3, 3), he(C_out, C_out, 3, 3)
        self.projection = he(C_out, C_in, 1, 1) if stride != 1 or C_in != C_out else None

    def branches(self, x: np.ndarray):
        """main(x), shortcut(x) and the two backward functions at this x."""
        h, conv1 = conv2d_forward(x, self.w1, stride=self.stride, padding=1)
        h, relu = relu_forward(h)
        main, conv2 = conv2d_forward(h, self.w2, padding=1)

        def main_backward(d):
            dh = relu_backward(conv2d_backward(d, conv2)[0], relu)
            return conv2d_backward(dh, conv1)[0]

        if self.projection is None:
            return main, x, main_backward, lambda d: d
        shortcut, projection = conv2d_forward(x, self.projection, stride=self.stride)
        return main, shortcut, main_backward, lambda d: conv2d_backward(d, projection)[0]

    def forward(self, x: np.ndarray) -> np.ndarray:
        main, shortcut, _, _ = self.branches(x)
        return relu_forward(main + shortcut)[0]


def _cases() -> list[Case]:
    rng = np.random.default_rng(22)
    cases = []
    for x_shape, C_out, stride in (
        ((2, 3, 5, 5), 3, 1),
        ((1, 2, 6, 5), 4, 2),
        ((2, 2, 3, 4), 2, 1),
    ):
        block = _Block(x_shape[1], C_out, stride, rng)
        x = rng.standard_normal(x_shape)
        main, shortcut, main_backward, shortcut_backward = block.branches(x)
        out = relu_forward(main + shortcut)[0]
        dy = rng.standard_normal(out.shape)
        kind = "identity shortcut" if block.projection is None else "1x1 projection shortcut"
        args = {
            "dy": dy,
            "out": out,
            "main_backward": main_backward,
            "shortcut_backward": shortcut_backward,
        }
        cases.append(
            Case(
                f"{image_words(x_shape)}, {x_shape[1]} -> {C_out} channels, stride {stride}, {kind}",
                args,
                {"x": x},
                lambda p, block=block, dy=dy: float(np.sum(block.forward(p["x"]) * dy)),
            )
        )
    return cases


RESIDUAL_BACKWARD = Exercise(
    name="residual_backward",
    title="the backward pass of a residual block: a fan-out and a sum",
    signature="residual_backward(dy, out, main_backward, shortcut_backward) -> dx",
    task="""
The block computed out = relu(main(x) + shortcut(x)), where main is the residual branch
(conv, relu, conv here) and shortcut the identity or a 1x1 projection. dy has out's shape;
out (the cache) is the block's output. main_backward(d) and shortcut_backward(d) take the
gradient d at the output of the `+` and return each branch's gradient with respect to x.
Return dx, of x's shape. relu'(0) = 0, so the gradient passes where out > 0. It takes a
few lines; do not modify dy.
""",
    outputs=(Output("dx", "x", gradient=True),),
    reference=residual_backward,
    cases=_cases,
    mistakes=(
        Mistake(
            "dx is only the residual branch's gradient: the `+` sends d into both branches, "
            "and x receives a gradient through each",
            lambda dy, out, main, shortcut: main(relu_backward(dy, out)),
        ),
        Mistake(
            "dx is only the shortcut's gradient: the `+` sends d into both branches, and x "
            "receives a gradient through each",
            lambda dy, out, main, shortcut: shortcut(relu_backward(dy, out)),
        ),
        Mistake(
            "the shortcut gets the masked gradient too: the ReLU comes after the `+`, so both "
            "branches see the gradient after its mask",
            lambda dy, out, main, shortcut: main(relu_backward(dy, out)) + shortcut(dy),
        ),
        Mistake(
            "the ReLU after the `+` has a backward too, which stops the gradient where out is "
            "0 (relu'(0) = 0); out is the ReLU's output, so out >= 0 holds everywhere and "
            "masks nothing",
            lambda dy, out, main, shortcut: main(dy) + shortcut(dy),
        ),
        Mistake(
            "the two gradients add up; they are not averaged: out depends on x through both "
            "branches, fully",
            lambda dy, out, main, shortcut: (
                (main(relu_backward(dy, out)) + shortcut(relu_backward(dy, out))) / 2
            ),
        ),
    ),
)
