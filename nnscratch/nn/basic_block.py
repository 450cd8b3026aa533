"""The two-layer residual block of ResNet-18/34 and of He et al.'s CIFAR ResNets.

    out = relu( bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x) )

conv1 is 3x3 with the block's stride, conv2 is 3x3 with stride 1. The shortcut is the
identity when shapes match, else a projection (``downsample``) or the parameter-free
zero-padding shortcut. ``residual=False`` builds the plain twin: the same layers with no
shortcut at all.
"""

from __future__ import annotations

import numpy as np

from nnscratch.nn.activation import ReLU
from nnscratch.nn.batch_norm import BatchNorm2d
from nnscratch.nn.container import Identity
from nnscratch.nn.conv import Conv2d
from nnscratch.nn.module import Module
from nnscratch.nn.residual import ResidualBlock


class BasicBlock(ResidualBlock):
    """x (N, in_channels, H, W) -> (N, planes, H_out, W_out), H_out = ceil(H / stride)."""

    expansion = 1

    def __init__(
        self,
        in_channels: int,
        planes: int,
        stride: int = 1,
        *,
        residual: bool = True,
        batch_norm: bool = True,
        shortcut: str = "projection",
        rng: np.random.Generator | None = None,
    ):
        super().__init__()
        rng = rng if rng is not None else np.random.default_rng()

        def norm(channels: int) -> Module:
            return BatchNorm2d(channels) if batch_norm else Identity()

        self.conv1 = Conv2d(in_channels, planes, 3, stride, 1, bias=not batch_norm, rng=rng)
        self.bn1 = norm(planes)
        self.relu1 = ReLU()
        self.conv2 = Conv2d(planes, planes, 3, 1, 1, bias=not batch_norm, rng=rng)
        self.bn2 = norm(planes)
        self.relu2 = ReLU()
        self.build_shortcut(in_channels, planes, stride, residual, batch_norm, shortcut, rng)

    def main_path(self) -> list[Module]:
        return [self.conv1, self.bn1, self.relu1, self.conv2, self.bn2]

    def zero_init_branch(self) -> None:
        """gamma = 0 in the branch's last batch norm (nothing to zero without batch norm)."""
        if isinstance(self.bn2, BatchNorm2d):
            self.bn2.weight.data[...] = 0

    @property
    def after_add(self) -> ReLU:
        return self.relu2
