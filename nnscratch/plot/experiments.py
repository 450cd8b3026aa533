"""Figures of the experiments in :mod:`nnscratch.experiments`: gradient flow, the gradient
ledger, degradation curves and lesion bars. Each takes the experiment's returned data.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import LogLocator, MaxNLocator

from nnscratch.plot.figure import new_figure, save_png

PLAIN, RESIDUAL = "tab:red", "tab:blue"


def _kind(residual: bool) -> str:
    return "residual" if residual else "plain"


INIT_NAMES = {"he": "He init", "xavier": "Xavier init", "torch": "PyTorch default init"}


def _regime_label(run: dict[str, Any]) -> str:
    c = run["config"]
    norm = "BN" if c["batch_norm"] else "no BN"
    act = "" if c.get("activation", "relu") == "relu" else f", {c['activation']}"
    return f"{norm}, {INIT_NAMES.get(c['init'], c['init'])}{act}"


def _end_at_decades(axis, values: np.ndarray) -> None:
    """Make a log ``axis`` run from the power of ten below the finite positive ``values`` to
    the one above, each power labelled: the axis ends at labelled ticks, and no point lies
    beyond the last label."""
    v = values[np.isfinite(values) & (values > 0)]
    if not v.size:
        return
    low, high = np.floor(np.log10(v.min())), np.ceil(np.log10(v.max()))
    axis.axes.set_ylim(10.0**low, 10.0 ** max(high, low + 1))
    axis.set_major_locator(LogLocator(numticks=16))  # every power up to 15 decades


def _positive(values: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Values for a log axis: the array with zeros as NaN, and the mask of the zeros."""
    v = np.asarray(values, dtype=np.float64)
    zero = v <= 0
    return np.where(zero, np.nan, v), zero


def gradflow_figure(
    runs: Sequence[dict[str, Any]], path: str | os.PathLike | None = None, title: str = ""
) -> Figure:
    """Weight-gradient norm of each main-path conv (log axis) against its position.

    One row per model and one column per regime (batch norm, init, activation); each
    panel shows the plain twin (red) and the residual net (blue), with the first/last
    ratio in the legend. A gradient of exactly 0 (float32 underflow) is drawn as a
    triangle on the panel's bottom edge.
    """
    models = list(dict.fromkeys(r["config"]["model"] for r in runs))
    regimes = list(dict.fromkeys(_regime_label(r) for r in runs))
    figure, axes = new_figure(
        4.2 * len(regimes),
        3.2 * len(models) + 0.4,
        nrows=len(models),
        ncols=len(regimes),
        squeeze=False,
    )
    for run in runs:
        ax = axes[models.index(run["config"]["model"]), regimes.index(_regime_label(run))]
        convs = [c for c in run["convs"] if not c["shortcut"]]
        norms, zero = _positive([c["grad_norm"] for c in convs])
        layer = np.arange(1, len(convs) + 1)
        residual = run["config"]["residual"]
        colour = RESIDUAL if residual else PLAIN
        ax.semilogy(
            layer,
            norms,
            "-",
            color=colour,
            lw=1.5,
            marker=".",
            ms=3,
            label=f"{_kind(residual)} (first/last {run['ratio']:.2g})",
        )
        if zero.any():
            ax.plot(
                layer[zero],
                np.zeros(zero.sum()),
                "v",
                color=colour,
                ms=4,
                clip_on=False,
                transform=ax.get_xaxis_transform(),
                label=f"{_kind(residual)}: exactly 0",
            )
    for i, model in enumerate(models):
        for j, regime in enumerate(regimes):
            ax = axes[i, j]
            ax.set_title(f"{model}: {regime}", fontsize=10)
            ax.grid(alpha=0.3, which="both")
            ax.legend(fontsize=8)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # layers are counted
            drawn = [line.get_ydata() for line in ax.get_lines() if line.get_label()[0] != "_"]
            if drawn:
                _end_at_decades(ax.yaxis, np.concatenate(drawn).astype(np.float64))
            if i == len(models) - 1:
                ax.set_xlabel("conv layer (1 = input side)")
            if j == 0:
                ax.set_ylabel("|dL/dW|")
    if title:
        figure.suptitle(title)
    save_png(figure, path)
    return figure


def ratio_figure(
    table: Sequence[dict[str, Any]], path: str | os.PathLike | None = None, title: str = ""
) -> Figure:
    """First-conv / last-conv gradient ratio against depth (log axis), one line per regime.

    Plain nets dashed with squares, residual nets solid with circles; the dotted line at
    1 marks level gradients (below: vanishing towards the input, above: exploding).
    """
    figure, ax = new_figure(7, 4.5)
    labels = list(dict.fromkeys(row["label"] for row in table))
    colours = {label: f"C{k}" for k, label in enumerate(labels)}
    for label in labels:
        for residual in (False, True):
            rows = [r for r in table if r["label"] == label and r["residual"] == residual]
            rows.sort(key=lambda r: r["depth"])
            if not rows:
                continue
            ratios, _ = _positive([r["ratio"] for r in rows])
            ax.semilogy(
                [r["depth"] for r in rows],
                ratios,
                "-o" if residual else "--s",
                color=colours[label],
                label=f"{label}, {_kind(residual)}",
            )
    ax.axhline(1.0, color="grey", ls=":", lw=1)
    ax.set_xticks(sorted({row["depth"] for row in table}))  # the depths measured
    ax.set(
        xlabel="depth (weighted layers)",
        ylabel="|dL/dW_first| / |dL/dW_last|",
        title=title or "gradient ratio at initialisation",
    )
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    save_png(figure, path)
    return figure


def ledger_figure(
    runs: Sequence[dict[str, Any]], path: str | os.PathLike | None = None, title: str = ""
) -> Figure:
    """The gradient ledger per block: how |main| and |shortcut| share the input gradient.

    One panel per run. Stacked bars: |dx_main| and |dx_shortcut| as shares of their sum
    (left axis); black dots: |dx| = |dx_main + dx_shortcut| at the block input on a log
    axis (right, from the power of ten below the smallest to the one above the largest),
    so the split and the size of the signal are both readable even when the size changes
    by orders of magnitude along the net. A plain block is all main. The legend sits
    below the panels, where it hides no bar.
    """
    most = max(len(r["blocks"]) for r in runs)
    figure, axes = new_figure(
        max(6.0, 0.22 * most + 2.5), 2.8 * len(runs) + 0.4, nrows=len(runs), squeeze=False
    )
    for ax, run in zip(axes[:, 0], runs, strict=True):
        blocks = run["blocks"]
        x = np.arange(len(blocks))
        main = np.array([b["main"] for b in blocks])
        shortcut = np.array([b["shortcut"] for b in blocks])
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.nan_to_num(main / (main + shortcut))
        ax.bar(x, share, color="tab:orange", width=0.85, label="|dx main| share")
        ax.bar(
            x,
            1 - share,
            bottom=share,
            color=RESIDUAL,
            alpha=0.6,
            width=0.85,
            label="|dx shortcut| share",
        )
        ax.set_ylim(0, 1)
        ax.set_ylabel("share of |main| + |shortcut|")
        ax.set_xticks(x, [b["name"] for b in blocks], rotation=90, fontsize=6 if most > 30 else 8)
        total, _ = _positive([b["total"] for b in blocks])
        right = ax.twinx()
        right.semilogy(x, total, "k.-", lw=0.8, ms=4, label="|dx| at block input")
        _end_at_decades(right.yaxis, total)
        right.set_ylabel("|dx| (log)")
        c = run["config"]
        ax.set_title(f"{_kind(c['residual'])} {c['model']}: {_regime_label(run)}", fontsize=10)
    handles, labels = (
        a + b
        for a, b in zip(
            ax.get_legend_handles_labels(), right.get_legend_handles_labels(), strict=True
        )
    )
    figure.legend(handles, labels, loc="outside lower center", ncols=3, fontsize=8)
    if title:
        figure.suptitle(title)
    save_png(figure, path)
    return figure


def _moving_average(values: Sequence[float], window: int) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    if len(v) < window or window < 2:
        return v
    kernel = np.ones(window) / window
    head = np.cumsum(v[: window - 1]) / np.arange(1, window)  # shorter windows at the start
    return np.concatenate([head, np.convolve(v, kernel, mode="valid")])


def _by_net(runs: Sequence[dict[str, Any]], key) -> dict[Any, list[dict[str, Any]]]:
    """The runs grouped by ``key(run)`` (one run per seed in each group), in run order."""
    groups: dict[Any, list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault(key(run), []).append(run)
    return groups


def _mean_and_range(curves: Sequence[Sequence[float]]) -> tuple[np.ndarray, ...]:
    """Mean, min and max over curves (one per seed), cut to the shortest."""
    n = min(len(c) for c in curves)
    stacked = np.array([np.asarray(c, dtype=np.float64)[:n] for c in curves]).reshape(-1, n)
    return stacked.mean(axis=0), stacked.min(axis=0), stacked.max(axis=0)


def _seeds_note(n_seeds: int) -> str:
    return f", mean of {n_seeds} seeds" if n_seeds > 1 else ""


def degradation_figure(
    result: dict[str, Any], path: str | os.PathLike | None = None, smooth: int = 20
) -> Figure:
    """Training error (thin, moving average of ``smooth`` steps) and test error (bold),
    plain nets on the left and residual nets on the right, as in He et al. (2015) Fig. 6.

    With several seeds each line is the mean over the seeds (of the smoothed curves) and
    the shaded band spans their minimum to maximum; with one seed there is no band.
    """
    figure, axes = new_figure(11, 4.2, ncols=2, sharey=True)
    depths = sorted({run["depth"] for run in result["runs"]})
    colours = {d: f"C{k}" for k, d in enumerate(depths)}
    nets = _by_net(result["runs"], lambda run: (run["depth"], run["residual"]))
    n_seeds = max(len(group) for group in nets.values())
    for ax, residual in zip(axes, (False, True), strict=True):
        for (depth, _), group in ((k, g) for k, g in nets.items() if k[1] == residual):
            colour = colours[depth]
            mean, low, high = _mean_and_range(
                [100 * _moving_average(run["train_error"], smooth) for run in group]
            )
            steps = group[0]["step"][: len(mean)]
            ax.plot(
                steps,
                mean,
                "-",
                color=colour,
                lw=0.9,
                alpha=0.8,
                label=f"{depth}-layer, train",
            )
            if len(group) > 1:
                ax.fill_between(steps, low, high, color=colour, alpha=0.15, lw=0)
            if all(run["eval"] for run in group):
                mean, low, high = _mean_and_range(
                    [[100 * e["test_error"] for e in run["eval"]] for run in group]
                )
                steps = [e["step"] for e in group[0]["eval"]][: len(mean)]
                ax.plot(
                    steps,
                    mean,
                    "-o",
                    color=colour,
                    lw=2.2,
                    ms=4,
                    label=f"{depth}-layer, test",
                )
                if len(group) > 1:
                    ax.fill_between(steps, low, high, color=colour, alpha=0.25, lw=0)
            for run in group:
                if run["diverged_at"]:
                    ax.axvline(run["diverged_at"], color=colour, ls=":")
        ax.set(xlabel="SGD step", title=f"{_kind(residual)} nets")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("error (%)")
    if n_seeds > 1:
        figure.suptitle(
            f"lines: mean over {n_seeds} seeds; shaded: min to max over the seeds", fontsize=10
        )
    save_png(figure, path)
    return figure


def lesion_figure(result: dict[str, Any], path: str | os.PathLike | None = None) -> Figure:
    """Test-accuracy drop when one block is deleted, per block, residual vs plain.

    Hatched bars are blocks that change shape (deleted to the shortcut alone, or to the
    zero-padding map in the plain net); the others are replaced by the identity. With
    several seeds a bar is the mean drop over the seeds and its whisker spans the minimum
    to the maximum.
    """
    nets = list(_by_net(result["runs"], lambda run: run["label"]).values())
    names = [row["name"] for row in nets[0][0]["lesion"]["blocks"]]
    methods = [row["method"] for row in nets[0][0]["lesion"]["blocks"]]
    figure, ax = new_figure(max(7.0, 0.35 * len(names) + 3), 4.2)
    x = np.arange(len(names))
    width = 0.8 / len(nets)
    for k, group in enumerate(nets):
        colour = RESIDUAL if group[0]["residual"] else PLAIN
        drop, low, high = _mean_and_range(
            [[100 * r["drop"] for r in run["lesion"]["blocks"]] for run in group]
        )
        base = np.mean([run["lesion"]["baseline_accuracy"] for run in group])
        position = x + (k - (len(nets) - 1) / 2) * width
        ax.bar(
            position,
            drop,
            width,
            color=colour,
            hatch=None,
            label=f"{group[0]['label']} (intact: {base:.1%}{_seeds_note(len(group))})",
        )
        changes = np.array([m != "identity" for m in methods])
        ax.bar(
            position[changes],
            drop[changes],
            width,
            color="none",
            edgecolor="black",
            hatch="//",
            lw=0,
        )
        if len(group) > 1:
            ax.errorbar(
                position,
                drop,
                yerr=[drop - low, high - drop],
                fmt="none",
                ecolor="black",
                elinewidth=0.8,
                capsize=2,
                label=f"min to max over {len(group)} seeds" if k == 0 else None,
            )
    ax.axhline(0, color="black", lw=0.8)
    ax.margins(y=0.25)  # room for the legend above the bars
    ax.set_xticks(x, names, rotation=90, fontsize=8)
    ax.set(
        ylabel="accuracy drop (percentage points)",
        title="deleting one block at test time (hatched: block changes shape)",
    )
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    save_png(figure, path)
    return figure
