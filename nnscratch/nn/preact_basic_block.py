"""The pre-activation two-layer block of PreAct ResNet-18/34 and the CIFAR PreAct ResNets.

    out = x + conv2(relu(bn2(conv1(relu(bn1(x))))))

conv1 is 3x3 with the block's stride, conv2 3x3 with stride 1. Shortcuts, the shared
bn1-relu1 and the plain twin (``residual=False``) as in :mod:`nnscratch.nn.preact_residual`.
"""

from __future__ import annotations

import numpy as np

from nnscratch.nn.activation import ReLU
from nnscratch.nn.batch_norm import BatchNorm2d
from nnscratch.nn.container import Identity
from nnscratch.nn.conv import Conv2d
from nnscratch.nn.module import Module
from nnscratch.nn.preact_residual import PreActResidualBlock


class PreActBasicBlock(PreActResidualBlock):
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
        shared_activation: bool = False,
        rng: np.random.Generator | None = None,
    ):
        super().__init__()
        rng = rng if rng is not None else np.random.default_rng()
        self.build_pre_activation(in_channels, batch_norm, shared_activation)
        self.conv1 = Conv2d(in_channels, planes, 3, stride, 1, bias=not batch_norm, rng=rng)
        self.bn2 = BatchNorm2d(planes) if batch_norm else Identity()
        self.relu2 = ReLU()
        self.conv2 = Conv2d(planes, planes, 3, 1, 1, bias=not batch_norm, rng=rng)
        self.build_shortcut(in_channels, planes, stride, residual, batch_norm, shortcut, rng)

    def branch_layers(self) -> list[Module]:
        return [self.conv1, self.bn2, self.relu2, self.conv2]
