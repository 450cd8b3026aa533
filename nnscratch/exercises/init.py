"""Exercise: the standard deviation of He (Kaiming) normal initialisation."""

from __future__ import annotations

import math

from nnscratch.exercises.checking import Case, Exercise, Mistake, Output
from nnscratch.nn.init import fans


def he_std(shape: tuple[int, ...], mode: str) -> float:
    """sqrt(2 / fan), fan = fan_in or fan_out of a weight of shape (out, in, *kernel)."""
    fan_in, fan_out = fans(shape)
    return math.sqrt(2.0 / {"fan_in": fan_in, "fan_out": fan_out}[mode])


def _cases() -> list[Case]:
    cases = []
    for shape, mode in (
        ((64, 3, 7, 7), "fan_out"),
        ((16, 8, 3, 3), "fan_in"),
        ((10, 512), "fan_in"),
        ((128, 64, 1, 1), "fan_out"),
        ((32, 16, 3, 5), "fan_in"),
    ):
        kind = "conv weight" if len(shape) == 4 else "linear weight"
        cases.append(Case(f"{kind} {shape}, mode {mode}", {"shape": shape, "mode": mode}))
    return cases


def _with_fans(std_of_fans):
    """A he_std that computes ``std_of_fans(fan, other_fan)`` from the mode's fan."""

    def std(shape, mode):
        fan_in, fan_out = fans(shape)
        fan, other = (fan_in, fan_out) if mode == "fan_in" else (fan_out, fan_in)
        return std_of_fans(fan, other)

    return std


HE_STD = Exercise(
    name="he_std",
    title="the standard deviation of He (Kaiming) normal initialisation",
    signature="he_std(shape, mode) -> std",
    task="""
shape is a weight's shape: (C_out, C_in, KH, KW) for a conv, (out_features, in_features)
for a linear layer. mode is "fan_in" or "fan_out", with
    fan_in = C_in * KH * KW,  fan_out = C_out * KH * KW      (in, out features for linear)
Return the float std of He et al. (2015)'s normal initialisation, w ~ N(0, std^2): the std
that keeps the mean square of ReLU activations (fan_in) or of their gradients (fan_out)
from shrinking layer to layer. torchvision's ResNet uses mode="fan_out".
""",
    outputs=(Output("std"),),
    reference=he_std,
    cases=_cases,
    mistakes=(
        Mistake(
            "fan_in and fan_out are swapped: fan_in = C_in * KH * KW (what one output reads), "
            "fan_out = C_out * KH * KW",
            lambda shape, mode: he_std(shape, {"fan_in": "fan_out", "fan_out": "fan_in"}[mode]),
        ),
        Mistake(
            "that is LeCun's std: ReLU zeroes half of its inputs, which halves the mean "
            "square, and He's initialisation makes up for that",
            _with_fans(lambda fan, other: math.sqrt(1 / fan)),
        ),
        Mistake(
            "that is the variance 2 / fan; the standard deviation is its square root",
            _with_fans(lambda fan, other: 2 / fan),
        ),
        Mistake(
            "the fan counts the kernel too: fan_in = C_in * KH * KW, not C_in",
            lambda shape, mode: math.sqrt(2 / shape[1 if mode == "fan_in" else 0]),
        ),
        Mistake(
            "that is Xavier's (Glorot's) sqrt(2 / (fan_in + fan_out)); He uses one fan",
            _with_fans(lambda fan, other: math.sqrt(2 / (fan + other))),
        ),
    ),
)
