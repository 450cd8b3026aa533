"""Weight initialisations, each returning a new array drawn from an explicit generator.

fan_in = C_in * KH * KW and fan_out = C_out * KH * KW for a conv weight
(C_out, C_in, KH, KW); in and out features for a linear weight (out, in).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np


def fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight of shape (out, in, *kernel)."""
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def kaiming_normal(
    shape: tuple[int, ...], rng: np.random.Generator, mode: str = "fan_out", dtype=np.float32
) -> np.ndarray:
    """He et al. (2015): N(0, 2 / fan), the variance that keeps ReLU signals from shrinking.

    torchvision's ResNet uses ``mode="fan_out"`` (preserves the backward signal).
    """
    fan_in, fan_out = fans(shape)
    fan = {"fan_in": fan_in, "fan_out": fan_out}[mode]
    return (rng.standard_normal(shape) * math.sqrt(2.0 / fan)).astype(dtype)


def xavier_uniform(
    shape: tuple[int, ...], rng: np.random.Generator, dtype=np.float32
) -> np.ndarray:
    """Glorot & Bengio (2010): U(-a, a) with a = sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = fans(shape)
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


def torch_default_uniform(
    shape: tuple[int, ...], fan_in: int, rng: np.random.Generator, dtype=np.float32
) -> np.ndarray:
    """PyTorch's default for Linear/Conv weights and biases: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

    (kaiming_uniform with a = sqrt(5) reduces to this bound.)
    """
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


CONV_INITS = ("he", "xavier", "torch")


def redraw_conv_weights(
    weights: Iterable[np.ndarray], scheme: str, rng: np.random.Generator
) -> None:
    """Re-draw conv weights (C_out, C_in, KH, KW) in place, in order, with one scheme.

    ``"he"``: Kaiming normal, fan_out (torchvision's ResNet); ``"xavier"``: Glorot
    uniform; ``"torch"``: PyTorch's layer default U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
    which is the "classic" small initialisation under which deep plain nets' gradients vanish.
    """
    if scheme not in CONV_INITS:
        raise ValueError(f"unknown init {scheme!r}; choose one of {', '.join(CONV_INITS)}")
    for w in weights:
        if scheme == "he":
            new = kaiming_normal(w.shape, rng, "fan_out", w.dtype)
        elif scheme == "xavier":
            new = xavier_uniform(w.shape, rng, w.dtype)
        else:
            new = torch_default_uniform(w.shape, fans(w.shape)[0], rng, w.dtype)
        w[...] = new
