"""Shortcuts for residual blocks whose input and output shapes differ.

- projection ("option B", He et al. 2015): a strided 1x1 conv + batch norm, the
  ``downsample`` of torchvision's blocks;
- :class:`ZeroPadShortcut` ("option A", used by He et al.'s CIFAR ResNets): keep every
  ``stride``-th pixel and append zero channels. It has no parameters.
"""

from __future__ import annotations

import numpy as np

from nnscratch.functional._checks import InputShapeError, check_float_array
from nnscratch.nn.batch_norm import BatchNorm2d
from nnscratch.nn.container import Identity, Sequential
from nnscratch.nn.conv import Conv2d
from nnscratch.nn.module import Module


def projection(
    in_channels: int,
    out_channels: int,
    stride: int,
    batch_norm: bool = True,
    rng: np.random.Generator | None = None,
    *,
    pre_activation: bool = False,
) -> Sequential:
    """``Sequential(Conv2d 1x1 with stride, BatchNorm2d)``: keys ``downsample.0/1`` as torchvision.

    A pre-activation block's projection is the convolution alone (its input is already
    BN-ReLU'd, and the next block's BN follows the sum).
    """
    conv = Conv2d(in_channels, out_channels, 1, stride=stride, bias=not batch_norm, rng=rng)
    if pre_activation:
        return Sequential(conv)
    return Sequential(conv, BatchNorm2d(out_channels) if batch_norm else Identity())


class ZeroPadShortcut(Module):
    """x (N, C_in, H, W) -> (N, C_out, H_out, W_out): x[:, :, ::s, ::s], then C_out - C_in zero channels.

    Backward keeps the gradient of the copied entries and drops that of the zero
    channels, which depend on nothing.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        if out_channels < in_channels:
            raise ValueError(
                f"ZeroPadShortcut: out_channels ({out_channels}) must be >= in_channels ({in_channels})"
            )
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = stride

    def forward(self, x: np.ndarray) -> np.ndarray:
        check_float_array("zero_pad_shortcut", "x", x, "N, C, H, W")
        if x.shape[1] != self.in_channels:
            raise InputShapeError(
                f"zero_pad_shortcut: expected x with {self.in_channels} channels, got shape {x.shape}"
            )
        s = self.stride
        kept = x[:, :, ::s, ::s]
        y = np.zeros((x.shape[0], self.out_channels, *kept.shape[2:]), dtype=x.dtype)
        y[:, : self.in_channels] = kept
        self.save_for_backward(x.shape)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        x_shape = self.pop_cache()
        s = self.stride
        dx = np.zeros(x_shape, dtype=dy.dtype)
        dx[:, :, ::s, ::s] = dy[:, : self.in_channels]
        return dx

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}"
