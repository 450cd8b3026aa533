"""BatchNorm2d: per-channel batch normalisation with PyTorch's buffers and momentum.

The op pair is in ``nnscratch/functional/batch_norm.py``.
"""

from __future__ import annotations

import numpy as np

from nnscratch.functional.backend import backend
from nnscratch.nn.module import Module
from nnscratch.nn.parameter import Parameter


class BatchNorm2d(Module):
    """Batch norm over (N, H, W) for each of C channels; x and y are (N, C, H, W).

    Parameters ``weight`` (gamma, starts at 1) and ``bias`` (beta, starts at 0); buffers
    ``running_mean`` (0), ``running_var`` (1) and ``num_batches_tracked``. In training
    mode the running statistics move by ``momentum`` towards the batch's (unbiased
    variance); ``momentum=None`` keeps a cumulative average instead, as in PyTorch.
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        *,
        dtype=np.float32,
    ):
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.weight = Parameter(np.ones(num_features, dtype=dtype))
        self.bias = Parameter(np.zeros(num_features, dtype=dtype))
        self.register_buffer("running_mean", np.zeros(num_features, dtype=dtype))
        self.register_buffer("running_var", np.ones(num_features, dtype=dtype))
        self.register_buffer("num_batches_tracked", np.array(0, dtype=np.int64))

    def forward(self, x: np.ndarray) -> np.ndarray:
        batches = int(self.num_batches_tracked) + 1
        momentum = self.momentum if self.momentum is not None else 1.0 / batches
        y, cache = backend().batch_norm2d_forward(
            x,
            self.weight.data,
            self.bias.data,
            self.running_mean,
            self.running_var,
            training=self.training,
            momentum=momentum,
            eps=self.eps,
        )
        if self.training:
            self.num_batches_tracked = batches
        self.save_for_backward(cache)
        return y

    def backward(self, dy: np.ndarray) -> np.ndarray:
        dx, dgamma, dbeta = backend().batch_norm2d_backward(dy, self.pop_cache())
        self.weight.accumulate(dgamma)
        self.bias.accumulate(dbeta)
        return dx

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"
