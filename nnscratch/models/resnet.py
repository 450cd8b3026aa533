"""ResNet-18/34/50/101/152 (He et al. 2015), laid out and named exactly as torchvision's.

    conv1 -> bn1 -> relu -> maxpool -> layer1 .. layer4 -> avgpool -> flatten -> fc

``stem="imagenet"``: conv1 is 7x7 stride 2 and maxpool 3x3 stride 2 (224 -> 56).
``stem="cifar"``: conv1 is 3x3 stride 1 and there is no max pool, so a 32x32 image
keeps its resolution in layer1 (32 -> 32 -> 16 -> 8 -> 4).

With pre-activation blocks (PreAct ResNet-18/34, He et al. 2016) the stem is conv1
(and the max pool) alone, the first block shares its bn1-relu1 with its shortcut, and
the last block's sum is activated by ``final_bn -> final_relu`` before the pooling:

    conv1 -> maxpool -> layer1 .. layer4 -> final_bn -> final_relu -> avgpool -> flatten -> fc
"""

from __future__ import annotations

import numpy as np

from nnscratch.models.classifier import ImageClassifier, check_model_arguments
from nnscratch.nn.activation import ReLU
from nnscratch.nn.basic_block import BasicBlock
from nnscratch.nn.batch_norm import BatchNorm2d
from nnscratch.nn.bottleneck import Bottleneck
from nnscratch.nn.container import Identity, Sequential
from nnscratch.nn.conv import Conv2d
from nnscratch.nn.flatten import Flatten
from nnscratch.nn.linear import Linear
from nnscratch.nn.module import Module
from nnscratch.nn.pooling import AdaptiveAvgPool2d, MaxPool2d
from nnscratch.nn.preact_basic_block import PreActBasicBlock
from nnscratch.nn.preact_bottleneck import PreActBottleneck
from nnscratch.nn.residual import ResidualBlock

STEMS = ("imagenet", "cifar")


class ResNet(ImageClassifier):
    """A ResNet of ``block``s; ``layers`` gives the number of blocks in each of the 4 stages.

    x (N, in_channels, H, W) -> logits (N, num_classes). Stage widths are
    64, 128, 256, 512 times ``width`` (times ``block.expansion`` at the output).
    ``block`` is BasicBlock, Bottleneck or their pre-activation variants.
    ``residual=False`` builds the plain twin; ``batch_norm=False`` drops every batch norm
    (convs then get biases); ``zero_init_residual`` starts each block's branch at zero
    (its last BN's gamma, or a pre-activation block's last convolution).
    """

    def __init__(
        self,
        block: type[ResidualBlock],
        layers: list[int],
        *,
        num_classes: int = 1000,
        in_channels: int = 3,
        stem: str = "imagenet",
        width: float = 1.0,
        residual: bool = True,
        batch_norm: bool = True,
        zero_init_residual: bool = False,
        init_scheme: str = "he",
        seed: int | None = None,
    ):
        super().__init__()
        if stem not in STEMS:
            raise ValueError(f"unknown stem {stem!r}; choose one of {', '.join(STEMS)}")
        check_model_arguments(num_classes, in_channels, width)
        rng = np.random.default_rng(seed)
        widths = [max(1, round(c * width)) for c in (64, 128, 256, 512)]
        self.stem = stem
        if stem == "imagenet":
            self.conv1 = Conv2d(in_channels, widths[0], 7, 2, 3, bias=not batch_norm, rng=rng)
        else:
            self.conv1 = Conv2d(in_channels, widths[0], 3, 1, 1, bias=not batch_norm, rng=rng)
        self.pre_activation = block.pre_activation
        if not self.pre_activation:
            self.bn1 = BatchNorm2d(widths[0]) if batch_norm else Identity()
            self.relu = ReLU()
        self.maxpool = MaxPool2d(3, 2, 1) if stem == "imagenet" else Identity()
        channels = widths[0]
        for index, (planes, blocks) in enumerate(zip(widths, layers, strict=True)):
            stage = []
            for b in range(blocks):
                stride = 2 if index > 0 and b == 0 else 1
                stage.append(
                    block(
                        channels,
                        planes,
                        stride,
                        residual=residual,
                        batch_norm=batch_norm,
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
        stages = [self.layer1, self.layer2, self.layer3, self.layer4]
        if self.pre_activation:
            return [self.conv1, self.maxpool, *stages, self.final_bn, self.final_relu, self.avgpool]
        return [self.conv1, self.bn1, self.relu, self.maxpool, *stages, self.avgpool]


def resnet18(**kwargs) -> ResNet:
    """ResNet-18: BasicBlocks [2, 2, 2, 2]; 11,689,512 parameters with 1000 classes."""
    return ResNet(BasicBlock, [2, 2, 2, 2], **kwargs)


def resnet34(**kwargs) -> ResNet:
    """ResNet-34: BasicBlocks [3, 4, 6, 3]; 21,797,672 parameters with 1000 classes."""
    return ResNet(BasicBlock, [3, 4, 6, 3], **kwargs)


def resnet50(**kwargs) -> ResNet:
    """ResNet-50: Bottlenecks [3, 4, 6, 3]; 25,557,032 parameters with 1000 classes."""
    return ResNet(Bottleneck, [3, 4, 6, 3], **kwargs)


def resnet101(**kwargs) -> ResNet:
    """ResNet-101: Bottlenecks [3, 4, 23, 3]; 44,549,160 parameters with 1000 classes."""
    return ResNet(Bottleneck, [3, 4, 23, 3], **kwargs)


def resnet152(**kwargs) -> ResNet:
    """ResNet-152: Bottlenecks [3, 8, 36, 3]; 60,192,808 parameters with 1000 classes."""
    return ResNet(Bottleneck, [3, 8, 36, 3], **kwargs)


def preact_resnet18(**kwargs) -> ResNet:
    """PreAct ResNet-18: PreActBasicBlocks [2, 2, 2, 2], same parameter count as ResNet-18."""
    return ResNet(PreActBasicBlock, [2, 2, 2, 2], **kwargs)


def preact_resnet34(**kwargs) -> ResNet:
    """PreAct ResNet-34: PreActBasicBlocks [3, 4, 6, 3], same parameter count as ResNet-34."""
    return ResNet(PreActBasicBlock, [3, 4, 6, 3], **kwargs)


def preact_resnet50(**kwargs) -> ResNet:
    """PreAct ResNet-50: PreActBottlenecks [3, 4, 6, 3]."""
    return ResNet(PreActBottleneck, [3, 4, 6, 3], **kwargs)
