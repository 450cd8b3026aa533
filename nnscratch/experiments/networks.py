"""The networks the experiments compare: models by name, residual or plain twins with the
same weights, with or without batch norm, with ReLU swapped for tanh or sigmoid."""

from __future__ import annotations

import re

import numpy as np

from nnscratch import models
from nnscratch.models.classifier import ImageClassifier
from nnscratch.nn.activation import ReLU
from nnscratch.nn.basic_block import BasicBlock
from nnscratch.nn.init import CONV_INITS
from nnscratch.nn.module import Module
from nnscratch.nn.preact_basic_block import PreActBasicBlock
from nnscratch.nn.smooth_activation import Sigmoid, Tanh

ACTIVATIONS: dict[str, type[Module]] = {"relu": ReLU, "tanh": Tanh, "sigmoid": Sigmoid}
DTYPES = ("float32", "float64")


def with_activation(model: Module, activation: str) -> Module:
    """Replace every ReLU module in ``model`` by a fresh ``activation`` module, in place.

    Blocks call their activations through attributes (``relu``, ``relu1``, ``relu2``,
    ...), so setting the attribute on the parent swaps the function everywhere it is
    used; each replaced site gets its own instance (each keeps a cache). Returns ``model``.
    """
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"unknown activation {activation!r}; choose one of {', '.join(ACTIVATIONS)}"
        )
    factory = ACTIVATIONS[activation]
    named = dict(model.named_modules())
    for name, module in list(named.items()):
        if type(module) is ReLU and name:
            parent, _, attribute = name.rpartition(".")
            setattr(named[parent], attribute, factory())
    return model


def build_model(
    name: str = "resnet20",
    *,
    residual: bool = True,
    batch_norm: bool = True,
    init: str = "he",
    activation: str = "relu",
    width: float = 1.0,
    num_classes: int = 10,
    in_channels: int = 3,
    stem: str = "cifar",
    seed: int = 0,
    dtype: str = "float32",
) -> ImageClassifier:
    """A model by name with the experiment's switches; the same seed gives twin weights.

    ``name`` is any of :func:`nnscratch.models.names`, or ``"resnet<6n+2>"`` /
    ``"preact_resnet<6n+2>"`` for a CIFAR ResNet of another depth (``"resnet8"``,
    ``"preact_resnet14"``, ...). ResNet-18..152 and PreAct ResNet-18..50 get
    ``stem`` (default the 3x3 CIFAR stem). The plain twin (``residual=False``) of a CIFAR
    ResNet draws the very same weights, since option-A shortcuts have no parameters.
    """
    if init not in CONV_INITS:
        raise ValueError(f"unknown init {init!r}; choose one of {', '.join(CONV_INITS)}")
    check_dtype(dtype)
    check_model_name(name)
    kwargs = dict(
        num_classes=num_classes,
        in_channels=in_channels,
        width=width,
        residual=residual,
        batch_norm=batch_norm,
        init_scheme=init,
        seed=seed,
    )
    if name in models.names():
        if models.supports_stem(name):
            kwargs["stem"] = stem
        model = models.create(name, **kwargs)
    else:
        family, depth = cifar_depth(name)
        block = PreActBasicBlock if family == "preact_resnet" else BasicBlock
        model = models.CifarResNet(depth, block=block, **kwargs)
    if activation != "relu":
        with_activation(model, activation)
    return model.to(np.dtype(dtype))


def cifar_depth(name: str) -> tuple[str, int] | None:
    """``("resnet", 14)`` for ``"resnet14"``, ``("preact_resnet", 8)`` for ``"preact_resnet8"``;
    None unless the name is a CIFAR family and a depth 6n + 2 (n >= 1)."""
    match = re.fullmatch(r"(resnet|preact_resnet)(\d+)", name)
    if match is None or int(match.group(2)) < 8 or (int(match.group(2)) - 2) % 6:
        return None
    return match.group(1), int(match.group(2))


def check_model_name(name: str) -> None:
    """Raise ValueError unless :func:`build_model` knows ``name``."""
    if name not in models.names() and cifar_depth(name) is None:
        raise ValueError(
            f"unknown model {name!r}; choose one of {', '.join(models.names())} "
            "or resnet<6n+2> / preact_resnet<6n+2> for a CIFAR ResNet of another depth"
        )


def check_dtype(dtype: str) -> None:
    """Raise ValueError unless ``dtype`` is one of :data:`DTYPES`."""
    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
