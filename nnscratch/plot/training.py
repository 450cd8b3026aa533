"""Training figures: loss and accuracy curves per epoch, and a confusion matrix."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from nnscratch.plot.figure import new_figure, save_png


def history_figure(history: Sequence[dict], path: str | os.PathLike | None = None) -> Figure:
    """Loss (left, log scale) and accuracy (right) against epoch, train and validation.

    ``history`` rows have ``epoch``, ``train_loss``, ``train_accuracy``, ``val_loss``,
    ``val_accuracy`` (as written by the trainer's metrics log). The loss axis is
    logarithmic because the first epoch's validation loss can be several times the
    training loss (batch norm's running statistics lag the fast-moving weights; eval mode
    normalises with them), which on a linear axis flattens every later epoch.
    """
    figure, (loss_ax, acc_ax) = new_figure(10, 4, ncols=2)
    epochs = [row["epoch"] for row in history]
    for split, style in (("train", "-o"), ("val", "--s")):
        loss_ax.plot(epochs, [row[f"{split}_loss"] for row in history], style, label=split)
        acc_ax.plot(epochs, [100 * row[f"{split}_accuracy"] for row in history], style, label=split)
    loss_ax.set_yscale("log")
    # Plain numbers (2, 0.5 rather than 2x10^0); the minor ticks (2, 3, ... 9 times a power
    # of ten) are labelled only when the axis spans less than a decade.
    loss_ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    loss_ax.yaxis.set_minor_formatter(
        FuncFormatter(lambda value, _: f"{value:g}" if _within_a_decade(loss_ax) else "")
    )
    loss_ax.set(xlabel="epoch", ylabel="cross-entropy loss (log scale)", title="loss")
    acc_ax.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (loss_ax, acc_ax):
        # Epochs are whole numbers, also for a run of one or two (min_n_ticks=1 keeps the
        # locator from falling back to ticks such as 0.945 ... 1.050).
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        if epochs and epochs[-1] - epochs[0] < 2:
            ax.set_xlim(epochs[0] - 0.5, epochs[-1] + 0.5)
        ax.grid(alpha=0.3)
        ax.grid(alpha=0.15, which="minor", axis="y")
        ax.legend()
    save_png(figure, path)
    return figure


def _within_a_decade(ax) -> bool:
    low, high = ax.get_ylim()
    return 0 < low and high < 10 * low


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
