"""Training figures: loss and accuracy curves per epoch, and a confusion matrix."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from nnscratch.plot.figure import new_figure, save_png


def history_figure(history: Sequence[dict], path: str | os.PathLike | None = None) -> Figure:
    """Loss (left) and accuracy (right) against epoch, train and validation.

    ``history`` rows have ``epoch``, ``train_loss``, ``train_accuracy``, ``val_loss``,
    ``val_accuracy`` (as written by the trainer's metrics log).
    """
    figure, (loss_ax, acc_ax) = new_figure(10, 4, ncols=2)
    epochs = [row["epoch"] for row in history]
    for split, style in (("train", "-o"), ("val", "--s")):
        loss_ax.plot(epochs, [row[f"{split}_loss"] for row in history], style, label=split)
        acc_ax.plot(epochs, [100 * row[f"{split}_accuracy"] for row in history], style, label=split)
    loss_ax.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss")
    acc_ax.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (loss_ax, acc_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        ax.grid(alpha=0.3)
        ax.legend()
    save_png(figure, path)
    return figure


def confusion_figure(
    counts: np.ndarray,
    classes: Sequence[str],
    path: str | os.PathLike | None = None,
    title: str = "",
) -> Figure:
    """The confusion matrix as an image: rows are true classes, columns predictions (row-normalised)."""
    k = len(classes)
    size = max(5.0, 0.45 * k + 2)
    figure, ax = new_figure(size + 1, size)
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = counts / counts.sum(axis=1, keepdims=True)
    image = ax.imshow(np.nan_to_num(rates), cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(image, ax=ax, label="fraction of the true class")
    if k <= 20:
        ax.set_xticks(range(k), classes, rotation=60, ha="right", fontsize=8)
        ax.set_yticks(range(k), classes, fontsize=8)
        for i in range(k):
            for j in range(k):
                if counts[i, j]:
                    colour = "white" if rates[i, j] > 0.5 else "black"
                    ax.text(j, i, counts[i, j], ha="center", va="center", fontsize=7, color=colour)
    ax.set(xlabel="predicted class", ylabel="true class", title=title or "confusion matrix")
    save_png(figure, path)
    return figure
