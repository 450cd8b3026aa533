"""Linear: y = x @ weight.T + bias, weight (out_features, in_features) as in PyTorch."""

from __future__ import annotations

import numpy as np

from nnscratch.functional.backend import backend
from nnscratch.nn import init
from nnscratch.nn.module import Module
from nnscratch.nn.parameter import Parameter


class Linear(Module):
    """x (N, in_features) -> y (N, out_features); PyTorch's default init U(±1/sqrt(in_features))."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        rng: np.random.Generator | None = None,
        dtype=np.float32,
    ):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        rng = rng if rng is not None else np.random.default_rng()
        shape = (out_features, in_features)
        self.weight = Parameter(init.torch_default_uniform(shape, in_features, rng, dtype))
        self.bias = (
            Parameter(init.torch_default_uniform((out_features,), in_features, rng, dtype))
            if bias
            else None
        )

    def forward(self, x: np.ndarray) -> np.ndarray:
        b = self.bias.data if self.bias is not None else None
        y, cache = backend().linear_forward(x, self.weight.data, b)
        self.save_for_backward(cache)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        dx, dw, db = backend().linear_backward(dy, self.pop_cache())
        self.weight.accumulate(dw)
        if self.bias is not None:
            self.bias.accumulate(db)
        return dx

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}"
        )
