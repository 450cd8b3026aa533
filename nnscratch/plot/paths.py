"""The figure of the paths experiment (:mod:`nnscratch.experiments.paths`): how many paths
of each length there are, how much gradient they carry, and what deleting or reordering
blocks does to accuracy (Veit et al. 2016, Figs. 5 and 6)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from nnscratch.plot.experiments import PLAIN, RESIDUAL
from nnscratch.plot.figure import new_figure, save_png

# Gradients of the trained net: solid; of the freshly initialised one: dashed.
WHEN = {"trained": "-", "initial": "--"}


def _gradient_runs(result: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(label, when, gradients) of every gradient measurement in the result."""
    return [
        (run["label"], when, gradients)
        for run in result["runs"]
        if run["gradients"] is not None
        for when, gradients in run["gradients"].items()
        if gradients is not None
    ]


def _column(gradients: dict[str, Any], key: str) -> np.ndarray:
    return np.array([row[key] for row in gradients["lengths"]], dtype=np.float64)


def _no_data(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="grey")


def paths_figure(result: dict[str, Any], path: str | os.PathLike | None = None) -> Figure:
    """Six panels: (a) the number of paths of each length, C(n, k); (b) the input-gradient
    magnitude of one path of length k (mean, band min-max of the sampled paths, log axis);
    (c) the share of the total gradient carried by each length, C(n, k) * magnitude(k)
    normalised to sum 1; (d) the cumulative shares of gradient and of paths; (e) test
    accuracy with k random blocks deleted (mean, band min-max); (f) test accuracy after
    random swaps of same-shape blocks against the Kendall tau of the block order (each
    trial a dot, the mean per number of swaps a line). Residual blue, plain red;
    gradients of the trained net solid, at initialisation dashed.
    """
    figure, axes = new_figure(15, 8.4, nrows=2, ncols=3)
    (ax_count, ax_mag, ax_share), (ax_cum, ax_del, ax_swap) = axes
    distribution = result["distribution"]
    n, lengths = distribution["blocks"], np.array(distribution["length"])
    ax_count.bar(lengths, distribution["count"], color="grey", label=f"C({n}, k)")
    ax_count.set_title(f"(a) path lengths: {2**n} paths through {n} blocks")
    ax_count.set_xlabel("path length k (blocks whose branch the path takes)")
    ax_count.set_ylabel("number of paths")
    ax_cum.plot(
        lengths, np.cumsum(distribution["probability"]), ":", color="grey", label="share of paths"
    )
    measured = _gradient_runs(result)
    for label, when, gradients in measured:
        style = dict(color=RESIDUAL, ls=WHEN[when], marker="o", ms=3)
        mean = _column(gradients, "mean")
        ax_mag.semilogy(lengths, mean, label=f"{label}, {when}", **style)
        ax_mag.fill_between(
            lengths,
            _column(gradients, "min"),
            _column(gradients, "max"),
            color=RESIDUAL,
            alpha=0.15 if when == "trained" else 0.07,
        )
        ax_share.plot(lengths, _column(gradients, "share"), label=f"{label}, {when}", **style)
        ax_cum.plot(
            lengths, np.cumsum(_column(gradients, "share")), label=f"gradient, {when}", **style
        )
    if not measured:
        for ax in (ax_mag, ax_share):
            _no_data(ax, "no gradient measured (a plain net has one path)")
    ax_mag.set_title("(b) gradient reaching the input through one path")
    ax_mag.set_ylabel("mean over images of |dL/dx| (log)")
    ax_share.set_title("(c) total gradient per length: C(n, k) x magnitude(k)")
    ax_share.set_ylabel("share of the total")
    ax_cum.set_title("(d) cumulative share over lengths <= k")
    ax_cum.set_ylabel("share of gradient or of paths")
    ax_cum.set_ylim(0, 1.02)
    for ax in (ax_mag, ax_share, ax_cum):
        ax.set_xlabel("path length k")
    for run in result["runs"]:
        colour = RESIDUAL if run["residual"] else PLAIN
        rows = run["deletion"]["rows"]
        k = [row["deleted"] for row in rows]
        ax_del.plot(k, [row["mean"] for row in rows], "o-", color=colour, ms=3, label=run["label"])
        ax_del.fill_between(
            k, [row["min"] for row in rows], [row["max"] for row in rows], color=colour, alpha=0.15
        )
        rows = run["reordering"]["rows"]
        taus = [tau for row in rows for tau in row["kendall_tau"]]
        accuracies = [a for row in rows for a in row["accuracies"]]
        ax_swap.plot(taus, accuracies, ".", color=colour, alpha=0.5)
        ax_swap.plot(
            [np.mean(row["kendall_tau"]) for row in rows],
            [row["mean"] for row in rows],
            "o-",
            color=colour,
            ms=3,
            label=f"{run['label']} (0..{rows[-1]['swaps']} swaps)",
        )
    ax_del.set_title("(e) deleting k random blocks (band: min to max)")
    ax_del.set_xlabel("blocks deleted k")
    ax_del.set_ylabel("test accuracy")
    ax_swap.set_title("(f) swapping same-shape blocks (dots: single trials)")
    ax_swap.set_xlabel("Kendall tau of the block order (1: unchanged)")
    ax_swap.set_ylabel("test accuracy")
    ax_swap.invert_xaxis()
    for ax in (ax_del, ax_swap):
        ax.set_ylim(0, 1.02)
    chance = result["runs"][0]["chance"]
    for ax in (ax_del, ax_swap):
        ax.axhline(chance, color="black", ls=":", lw=0.8, label="chance")
    for ax in axes.flat:
        ax.grid(alpha=0.3, which="both")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    figure.suptitle(
        "Residual networks as ensembles of relatively shallow paths (Veit et al. 2016)",
        fontsize=12,
    )
    save_png(figure, path)
    return figure
