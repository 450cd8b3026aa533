"""Shattered gradients: how alike are the input gradients of nearby inputs?

Balduzzi et al. (2017, "The Shattered Gradients Problem: If resnets are the answer, then
what is the question?") found that in a deep plain network the gradient of the output
with respect to the input, followed along a line of inputs, decorrelates from one point
to the next until it looks like white noise, while a residual network's stays correlated
(brown noise); their Figs. 1-3. Here, for a network at initialisation:

    x(t) = x0 + t v,   t in [-1, 1], P points evenly spaced   x0, v (C, H, W); |v| = span |x0|
    f(x) = u . logits(x)                                      u (K,), a fixed random unit vector
    g(t) = df/dx at x(t)                                      (P, C, H, W), by model.backward
    s(t) = g(t) . v / |v|                                     (P,), the derivative of f along
                                                              the line (the 1-D input's gradient)

and two autocorrelations as functions of the lag k in line points, both exactly 1 at k = 0:

    r(k) = sum_{t<P-k} (s_t - m)(s_{t+k} - m) / sum_t (s_t - m)^2,   m = mean_t s_t
    c(k) = mean_{t<P-k} g(t) . g(t+k) / (|g(t)| |g(t+k)|)

r is the usual normalised autocorrelation of the curve (Balduzzi's Fig. 2): white noise
drops to about 0 at lag 1, a random walk decays slowly. c is the mean cosine of the full
gradient vectors ``k`` points apart. x0 and v are standard normal images (each pixel of x0
has variance 1); with ``span = 1`` the ends of the line are as far from x0 as x0 is from
the zero image, about as far as another random image.

Every point's gradient is its own: batch norm runs in evaluation mode, with running
statistics set beforehand from a separate batch of random images (one training-mode
forward with a cumulative average), so a point's output does not depend on the other
points of the batch, and the eval-mode backward of batch norm is ``gamma * inv_std * dy``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from nnscratch.experiments.network_parts import weighted_depth
from nnscratch.experiments.networks import build_model, check_dtype, check_model_name
from nnscratch.models.classifier import ImageClassifier
from nnscratch.nn.batch_norm import BatchNorm2d
from nnscratch.nn.grad_mode import no_grad

DEFAULT_DEPTHS = (8, 20, 56, 110)
HALF = 0.5  # the summary lag: where r(k) first drops below this
CURVES = ("curve", "autocorrelation", "gradient_correlation")
SUMMARY = ("acf_lag1", "half_lag", "cosine_lag1")


def line_inputs(
    points: int = 256,
    *,
    image_size: int = 16,
    channels: int = 3,
    span: float = 1.0,
    dtype: str = "float64",
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The line x(t) = x0 + t v: returns t (P,), x (P, C, H, W) and v (C, H, W).

    x0 is a standard normal image; v a standard normal direction scaled to
    ``|v| = span * |x0|``, so the line runs from x0 - v to x0 + v.
    """
    if points < 2:
        raise ValueError(f"points must be at least 2, got {points}")
    if image_size < 1 or channels < 1:
        raise ValueError(f"image_size and channels must be positive, got {image_size}, {channels}")
    if not span > 0:
        raise ValueError(f"span must be positive, got {span}")
    shape = (channels, image_size, image_size)
    x0 = rng.standard_normal(shape)
    v = rng.standard_normal(shape)
    v *= span * np.linalg.norm(x0) / np.linalg.norm(v)
    t = np.linspace(-1.0, 1.0, points)
    x = x0 + t[:, None, None, None] * v
    return t, x.astype(dtype), v.astype(dtype)


def calibrate_batch_norm(model: ImageClassifier, x: np.ndarray) -> None:
    """Set every batch norm's running statistics to those of the batch x (N, C, H, W).

    One training-mode forward without caches, with each layer's running average made
    cumulative and restarted (``momentum=None``, counter 0), so the first batch's mean and
    unbiased variance become the running statistics exactly. Leaves the model in eval mode.
    """
    norms = [m for m in model.modules() if isinstance(m, BatchNorm2d)]
    momenta = [m.momentum for m in norms]
    for norm in norms:
        norm.momentum = None
        norm.num_batches_tracked = 0
    try:
        model.train()
        with no_grad():
            model(x)
    finally:
        for norm, momentum in zip(norms, momenta, strict=True):
            norm.momentum = momentum
        model.eval()


def input_gradients(
    model: ImageClassifier, x: np.ndarray, u: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """f = logits(x) @ u (N,) and its input gradients g = df/dx (N, C, H, W).

    One forward and one backward of ``model`` as it is (use eval mode, so that each
    image's result is independent of the others), with dL/dlogits = u for every image.
    Parameter gradients accumulate, as after any backward pass; they are not used.
    """
    logits = model(x)
    g = model.backward(np.broadcast_to(u.astype(logits.dtype), logits.shape).copy())
    return logits @ u, g


def autocorrelation(curve: np.ndarray) -> np.ndarray:
    """r(k) for k = 0 .. P-1 of a curve s (P,): normalised so that r(0) = 1.

    r(k) = sum_{t<P-k} (s_t - m)(s_{t+k} - m) / sum_t (s_t - m)^2 with m the mean. A
    constant curve (no variation to correlate) gets r = 1 at every lag.
    """
    s = np.asarray(curve, dtype=np.float64) - np.mean(curve)
    energy = s @ s
    if energy == 0:
        return np.ones(len(s))
    return np.array([s[: len(s) - k] @ s[k:] for k in range(len(s))]) / energy


def gradient_correlation(grads: np.ndarray) -> np.ndarray:
    """c(k) for k = 0 .. P-1 of gradients g (P, ...): the mean cosine of g(t) and g(t+k).

    c(k) = mean_{t<P-k} G[t, t+k] / sqrt(G[t, t] G[t+k, t+k]) with the Gram matrix
    G = g g^T (P, P) of the gradients flattened and each divided by its largest entry
    (no overflow or underflow); c(0) = 1 exactly, unless some g(t) = 0.
    """
    flat = np.asarray(grads, dtype=np.float64).reshape(len(grads), -1)
    flat = flat / np.abs(flat).max(axis=1, keepdims=True)
    gram = flat @ flat.T
    squares = np.diagonal(gram)
    cosines = gram / np.sqrt(np.outer(squares, squares))
    return np.array([np.diagonal(cosines, k).mean() for k in range(len(flat))])


def half_lag(r: np.ndarray) -> int | None:
    """The first lag k with r(k) < 0.5, or None if r stays above it along the whole line."""
    below = np.flatnonzero(np.asarray(r) < HALF)
    return int(below[0]) if below.size else None


def shattered_gradients(
    model: str = "resnet20",
    *,
    residual: bool = True,
    batch_norm: bool = True,
    width: float = 0.5,
    image_size: int = 16,
    channels: int = 3,
    points: int = 256,
    span: float = 1.0,
    calibration: int = 64,
    dtype: str = "float64",
    seed: int = 0,
) -> dict[str, Any]:
    """The gradient curve and its autocorrelations for one network at initialisation.

    The network comes from :func:`~nnscratch.experiments.networks.build_model` (``seed``
    draws its weights: plain and residual twins are the same weights); the same ``seed``
    draws the line, u and the ``calibration`` images of batch norm, so every network of a
    study sees the same line. Returns ``{"config", "depth", "t", "output", "curve",
    "autocorrelation", "gradient_correlation", "acf_lag1", "half_lag", "cosine_lag1"}``:
    ``output`` is f (P,), ``curve`` is s (P,), ``autocorrelation`` is r (P,),
    ``gradient_correlation`` is c (P,), ``acf_lag1`` = r(1), ``cosine_lag1`` = c(1) and
    ``half_lag`` the first lag where r < 0.5 (None if never).
    """
    config = dict(
        model=model,
        residual=residual,
        batch_norm=batch_norm,
        width=width,
        image_size=image_size,
        channels=channels,
        points=points,
        span=span,
        calibration=calibration,
        dtype=dtype,
        seed=seed,
    )
    check_dtype(dtype)
    if batch_norm and calibration < 2:
        raise ValueError(f"calibration must be at least 2 images, got {calibration}")
    rng = np.random.default_rng(seed)
    t, x, v = line_inputs(
        points, image_size=image_size, channels=channels, span=span, dtype=dtype, rng=rng
    )
    net = build_model(
        model,
        residual=residual,
        batch_norm=batch_norm,
        width=width,
        in_channels=channels,
        seed=seed,
        dtype=dtype,
    )
    u = rng.standard_normal(net.num_classes)
    u /= np.linalg.norm(u)
    if batch_norm:
        calibrate_batch_norm(net, rng.standard_normal((calibration, *x.shape[1:])).astype(dtype))
    net.eval()
    output, grads = input_gradients(net, x, u)
    curve = grads.reshape(points, -1) @ (v.ravel() / np.linalg.norm(v))
    r = autocorrelation(curve)
    c = gradient_correlation(grads)
    return {
        "config": config,
        "depth": weighted_depth(net),
        "t": t,
        "output": output,
        "curve": curve,
        "autocorrelation": r,
        "gradient_correlation": c,
        "acf_lag1": float(r[1]),
        "half_lag": half_lag(r),
        "cosine_lag1": float(c[1]),
    }


def shattered_study(
    depths: Sequence[int] = DEFAULT_DEPTHS,
    *,
    family: str = "resnet",
    batch_norm: Sequence[bool] = (True, False),
    **options: Any,
) -> dict[str, Any]:
    """:func:`shattered_gradients` for each depth x batch norm x {plain, residual}.

    The models are ``f"{family}{depth}"`` (``resnet20``, ...), built by name, so any family
    that :func:`~nnscratch.experiments.networks.build_model` knows works. ``options`` go to
    :func:`shattered_gradients` (``width``, ``points``, ``image_size``, ``span``, ``seed``,
    ...). Returns ``{"config", "t", "runs", "table"}``: each run ``{"model", "depth",
    "residual", "batch_norm", "curve", "autocorrelation", "gradient_correlation",
    "acf_lag1", "half_lag", "cosine_lag1"}``, in the order batch norm, depth, plain before
    residual; ``table`` the same rows without the curves.
    """
    names = [f"{family}{depth}" for depth in depths]
    for name in names:
        check_model_name(name)
    fixed = {"model", "residual"} & set(options)
    if fixed:
        raise ValueError(f"shattered_study() sets {', '.join(sorted(fixed))} itself")
    runs = []
    for bn in batch_norm:
        for name in names:
            for residual in (False, True):
                result = shattered_gradients(name, residual=residual, batch_norm=bn, **options)
                runs.append(
                    {
                        "model": name,
                        "depth": result["depth"],
                        "residual": residual,
                        "batch_norm": bn,
                        **{k: result[k] for k in CURVES + SUMMARY},
                    }
                )
    table = [{k: v for k, v in run.items() if k not in CURVES} for run in runs]
    config = {"depths": list(depths), "family": family, "batch_norm": list(batch_norm), **options}
    return {"config": config, "t": result["t"], "runs": runs, "table": table}


def format_shattered_table(table: Sequence[dict[str, Any]]) -> str:
    """The summary as text: r(1), the first lag k with r(k) < 0.5, and c(1), plain | residual."""
    name = max([12, *(len(row["model"]) + 1 for row in table)])
    lines = [
        f"{'':<{name + 12}}{'r(1)':>20}  {'first k: r(k) < 0.5':>20}  {'c(1)':>20}",
        f"{'model':<{name}}{'depth':>6}{'BN':>6}"
        + "  ".join([f"{'plain':>10}{'residual':>10}"] * len(SUMMARY)),
    ]
    pairs: dict[tuple[str, bool], dict[bool, dict]] = {}
    for row in table:
        pairs.setdefault((row["model"], row["batch_norm"]), {})[row["residual"]] = row
    for (model, bn), pair in pairs.items():
        depth = next(iter(pair.values()))["depth"]
        groups = [
            "".join(_cell(pair[r][key] if r in pair else None) for r in (False, True))
            for key in SUMMARY
        ]
        lines.append(f"{model:<{name}}{depth:>6}{'yes' if bn else 'no':>6}" + "  ".join(groups))
    return "\n".join(lines)


def _cell(value: float | int | None) -> str:
    if value is None:
        return f"{'-':>10}"
    return f"{value:>10d}" if isinstance(value, int) else f"{value:>10.3f}"
