"""Optimizers (SGD, Adam, AdamW) and learning-rate schedules, with PyTorch's semantics."""

from nnscratch.optim.adam import Adam, AdamW
from nnscratch.optim.lr_scheduler import (
    CosineAnnealingLR,
    LinearWarmup,
    LRScheduler,
    MultiStepLR,
    OneCycleLR,
    StepLR,
)
from nnscratch.optim.optimizer import Optimizer, weight_decay_groups
from nnscratch.optim.sgd import SGD

__all__ = [
    "SGD",
    "Adam",
    "AdamW",
    "CosineAnnealingLR",
    "LRScheduler",
    "LinearWarmup",
    "MultiStepLR",
    "OneCycleLR",
    "Optimizer",
    "StepLR",
    "weight_decay_groups",
]
