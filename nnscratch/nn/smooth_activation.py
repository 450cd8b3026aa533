"""Tanh and Sigmoid as modules, for the historical deep nets whose gradients vanish.

Like ReLU, each keeps a cache (its output), so use one instance per place it is used.
"""

from __future__ import annotations

import numpy as np

from nnscratch.functional.backend import backend
from nnscratch.nn.module import Module


class Tanh(Module):
    """y = tanh(x) elementwise, any shape; dx = dy * (1 - y^2)."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        y, cache = backend().tanh_forward(x)
        self.save_for_backward(cache)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return backend().tanh_backward(dy, self.pop_cache())


class Sigmoid(Module):
    """y = 1 / (1 + exp(-x)) elementwise, any shape; dx = dy * y * (1 - y)."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        y, cache = backend().sigmoid_forward(x)
        self.save_for_backward(cache)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return backend().sigmoid_backward(dy, self.pop_cache())
