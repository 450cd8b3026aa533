"""Closed questions with one numeric answer, checked with a tolerance: ``check(name, number)``."""

from __future__ import annotations

import math

import numpy as np

from nnscratch.exercises.checking import Case, Exercise, Mistake, Output
from nnscratch.nn.basic_block import BasicBlock
from nnscratch.nn.init import fans


def _one_layer_gain() -> float:
    """fan_in * Var(w) * 1/2 for w ~ U(-a, a), a = 1/sqrt(fan_in): Var = a^2 / 3, so 1/6."""
    fan_in, _ = fans((16, 16, 3, 3))
    a = 1 / math.sqrt(fan_in)
    return fan_in * (a**2 / 3) * 0.5


def _basic_block_params() -> int:
    """Counted on the library's own BasicBlock(64, 64)."""
    return BasicBlock(64, 64, rng=np.random.default_rng(0)).num_parameters()


def _question(name, title, task, answer, mistakes, rtol) -> Exercise:
    return Exercise(
        name=name,
        title=title,
        signature="a number",
        task=task,
        outputs=(Output("answer"),),
        reference=answer,
        cases=lambda: [Case("the question", {})],
        mistakes=tuple(Mistake(hint, value) for value, hint in mistakes),
        kind="number",
        run=lambda value, args: value,
        rtol=rtol,
        atol=0.0,
    )


ONE_LAYER_GAIN = _question(
    "one_layer_gain",
    "how much one plain ReLU conv layer with PyTorch's default init shrinks the gradient",
    """
Take one layer of a plain net without batch norm, z = conv(relu(z_prev)), with
C_in = C_out (so fan_in = fan_out) and PyTorch's default weight init
w ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)). z_prev is symmetric around 0, so ReLU passes about
half of its entries. In the backward pass, by what factor is the mean square of the
gradient multiplied from dz to dz_prev (E|dz_prev|^2 / E|dz|^2)? A number; 3 significant
digits are enough.
""",
    _one_layer_gain(),
    (
        (
            math.sqrt(1 / 6),
            "that is the factor on the norm |dz_prev| / |dz|; the question asks for the mean "
            "square, its square",
        ),
        (1 / 3, "ReLU passes only half of the entries: another factor 1/2"),
        (1 / 2, "Var(U(-a, a)) is a^2 / 3, not a^2"),
        (1 / 24, "Var(U(-a, a)) is a^2 / 3: the interval's width is 2a, so (2a)^2 / 12"),
        (1.0, "that is He initialisation's factor; PyTorch's default init is smaller"),
    ),
    rtol=5e-3,
)

BASIC_BLOCK_PARAMS = _question(
    "basic_block_params",
    "the number of parameters of a BasicBlock",
    """
How many trainable parameters does BasicBlock(64, 64) have: stride 1, so the shortcut is the
identity, two 3x3 convolutions without bias (batch norm follows each), and two BatchNorm2d
layers with their weight (gamma) and bias (beta)? An integer.
""",
    _basic_block_params(),
    (
        (2 * 64 * 64 * 9, "each batch norm has 2 * 64 trainable parameters: gamma and beta"),
        (
            2 * 64 * 64 * 9 + 4 * 64 + 2 * 64 * 2,
            "running_mean and running_var are buffers, not trainable parameters",
        ),
        (
            2 * 64 * 64 * 9 + 4 * 64 + 2 * 64,
            "the convolutions have no bias: batch norm's beta would cancel it",
        ),
        (64 * 64 * 9 + 2 * 64, "a BasicBlock has two convolutions and two batch norms"),
    ),
    rtol=0.0,
)
