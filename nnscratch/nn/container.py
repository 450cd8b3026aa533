"""Structural modules: Sequential (a chain) and Identity (no-op)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from nnscratch.nn.fusion import sequence
from nnscratch.nn.module import Module


class Identity(Module):
    """y = x; dx = dy. Stands in where a layer is switched off (a head, a norm)."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        return x

    def backward(self, dy: np.ndarray) -> np.ndarray:
        return dy


class Sequential(Module):
    """Modules applied in order; backward runs them in reverse. Children are named 0, 1, ..."""

    def __init__(self, *modules: Module):
        super().__init__()
        for index, module in enumerate(modules):
            if not isinstance(module, Module):
                raise TypeError(
                    f"Sequential: item {index} is a {type(module).__name__}, not a Module"
                )
            setattr(self, str(index), module)

    def forward(self, x: np.ndarray) -> np.ndarray:
        return sequence(self._modules.values(), x)

    def backward(self, dy: np.ndarray) -> np.ndarray:
        for module in reversed(self._modules.values()):
            dy = module.backward(dy)
        return dy

    def __getitem__(self, index: int) -> Module:
        return list(self._modules.values())[index]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())
