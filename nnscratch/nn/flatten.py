"""Flatten: (N, d1, d2, ...) -> (N, d1*d2*...), and back in backward."""

from __future__ import annotations

import numpy as np

from nnscratch.functional._checks import check_float_array
from nnscratch.nn.module import Module


class Flatten(Module):
    """Keep the batch axis and flatten the rest: (N, C, H, W) -> (N, C*H*W)."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        check_float_array("flatten", "x", x)
        self.save_for_backward(x.shape)
        return x.reshape(x.shape[0], -1)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return dy.reshape(self.pop_cache())
