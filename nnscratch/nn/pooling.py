"""Pooling modules: MaxPool2d and the global AdaptiveAvgPool2d(1).

The op pairs are in ``nnscratch/functional/pooling.py``.
"""

from __future__ import annotations

import numpy as np

from nnscratch.functional._checks import pair
from nnscratch.functional.backend import backend
from nnscratch.nn.module import Module


class MaxPool2d(Module):
    """Max over KH x KW windows: (N, C, H, W) -> (N, C, H_out, W_out); stride defaults to kernel."""

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
    ):
        super().__init__()
        self.kernel_size = pair("MaxPool2d", "kernel_size", kernel_size, 1)
        self.stride = pair("MaxPool2d", "stride", stride if stride is not None else kernel_size, 1)
        self.padding = pair("MaxPool2d", "padding", padding, 0)

    def forward(self, x: np.ndarray) -> np.ndarray:
        y, cache = backend().max_pool2d_forward(x, self.kernel_size, self.stride, self.padding)
        self.save_for_backward(cache)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return backend().max_pool2d_backward(dy, self.pop_cache())

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(Module):
    """Global average pooling, PyTorch's ``AdaptiveAvgPool2d(1)``: (N, C, H, W) -> (N, C, 1, 1)."""

    def __init__(self, output_size: int | tuple[int, int] = 1):
        super().__init__()
        if pair("AdaptiveAvgPool2d", "output_size", output_size, 1) != (1, 1):
            raise ValueError(
                f"AdaptiveAvgPool2d: only output_size=1 (global pooling) is supported, "
                f"got {output_size!r}"
            )
        self.output_size = (1, 1)

    def forward(self, x: np.ndarray) -> np.ndarray:
        y, cache = backend().global_avg_pool2d_forward(x)
        self.save_for_backward(cache)
        return y[:, :, None, None]

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return backend().global_avg_pool2d_backward(dy.reshape(dy.shape[:2]), self.pop_cache())

    def extra_repr(self) -> str:
        return "output_size=1"
