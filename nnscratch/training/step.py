"""One training step on one batch, the step the trainer and the experiments both take."""

from __future__ import annotations

import math

import numpy as np

from nnscratch.models.classifier import ImageClassifier
from nnscratch.nn.loss import CrossEntropyLoss
from nnscratch.optim import LRScheduler, Optimizer


def train_step(
    model: ImageClassifier,
    criterion: CrossEntropyLoss,
    optimizer: Optimizer,
    schedule: LRScheduler | None,
    x: np.ndarray,
    y: np.ndarray,
) -> tuple[float, np.ndarray]:
    """Forward, loss, backward, one optimizer update and one schedule step on the batch (x, y).

    x is (N, C, H, W), y (N,) class indices. Returns the loss and the logits (N, K). A loss
    that is not finite is returned before the backward pass, so the weights, the
    optimizer and the schedule are left as they were; the caller decides what to do.
    """
    optimizer.zero_grad()
    logits = model(x)
    loss = criterion(logits, y)
    if not math.isfinite(loss):
        return loss, logits
    model.backward(criterion.backward())
    optimizer.step()
    if schedule is not None:
        schedule.step()
    return loss, logits
