"""He et al.'s CIFAR ResNets (2015, Section 4.2): depth 6n + 2, three stages of n BasicBlocks.

    conv1 (3x3, 16) -> bn1 -> relu -> layer1 (16) -> layer2 (32, /2) -> layer3 (64, /2)
    -> avgpool -> flatten -> fc

Shortcuts that change shape are "option A" (stride-2 subsampling plus zero channels),
so the residual and plain nets have the same parameter count.

The pre-activation family (He et al. 2016) puts BN-ReLU before each convolution:

    conv1 -> layer1 .. layer3 -> final_bn -> final_relu -> avgpool -> flatten -> fc

PreAct ResNet-20 .. 110 use PreActBasicBlocks (depth 6n + 2); PreAct ResNet-164 uses
PreActBottlenecks (depth 9n + 2, stage outputs 64/128/256) with projection shortcuts.
"""

from __future__ import annotations

import numpy as np

from nnscratch.models.classifier import ImageClassifier, check_model_arguments
from nnscratch.nn.activation import ReLU
from nnscratch.nn.basic_block import BasicBlock
from nnscratch.nn.batch_norm import BatchNorm2d
from nnscratch.nn.container import Identity, Sequential
from nnscratch.nn.conv import Conv2d
from nnscratch.nn.flatten import Flatten
from nnscratch.nn.linear import Linear
from nnscratch.nn.module import Module
from nnscratch.nn.pooling import AdaptiveAvgPool2d
from nnscratch.nn.preact_basic_block import PreActBasicBlock
from nnscratch.nn.preact_bottleneck import PreActBottleneck
from nnscratch.nn.residual import ResidualBlock


class CifarResNet(ImageClassifier):
    """A CIFAR ResNet of ``depth`` layers: x (N, in_channels, H, W) -> logits (N, num_classes).

    ``depth`` is 6n + 2 for two-layer blocks, 9n + 2 for bottlenecks (``block``).
    ``width`` multiplies the stage widths 16/32/64; ``residual``, ``batch_norm``,
    ``zero_init_residual``, ``init_scheme`` and ``shortcut`` as for :class:`ResNet`.
    """

    def __init__(
        self,
        depth: int,
        *,
        block: type[ResidualBlock] = BasicBlock,
        num_classes: int = 10,
        in_channels: int = 3,
        width: float = 1.0,
        residual: bool = True,
        batch_norm: bool = True,
        zero_init_residual: bool = False,
        init_scheme: str = "he",
        shortcut: str = "zero_pad",
        seed: int | None = None,
    ):
        super().__init__()
        layers_per_block = 3 if block.expansion == 4 else 2
        if depth < 3 * layers_per_block + 2 or (depth - 2) % (3 * layers_per_block):
            raise ValueError(
                f"{block.__name__} CIFAR ResNet depth must be {3 * layers_per_block}n + 2 "
                f"with n >= 1, got {depth}"
            )
        check_model_arguments(num_classes, in_channels, width)
        n = (depth - 2) // (3 * layers_per_block)
        rng = np.random.default_rng(seed)
        widths = [max(1, round(c * width)) for c in (16, 32, 64)]
        self.depth = depth
        self.pre_activation = block.pre_activation
        self.conv1 = Conv2d(in_channels, widths[0], 3, 1, 1, bias=not batch_norm, rng=rng)
        if not self.pre_activation:
            self.bn1 = BatchNorm2d(widths[0]) if batch_norm else Identity()
            self.relu = ReLU()
        channels = widths[0]
        for index, planes in enumerate(widths):
            stage = []
            for b in range(n):
                stride = 2 if index > 0 and b == 0 else 1
                stage.append(
                    block(
                        channels,
                        planes,
                        stride,
                        residual=residual,
                        batch_norm=batch_norm,
                        shortcut=shortcut,
                        rng=rng,
                    )
                )
                channels = planes * block.expansion
            setattr(self, f"layer{index + 1}", Sequential(*stage))
        if self.pre_activation:
            self.add_pre_activation_ends(channels, batch_norm)
        self.avgpool = AdaptiveAvgPool2d(1)
        self.flatten = Flatten()
        self.fc = Linear(channels, num_classes, rng=rng)
        self.init_conv_weights(init_scheme, rng)
        if zero_init_residual:
            self.zero_init_branches()

    def backbone(self) -> list[Module]:
        stages = [self.layer1, self.layer2, self.layer3]
        if self.pre_activation:
            return [self.conv1, *stages, self.final_bn, self.final_relu, self.avgpool]
        return [self.conv1, self.bn1, self.relu, *stages, self.avgpool]


def resnet20(**kwargs) -> CifarResNet:
    """ResNet-20 (n=3): about 0.27M parameters with 10 classes."""
    return CifarResNet(20, **kwargs)


def resnet32(**kwargs) -> CifarResNet:
    """ResNet-32 (n=5): about 0.46M parameters."""
    return CifarResNet(32, **kwargs)


def resnet44(**kwargs) -> CifarResNet:
    """ResNet-44 (n=7): about 0.66M parameters."""
    return CifarResNet(44, **kwargs)


def resnet56(**kwargs) -> CifarResNet:
    """ResNet-56 (n=9): about 0.85M parameters."""
    return CifarResNet(56, **kwargs)


def resnet110(**kwargs) -> CifarResNet:
    """ResNet-110 (n=18): about 1.7M parameters."""
    return CifarResNet(110, **kwargs)


def preact_resnet20(**kwargs) -> CifarResNet:
    """PreAct ResNet-20 (n=3): the same parameter count as ResNet-20 plus the final BN."""
    return CifarResNet(20, block=PreActBasicBlock, **kwargs)


def preact_resnet32(**kwargs) -> CifarResNet:
    """PreAct ResNet-32 (n=5)."""
    return CifarResNet(32, block=PreActBasicBlock, **kwargs)


def preact_resnet44(**kwargs) -> CifarResNet:
    """PreAct ResNet-44 (n=7)."""
    return CifarResNet(44, block=PreActBasicBlock, **kwargs)


def preact_resnet56(**kwargs) -> CifarResNet:
    """PreAct ResNet-56 (n=9)."""
    return CifarResNet(56, block=PreActBasicBlock, **kwargs)


def preact_resnet110(**kwargs) -> CifarResNet:
    """PreAct ResNet-110 (n=18): about 1.7M parameters."""
    return CifarResNet(110, block=PreActBasicBlock, **kwargs)


def preact_resnet164(**kwargs) -> CifarResNet:
    """PreAct ResNet-164 (n=18 bottlenecks, projection shortcuts): about 1.7M parameters."""
    kwargs.setdefault("shortcut", "projection")
    return CifarResNet(164, block=PreActBottleneck, **kwargs)
