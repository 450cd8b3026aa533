"""ReLU as a module (op pair in ``nnscratch/functional/activation.py``): one instance per
place it is used, since it keeps a cache."""

from __future__ import annotations

import numpy as np

from nnscratch.functional.backend import backend
from nnscratch.nn.module import Module


class ReLU(Module):
    """y = max(x, 0) elementwise, any shape; relu'(0) = 0."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        y, cache = backend().relu_forward(x)
        self.save_for_backward(cache)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return backend().relu_backward(dy, self.pop_cache())
