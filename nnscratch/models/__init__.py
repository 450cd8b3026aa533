"""The ResNet family (torchvision layout and names), He et al.'s CIFAR ResNets, and the
pre-activation variants of both (``preact_resnet18``, ``preact_resnet20`` ...).

``create(name, **kwargs)`` builds a model by name; ``names()`` lists them.
"""

from __future__ import annotations

from collections.abc import Callable

from nnscratch.models.cifar_resnet import (
    CifarResNet,
    preact_resnet20,
    preact_resnet32,
    preact_resnet44,
    preact_resnet56,
    preact_resnet110,
    preact_resnet164,
    resnet20,
    resnet32,
    resnet44,
    resnet56,
    resnet110,
)
from nnscratch.models.classifier import ImageClassifier
from nnscratch.models.resnet import (
    ResNet,
    preact_resnet18,
    preact_resnet34,
    preact_resnet50,
    resnet18,
    resnet34,
    resnet50,
    resnet101,
    resnet152,
)

_REGISTRY: dict[str, Callable[..., ImageClassifier]] = {
    f.__name__: f
    for f in (
        resnet18,
        resnet34,
        resnet50,
        resnet101,
        resnet152,
        resnet20,
        resnet32,
        resnet44,
        resnet56,
        resnet110,
        preact_resnet18,
        preact_resnet34,
        preact_resnet50,
        preact_resnet20,
        preact_resnet32,
        preact_resnet44,
        preact_resnet56,
        preact_resnet110,
        preact_resnet164,
    )
}


def names() -> list[str]:
    """Every model name that :func:`create` accepts."""
    return list(_REGISTRY)


def supports_stem(name: str) -> bool:
    """True for the torchvision-style ResNets, which take ``stem="imagenet"|"cifar"``."""
    return _REGISTRY.get(name) in (
        resnet18,
        resnet34,
        resnet50,
        resnet101,
        resnet152,
        preact_resnet18,
        preact_resnet34,
        preact_resnet50,
    )


def create(name: str, **kwargs) -> ImageClassifier:
    """Build the model ``name`` (e.g. ``"resnet18"``) with keyword arguments for its constructor."""
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(_REGISTRY)}") from None
    return factory(**kwargs)


__all__ = [
    "CifarResNet",
    "ImageClassifier",
    "ResNet",
    "create",
    "names",
    "preact_resnet18",
    "preact_resnet20",
    "preact_resnet32",
    "preact_resnet34",
    "preact_resnet44",
    "preact_resnet50",
    "preact_resnet56",
    "preact_resnet110",
    "preact_resnet164",
    "resnet18",
    "resnet20",
    "resnet32",
    "resnet34",
    "resnet44",
    "resnet50",
    "resnet56",
    "resnet101",
    "resnet110",
    "resnet152",
    "supports_stem",
]
