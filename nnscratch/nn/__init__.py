"""Modules that own parameters and wrap the functional ops: layers, containers, losses."""

from nnscratch.nn.activation import ReLU
from nnscratch.nn.basic_block import BasicBlock
from nnscratch.nn.batch_norm import BatchNorm2d
from nnscratch.nn.bottleneck import Bottleneck
from nnscratch.nn.container import Identity, Sequential
from nnscratch.nn.conv import Conv2d
from nnscratch.nn.flatten import Flatten
from nnscratch.nn.grad_mode import is_grad_enabled, no_grad
from nnscratch.nn.linear import Linear
from nnscratch.nn.loss import BCEWithLogitsLoss, CrossEntropyLoss
from nnscratch.nn.module import IncompatibleKeys, Module
from nnscratch.nn.parameter import Parameter
from nnscratch.nn.pooling import AdaptiveAvgPool2d, MaxPool2d
from nnscratch.nn.preact_basic_block import PreActBasicBlock
from nnscratch.nn.preact_bottleneck import PreActBottleneck
from nnscratch.nn.preact_residual import PreActResidualBlock
from nnscratch.nn.residual import ResidualBlock
from nnscratch.nn.shortcut import ZeroPadShortcut
from nnscratch.nn.smooth_activation import Sigmoid, Tanh

__all__ = [
    "AdaptiveAvgPool2d",
    "BCEWithLogitsLoss",
    "BasicBlock",
    "BatchNorm2d",
    "Bottleneck",
    "Conv2d",
    "CrossEntropyLoss",
    "Flatten",
    "Identity",
    "IncompatibleKeys",
    "Linear",
    "MaxPool2d",
    "Module",
    "Parameter",
    "PreActBasicBlock",
    "PreActBottleneck",
    "PreActResidualBlock",
    "ReLU",
    "ResidualBlock",
    "Sequential",
    "Sigmoid",
    "Tanh",
    "ZeroPadShortcut",
    "is_grad_enabled",
    "no_grad",
]
