"""A trainable array and the gradient that backward passes accumulate into it."""

from __future__ import annotations

import numpy as np


class Parameter:
    """A trainable tensor: ``data`` and a same-shaped ``grad`` that backward adds to.

    Backward passes *accumulate* (``grad += ...``) so that a parameter used on two
    paths receives the sum of both contributions; ``zero_grad()`` resets it.
    ``requires_grad=False`` freezes the parameter: layers skip its gradient and
    optimizers skip its update.
    """

    __slots__ = ("data", "grad", "requires_grad")

    def __init__(self, data: np.ndarray, requires_grad: bool = True):
        data = np.asarray(data)
        if data.dtype.kind != "f":
            raise TypeError(f"Parameter: expected a floating-point array, got dtype {data.dtype}")
        self.data = np.ascontiguousarray(data)
        self.grad = np.zeros_like(self.data)
        self.requires_grad = requires_grad

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def size(self) -> int:
        return self.data.size

    def zero_grad(self) -> None:
        self.grad.fill(0)

    def accumulate(self, grad: np.ndarray) -> None:
        """Add ``grad`` to ``self.grad`` unless the parameter is frozen."""
        if self.requires_grad:
            self.grad += grad

    def __repr__(self) -> str:
        frozen = "" if self.requires_grad else ", requires_grad=False"
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype}{frozen})"
