"""Evaluation passes over a dataset: loss, accuracy, predictions, and feature extraction."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nnscratch import data
from nnscratch.models.classifier import ImageClassifier
from nnscratch.nn.grad_mode import no_grad
from nnscratch.nn.loss import CrossEntropyLoss


@dataclass
class Evaluation:
    """Mean loss, accuracy, and per-item predictions (N,) and labels (N,)."""

    loss: float
    accuracy: float
    predictions: np.ndarray
    labels: np.ndarray


def _batches(dataset: data.ArrayDataset, transform, batch_size: int) -> data.BatchLoader:
    return data.BatchLoader(dataset, batch_size, shuffle=False, transform=transform, prefetch=True)


def evaluate(
    model: ImageClassifier,
    dataset: data.ArrayDataset,
    transform,
    batch_size: int = 256,
    *,
    flip: bool = False,
) -> Evaluation:
    """Run ``model`` in eval mode without caches over ``dataset``; restores the mode after.

    ``flip=True`` is test-time augmentation: the logits are the mean of the image's and
    its mirror image's (left-right), for data whose training used random flips.
    """
    criterion = CrossEntropyLoss()
    was_training = model.training
    model.eval()
    total_loss, predictions = 0.0, []
    try:
        with no_grad():
            for x, y in _batches(dataset, transform, batch_size):
                logits = model(x)
                if flip:
                    logits = (logits + model(np.ascontiguousarray(x[..., ::-1]))) / 2
                total_loss += criterion(logits, y) * len(y)
                predictions.append(logits.argmax(axis=1))
    finally:
        model.train(was_training)
    predictions = np.concatenate(predictions)
    labels = dataset.labels
    return Evaluation(
        total_loss / len(labels), float(np.mean(predictions == labels)), predictions, labels
    )


def extract_features(
    model: ImageClassifier, dataset: data.ArrayDataset, transform, batch_size: int = 256
) -> np.ndarray:
    """The pooled embedding of every image: (N, model.fc.in_features) float32."""
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            return np.concatenate(
                [model.features(x) for x, _ in _batches(dataset, transform, batch_size)]
            )
    finally:
        model.train(was_training)
