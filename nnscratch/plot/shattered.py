"""The figure of the shattered-gradients experiment (:mod:`nnscratch.experiments.shattered`):
the gradient along a line of inputs, and its autocorrelation against the lag."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from nnscratch.plot.experiments import PLAIN, RESIDUAL
from nnscratch.plot.figure import new_figure, save_png


def _variant(run: dict[str, Any]) -> str:
    return f"{'residual' if run['residual'] else 'plain'}, {'BN' if run['batch_norm'] else 'no BN'}"


def shattered_figure(result: dict[str, Any], path: str | os.PathLike | None = None) -> Figure:
    """One row per depth: the gradient curve s(t) of each variant, then r(k) against k.

    Curve panels (one per variant: plain red, residual blue; with and without batch norm)
    show s divided by its root mean square, named in the panel's title: the shape matters,
    not the size, which differs by orders of magnitude between nets. The last panel of a
    row overlays r(k) of every variant of that depth on a log lag axis (k >= 1; r(0) = 1),
    with batch norm solid and without it dashed; the dotted line is the 0.5 of the
    summary lag. The legend of those lines is below the panels.
    """
    runs = result["runs"]
    t = np.asarray(result["t"])
    models = list(dict.fromkeys(run["model"] for run in runs))
    variants = list(dict.fromkeys(_variant(run) for run in runs))
    figure, axes = new_figure(
        2.9 * (len(variants) + 1),
        2.3 * len(models) + 0.6,
        nrows=len(models),
        ncols=len(variants) + 1,
        squeeze=False,
    )
    lags = np.arange(1, len(t))
    for run in runs:
        row = models.index(run["model"])
        colour = RESIDUAL if run["residual"] else PLAIN
        ax = axes[row, variants.index(_variant(run))]
        curve = np.asarray(run["curve"], dtype=np.float64)
        rms = np.sqrt(np.mean(curve**2))
        ax.plot(t, curve / rms if rms > 0 else curve, "-", color=colour, lw=0.8)
        ax.set_title(
            f"{run['model']} {_variant(run)}\nr(1) = {run['acf_lag1']:.2f}, rms(s) = {rms:.2g}",
            fontsize=9,
        )
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
        acf = axes[row, -1]
        acf.semilogx(
            lags,
            np.asarray(run["autocorrelation"])[1:],
            "-" if run["batch_norm"] else "--",
            color=colour,
            lw=1.2,
            label=_variant(run),
        )
    for row, model in enumerate(models):
        axes[row, 0].set_ylabel("s(t) / rms(s)")
        acf = axes[row, -1]
        acf.axhline(0.5, color="grey", ls=":", lw=1)
        acf.axhline(0.0, color="black", lw=0.6)
        acf.set_ylim(-0.5, 1.05)
        acf.set_ylabel("autocorrelation r(k)")
        acf.set_title(f"{model}: autocorrelation of s", fontsize=9)
        acf.grid(alpha=0.3, which="both")
    for ax in axes[-1, :-1]:
        ax.set_xlabel("t (position on the line)")
    axes[-1, -1].set_xlabel("lag k (line points, log)")
    handles, labels = axes[0, -1].get_legend_handles_labels()
    figure.legend(handles, labels, loc="outside lower center", ncols=len(labels), fontsize=8)
    figure.suptitle(
        f"Shattered gradients at initialisation: s(t) = g(t) . v/|v|, the derivative of "
        f"f = u . logits along the line x0 + t v ({len(t)} points)",
        fontsize=11,
    )
    save_png(figure, path)
    return figure
