"""Exercises: batch norm's forward in training mode (running statistics included) and its
backward, per channel over (N, H, W), with PyTorch's conventions."""

from __future__ import annotations

import numpy as np

from nnscratch.exercises.checking import Case, Exercise, Mistake, Output, image_words
from nnscratch.functional.batch_norm import batch_norm2d_backward, batch_norm2d_forward

SHAPES = ((2, 3, 4, 5), (1, 2, 3, 3), (5, 4, 1, 1), (3, 1, 2, 7))
_PER_CHANNEL = (0, 2, 3)


def _c(v: np.ndarray) -> np.ndarray:
    """A per-channel vector (C,) shaped to broadcast against (N, C, H, W)."""
    return v[:, None, None]


def batch_norm_forward(x, gamma, beta, running_mean, running_var, momentum, eps):
    """(y, new running_mean, new running_var): the library's op on copies of the statistics."""
    running_mean, running_var = running_mean.copy(), running_var.copy()
    y, _ = batch_norm2d_forward(
        x, gamma, beta, running_mean, running_var, training=True, momentum=momentum, eps=eps
    )
    return y, running_mean, running_var


def batch_norm_backward(dy, x, gamma, eps) -> tuple:
    """(dx, dgamma, dbeta) in training mode, the statistics recomputed from x."""
    zeros = np.zeros_like(gamma)
    _, cache = batch_norm2d_forward(
        x, gamma, zeros, zeros.copy(), np.ones_like(gamma), training=True, eps=eps
    )
    return batch_norm2d_backward(dy, cache)


def _inputs(rng: np.random.Generator, shape) -> dict[str, np.ndarray]:
    C = shape[1]
    return {
        "x": rng.standard_normal(shape) * rng.uniform(0.5, 3, C)[:, None, None] + 2,
        "gamma": rng.standard_normal(C) + 1.5,
        "beta": rng.standard_normal(C),
    }


def _forward_cases() -> list[Case]:
    rng = np.random.default_rng(19)
    cases = []
    for shape, momentum in zip(SHAPES, (0.1, 0.1, 0.3, 0.1)):
        C = shape[1]
        statistics = {"running_mean": rng.standard_normal(C), "running_var": rng.uniform(0.5, 2, C)}
        args = {**_inputs(rng, shape), **statistics, "momentum": momentum, "eps": 1e-5}
        cases.append(Case(f"{image_words(shape)}, momentum {momentum}", args))
    return cases


def _backward_cases() -> list[Case]:
    rng = np.random.default_rng(20)
    cases = []
    for shape in SHAPES:
        point = _inputs(rng, shape)
        dy = rng.standard_normal(shape)  # random: a uniform dy makes dx vanish identically

        def loss(p, dy=dy):
            C = p["x"].shape[1]
            y, _ = batch_norm2d_forward(
                p["x"], p["gamma"], p["beta"], np.zeros(C), np.ones(C), training=True
            )
            return float(np.sum(y * dy))

        args = {"dy": dy, "x": point["x"], "gamma": point["gamma"], "eps": 1e-5}
        cases.append(Case(image_words(shape), args, point, loss))
    return cases


# ----------------------------------------------------------------------- known mistakes
def _forward_with(normalise_var, running_var_of_batch, momentum_of_batch=None):
    """A forward that normalises with ``normalise_var(x, eps)`` -> 1/std per channel and moves
    running_var towards ``running_var_of_batch(x)``."""

    def forward(x, gamma, beta, running_mean, running_var, momentum, eps):
        m = momentum if momentum_of_batch is None else momentum_of_batch(momentum)
        mean = x.mean(axis=_PER_CHANNEL)
        y = _c(gamma) * (x - _c(mean)) * _c(normalise_var(x, eps)) + _c(beta)
        new_mean = (1 - m) * running_mean + m * mean
        new_var = (1 - m) * running_var + m * running_var_of_batch(x)
        return y, new_mean, new_var

    return forward


def _inv_std(x, eps):
    return 1 / np.sqrt(x.var(axis=_PER_CHANNEL) + eps)


def _count(x) -> int:
    """M = N*H*W, the number of values of one channel."""
    return x.size // x.shape[1]


def _unbiased_var(x, count=_count):
    M = count(x)
    return x.var(axis=_PER_CHANNEL) * M / (M - 1)


def _unchanged_statistics(x, gamma, beta, running_mean, running_var, momentum, eps):
    y, _, _ = batch_norm_forward(x, gamma, beta, running_mean, running_var, momentum, eps)
    return y, running_mean, running_var


def _backward_with(bracket, *, times_gamma: bool = True, count=_count, with_eps: bool = True):
    """A backward with dx = gamma * inv_std * bracket(dy, xhat, dgamma, dbeta, count(x))
    (without gamma if not ``times_gamma``, inv_std without eps if not ``with_eps``); dgamma
    and dbeta are right but for eps."""

    def backward(dy, x, gamma, eps):
        inv_std = _inv_std(x, eps if with_eps else 0.0)
        xhat = (x - _c(x.mean(axis=_PER_CHANNEL))) * _c(inv_std)
        dbeta = dy.sum(axis=_PER_CHANNEL)
        dgamma = (dy * xhat).sum(axis=_PER_CHANNEL)
        scale = gamma * inv_std if times_gamma else inv_std
        return _c(scale) * bracket(dy, xhat, _c(dgamma), _c(dbeta), count(x)), dgamma, dbeta

    return backward


def _full_bracket(dy, xhat, dgamma, dbeta, M):
    return dy - dbeta / M - xhat * dgamma / M


def _dgamma_from_x(dy, x, gamma, eps):
    dx, _, dbeta = batch_norm_backward(dy, x, gamma, eps)
    return dx, (dy * x).sum(axis=_PER_CHANNEL), dbeta


_CONVENTIONS = """
Per channel c, over the M = N*H*W values of x[:, c]:
    mean = mean(x),  var = mean((x - mean)^2)            (biased: divided by M)
    xhat = (x - mean) / sqrt(var + eps),  y = gamma * xhat + beta
eps is 1e-5, inside the square root.
"""

BATCH_NORM_FORWARD = Exercise(
    name="batch_norm_forward",
    title="batch norm in training mode, with the running statistics updated",
    signature=(
        "batch_norm_forward(x, gamma, beta, running_mean, running_var, momentum, eps)\n"
        "    -> (y, new_running_mean, new_running_var)"
    ),
    task="x is (N, C, H, W); gamma, beta, running_mean, running_var are (C,); momentum is "
    "0.1 in most cases; y has x's shape.\n"
    + _CONVENTIONS
    + """The running statistics move towards the batch's as PyTorch moves them:
    new_running_mean = (1 - momentum) * running_mean + momentum * mean
    new_running_var  = (1 - momentum) * running_var  + momentum * var * M / (M - 1)
(the unbiased variance for the running statistic, the biased one to normalise). Return new
arrays; do not modify the inputs.
""",
    outputs=(Output("y", "x"), Output("running_mean"), Output("running_var")),
    reference=batch_norm_forward,
    cases=_forward_cases,
    mistakes=(
        Mistake(
            "running_var takes the unbiased variance, var * M / (M - 1), as PyTorch does; the "
            "biased one is only for normalising",
            _forward_with(_inv_std, lambda x: x.var(axis=_PER_CHANNEL)),
        ),
        Mistake(
            "momentum is the weight of the new batch, as in PyTorch; yours gave it to the "
            "running statistic",
            _forward_with(_inv_std, _unbiased_var, lambda momentum: 1 - momentum),
        ),
        Mistake(
            "normalise with the biased variance (divided by M); the unbiased one is only for "
            "running_var",
            _forward_with(lambda x, eps: 1 / np.sqrt(_unbiased_var(x) + eps), _unbiased_var),
        ),
        Mistake(
            "eps goes inside the square root: (x - mean) / sqrt(var + eps)",
            _forward_with(
                lambda x, eps: 1 / (np.sqrt(x.var(axis=_PER_CHANNEL)) + eps), _unbiased_var
            ),
        ),
        Mistake(
            "eps is missing: it is added to var inside the square root, which also keeps a "
            "channel of equal values from dividing by zero",
            _forward_with(lambda x, eps: _inv_std(x, 0.0), _unbiased_var),
        ),
        Mistake(
            "M counts the N*H*W values of a channel, not the N samples alone: the unbiased "
            "correction of running_var uses that M",
            _forward_with(_inv_std, lambda x: _unbiased_var(x, len)),
        ),
        Mistake(
            "the running statistics were returned unchanged: compute the moved ones and "
            "return them",
            _unchanged_statistics,
        ),
    ),
)

BATCH_NORM_BACKWARD = Exercise(
    name="batch_norm_backward",
    title="the backward pass of batch norm in training mode",
    signature="batch_norm_backward(dy, x, gamma, eps) -> (dx, dgamma, dbeta)",
    task='The forward is batch norm in training mode (see describe("batch_norm_forward")):\n'
    + _CONVENTIONS
    + """The cache, passed to you unpacked, is x (N, C, H, W), gamma (C,) and eps (recompute
mean, var and xhat from x). dy has x's shape; return dx of x's shape, dgamma and dbeta (C,).
mean and var depend on every x of the channel, so dx has a path through each of them
besides the direct one.
""",
    outputs=(
        Output("dx", "x", gradient=True),
        Output("dgamma", "gamma", gradient=True),
        Output("dbeta", "beta", gradient=True),
    ),
    reference=batch_norm_backward,
    cases=_backward_cases,
    mistakes=(
        Mistake(
            "you treated mean and var as constants (that is eval mode's backward): in "
            "training mode they are computed from x, so dx also has a path through each of "
            "them",
            _backward_with(lambda dy, xhat, dgamma, dbeta, M: dy),
        ),
        Mistake(
            "dx is missing the path through the mean, which every x of the channel changes",
            _backward_with(lambda dy, xhat, dgamma, dbeta, M: dy - xhat * dgamma / M),
        ),
        Mistake(
            "dx is missing the path through the variance, which every x of the channel changes",
            _backward_with(lambda dy, xhat, dgamma, dbeta, M: dy - dbeta / M),
        ),
        Mistake(
            "dx is missing the factor gamma: every path from y back to x starts with "
            "y = gamma * xhat + beta",
            _backward_with(_full_bracket, times_gamma=False),
        ),
        Mistake(
            "the means in dx run over the M = N*H*W values of a channel, not over the N "
            "samples alone",
            _backward_with(_full_bracket, count=len),
        ),
        Mistake(
            "eps is missing: the forward divided by sqrt(var + eps), and its backward "
            "differentiates that same expression",
            _backward_with(_full_bracket, with_eps=False),
        ),
        Mistake(
            "dgamma pairs dy with xhat, the normalised input, not with x",
            _dgamma_from_x,
        ),
    ),
)
