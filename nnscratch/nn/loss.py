"""Loss modules: ``loss = criterion(logits, targets)`` then ``dlogits = criterion.backward()``."""

from __future__ import annotations

import numpy as np

from nnscratch.functional.backend import backend
from nnscratch.nn.module import Module


class CrossEntropyLoss(Module):
    """Mean softmax cross-entropy of logits (N, K) against class indices (N,).

    ``label_smoothing=eps`` mixes the one-hot target with the uniform one, as in PyTorch.
    """

    def __init__(self, label_smoothing: float = 0.0):
        super().__init__()
        self.label_smoothing = label_smoothing

    def forward(self, logits: np.ndarray, targets: np.ndarray) -> float:
        loss, cache = backend().cross_entropy_forward(logits, targets, self.label_smoothing)
        self.save_for_backward(cache)
        return loss

    def backward(self, dloss: float = 1.0) -> np.ndarray:
        return backend().cross_entropy_backward(dloss, self.pop_cache())

    def extra_repr(self) -> str:
        return f"label_smoothing={self.label_smoothing}" if self.label_smoothing else ""


class BCEWithLogitsLoss(Module):
    """Mean binary cross-entropy of logits against targets in [0, 1] of the same shape."""

    def forward(self, logits: np.ndarray, targets: np.ndarray) -> float:
        loss, cache = backend().bce_with_logits_forward(logits, targets)
        self.save_for_backward(cache)
        return loss

    def backward(self, dloss: float = 1.0) -> np.ndarray:
        return backend().bce_with_logits_backward(dloss, self.pop_cache())
