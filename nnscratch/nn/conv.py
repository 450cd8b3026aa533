"""Conv2d: a module around the conv2d op pair (``nnscratch/functional/conv.py``)."""

from __future__ import annotations

import numpy as np

from nnscratch.functional._checks import pair
from nnscratch.functional.backend import backend
from nnscratch.nn import init
from nnscratch.nn.module import Module
from nnscratch.nn.parameter import Parameter


class Conv2d(Module):
    """2-D convolution with PyTorch's arguments; weight (C_out, C_in, KH, KW), bias (C_out,).

    x (N, C_in, H, W) -> y (N, C_out, H_out, W_out), H_out = (H + 2*padding - KH) // stride + 1.
    The weight starts as torchvision's ResNet initialises it: Kaiming normal, fan_out;
    the bias (if any) as PyTorch's default, U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        bias: bool = True,
        *,
        rng: np.random.Generator | None = None,
        dtype=np.float32,
    ):
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = pair("Conv2d", "kernel_size", kernel_size, 1)
        self.stride = pair("Conv2d", "stride", stride, 1)
        self.padding = pair("Conv2d", "padding", padding, 0)
        rng = rng if rng is not None else np.random.default_rng()
        shape = (out_channels, in_channels, *self.kernel_size)
        self.weight = Parameter(init.kaiming_normal(shape, rng, "fan_out", dtype))
        if bias:
            fan_in, _ = init.fans(shape)
            self.bias = Parameter(init.torch_default_uniform((out_channels,), fan_in, rng, dtype))
        else:
            self.bias = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        b = self.bias.data if self.bias is not None else None
        y, cache = backend().conv2d_forward(
            x, self.weight.data, b, stride=self.stride, padding=self.padding
        )
        self.save_for_backward(cache)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        dx, dw, db = backend().conv2d_backward(dy, self.pop_cache())
        self.weight.accumulate(dw)
        if self.bias is not None:
            self.bias.accumulate(db)
        return dx

    def extra_repr(self) -> str:
        text = (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}"
        )
        if self.padding != (0, 0):
            text += f", padding={self.padding}"
        if self.bias is None:
            text += ", bias=False"
        return text
