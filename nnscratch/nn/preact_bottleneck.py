"""The pre-activation three-layer block of PreAct ResNet-164 (He et al. 2016).

    out = x + conv3(relu(bn3(conv2(relu(bn2(conv1(relu(bn1(x)))))))))

conv1 is 1x1 (in_channels -> planes), conv2 3x3 with the block's stride, conv3 1x1
(planes -> 4 * planes). Shortcuts, the shared bn1-relu1 and the plain twin
(``residual=False``) as in :mod:`nnscratch.nn.preact_residual`.
"""

from __future__ import annotations

import numpy as np

from nnscratch.nn.activation import ReLU
from nnscratch.nn.batch_norm import BatchNorm2d
from nnscratch.nn.container import Identity
from nnscratch.nn.conv import Conv2d
from nnscratch.nn.module import Module
from nnscratch.nn.preact_residual import PreActResidualBlock


class PreActBottleneck(PreActResidualBlock):
    """x (N, in_channels, H, W) -> (N, 4 * planes, H_out, W_out), H_out = ceil(H / stride)."""

    expansion = 4

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
        out_channels = planes * self.expansion

        def norm(channels: int) -> Module:
            return BatchNorm2d(channels) if batch_norm else Identity()

        self.build_pre_activation(in_channels, batch_norm, shared_activation)
        self.conv1 = Conv2d(in_channels, planes, 1, bias=not batch_norm, rng=rng)
        self.bn2 = norm(planes)
        self.relu2 = ReLU()
        self.conv2 = Conv2d(planes, planes, 3, stride, 1, bias=not batch_norm, rng=rng)
        self.bn3 = norm(planes)
        self.relu3 = ReLU()
        self.conv3 = Conv2d(planes, out_channels, 1, bias=not batch_norm, rng=rng)
        self.build_shortcut(in_channels, out_channels, stride, residual, batch_norm, shortcut, rng)

    def branch_layers(self) -> list[Module]:
        return [self.conv1, self.bn2, self.relu2, self.conv2, self.bn3, self.relu3, self.conv3]
