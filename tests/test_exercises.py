"""The exercise checks: they accept right answers written another way, reject wrong ones with
the right hint (also wrong ones no catalogue lists), and never raise on a learner's bug.

The learner-style implementations below are written independently of the library (loops,
other orders of operations); ``learner_*(..., mistake=...)`` switches in one realistic bug.
"""

from __future__ import annotations

import functools
import math
import re
import subprocess
import sys

import numpy as np
import pytest

from nnscratch import exercises
from nnscratch.exercises import checking
from nnscratch.exercises.checking import Exercise
from nnscratch.functional.activation import relu_backward, relu_forward
from nnscratch.functional.conv import conv2d_backward, conv2d_forward
from nnscratch.nn.init import torch_default_uniform

GENERIC = "no common mistake matches"


def _exercise(name: str) -> Exercise:
    return exercises._EXERCISES[name]


def rejected(name: str, submission, *needles: str) -> str:
    """Check ``submission``, require a failure whose message contains every needle."""
    result = exercises.check(name, submission)
    assert not result.passed, f"{name}: a wrong submission passed"
    for needle in needles:
        assert needle in result.message, f"{needle!r} not in:\n{result.message}"
    return result.message


def accepted(name: str, submission) -> None:
    result = exercises.check(name, submission)
    assert result.passed, result.message


def check_learner(name, learner, hints: dict[str, str], generic: str, *needles: str) -> None:
    """``learner(..., mistake=None)`` passes; each mistake in ``hints`` earns its hint; the
    ``generic`` mistake, which no catalogue lists, gets the generic message and ``needles``."""
    accepted(name, learner)
    for mistake, hint in hints.items():
        rejected(name, functools.partial(learner, mistake=mistake), hint)
    rejected(name, functools.partial(learner, mistake=generic), GENERIC, *needles)


# ----------------------------------------------------------------------- the API
def test_names_in_teaching_order_and_each_described():
    names = exercises.names()
    assert names[:3] == ["linear", "relu_backward", "im2col"]
    assert names[-3:] == ["path_length_counts", "routed_gradient", "autocorrelation"]
    assert len(names) == len(set(names)) >= 16
    for name in names:
        text = exercises.describe(name)
        assert text.startswith(f"{name}: ") and f'check("{name}", ' in text
    assert "relu'(0) = 0" in exercises.describe("relu_backward")
    assert "first\nmaximum in row-major order" in exercises.describe("max_pool_backward")
    assert "M / (M - 1)" in exercises.describe("batch_norm_forward")
    assert "buf = momentum * buf + g" in exercises.describe("sgd_momentum_step")
    with pytest.raises(KeyError, match="no exercise named 'lineaar'"):
        exercises.describe("lineaar")


@pytest.mark.parametrize("name", exercises.names())
def test_reference_passes(name):
    result = exercises.check(name, exercises.reference(name))
    assert result.passed and "passed" in str(result), result.message
    assert "&#10004;" in result._repr_html_()


@pytest.mark.parametrize("name", exercises.names())
def test_every_catalogued_mistake_is_rejected_with_its_own_hint(name):
    exercise = _exercise(name)
    assert len(exercise.mistakes) >= 3
    for mistake in exercise.mistakes:
        rejected(name, mistake.submission, f"Hint: {mistake.hint}.")


def stub(*args):
    raise NotImplementedError


@pytest.mark.parametrize("name", exercises.names())
def test_a_stub_is_not_implemented_yet(name):
    kind = _exercise(name).kind
    submission = {"pair": (stub, stub), "number": NotImplemented}.get(kind, stub)
    assert exercises.check(name, submission).message == f"{name}: not implemented yet."


def test_a_learner_exception_is_reported_with_its_case_not_raised():
    def broken(dy, x):
        return dy / 0 if x.ndim == 2 else {}["missing"]

    message = rejected(
        "relu_backward", broken, "your code raised KeyError: 'missing'", "in case: a"
    )
    assert "in broken, line" in message
    rejected("linear", (lambda x, w, b: (x @ w.T + b, None), stub), "not implemented yet")


def test_wrong_kinds_of_submission_are_refused_in_one_sentence():
    rejected("linear", stub, "check expects a pair (forward, backward) of functions")
    rejected("relu_backward", 3, "check expects your function, but got an int")
    rejected("one_layer_gain", "1/6", "check expects a number, but got a str")
    rejected("linear", (lambda x, w, b: x @ w.T + b, stub), "the forward should return a pair")


def test_wrong_shapes_types_and_dtypes_are_refused_in_one_sentence():
    rejected(
        "relu_backward",
        lambda dy, x: dy[..., :-1],
        "dx has shape (2, 3, 4, 4) but x has shape (2, 3, 4, 5), in case",
    )
    rejected(
        "relu_backward",
        lambda dy, x: dy.astype(np.float32),
        "dx has dtype float32 but x has dtype float64",
    )
    rejected(
        "relu_backward", lambda dy, x: dy.tolist(), "dx should be a numpy array, but it is a list"
    )
    rejected(
        "relu_backward", lambda dy, x: (x > 0).astype(int), "dx has dtype int64 but x has dtype"
    )
    rejected(
        "he_std",
        lambda shape, mode: np.ones(2),
        "std should be a single number, but it has shape (2,)",
    )
    rejected(
        "conv2d_backward",
        lambda dy, x, w, s, p: (x, w),
        "should give 3 values (dx, dw, db), but it gave a tuple of 2",
    )
    message = rejected(
        "im2col",
        learner_im2col_no_padding,
        "cols has shape (18, 12) but should have shape (18, 24), in case: batch 2",
    )
    assert message.count("\n") == 0  # one sentence


# ----------------------------------------------------------------------- linear
def learner_linear_forward(x, w, b, mistake=None):
    y = np.einsum("ni,oi->no", x, w)
    return (y if mistake == "no bias" else y + b), (x, w)


def learner_linear_backward(dy, cache, mistake=None):
    x, w = cache
    dx = np.einsum("no,oi->ni", dy, w) if mistake != "w.T" else dy @ w.T
    dw = np.einsum("no,ni->oi", dy, x) if mistake != "x.T @ dy" else x.T @ dy
    db = dy.sum(axis=0) if mistake != "mean" else dy.mean(axis=0)
    return 2 * dx if mistake == "generic" else dx, dw, db


def linear_pair(mistake=None):
    return (
        lambda x, w, b: learner_linear_forward(x, w, b, mistake),
        lambda dy, cache: learner_linear_backward(dy, cache, mistake),
    )


def test_linear():
    accepted("linear", linear_pair())
    rejected(
        "linear", linear_pair("no bias"), "y is wrong", "forgot the bias", "dx, dw, db are right"
    )
    rejected("linear", linear_pair("w.T"), "raised ValueError: matmul", "check w's layout")
    rejected(
        "linear",
        linear_pair("x.T @ dy"),
        "dw has shape (3, 2) but w has shape (2, 3) (transposed?)",
        "Hint: dw has w's layout",
    )
    rejected("linear", linear_pair("mean"), "db is wrong in 2 of 3 cases", "not the mean")
    rejected(
        "linear",
        linear_pair("generic"),
        "dx is wrong in 3 of 3 cases; first in case: batch 1, 3 -> 2 features, at index",
        "finite differences",
        GENERIC,
    )


# ----------------------------------------------------------------------- relu
def test_relu_backward():
    accepted("relu_backward", lambda dy, x: dy * (x > 0))
    rejected("relu_backward", lambda dy, x: dy * (x >= 0), "with exact zeros", "relu'(0) is 0")

    def masked_copy(dy, x):
        dx = dy.copy()
        dx[x < 0] = 0
        return dx

    rejected("relu_backward", masked_copy, "relu'(0) is 0")
    rejected("relu_backward", lambda dy, x: (x > 0) * 1.0, "chain rule")
    rejected("relu_backward", lambda dy, x: dy * np.maximum(x, 0), "not times relu(x)")
    rejected("relu_backward", lambda dy, x: np.where(x > 0, dy, 0.01 * dy), "dx is wrong", GENERIC)


# ----------------------------------------------------------------------- im2col, col2im
def learner_im2col(x, KH, KW, stride, padding, mistake=None):
    """Loops: one column per (n, p, q), one row per (c, i, j)."""
    N, _, H, W = x.shape
    pads = (0, 2 * padding) if mistake == "one side" else (padding, padding)
    mode = "edge" if mistake == "edge" else "constant"
    x_pad = np.pad(x, ((0, 0), (0, 0), pads, pads), mode=mode)
    H_out = (H + 2 * padding - KH) // stride + 1
    W_out = (W + 2 * padding - KW) // stride + 1
    columns = []
    for n in range(N):
        for p in range(H_out):
            for q in range(W_out):
                window = x_pad[n, :, p * stride : p * stride + KH, q * stride : q * stride + KW]
                columns.append(window.transpose(1, 2, 0) if mistake == "ijc" else window)
    cols = np.stack([c.reshape(-1) for c in columns], axis=1)
    if mistake == "batch last":
        cols = cols.reshape(-1, N, H_out * W_out).transpose(0, 2, 1).reshape(cols.shape)
    return cols


def learner_im2col_no_padding(x, KH, KW, stride, padding):
    return learner_im2col(x, KH, KW, stride, 0)


def test_im2col():
    check_learner(
        "im2col",
        learner_im2col,
        {"ijc": "channel last", "batch last": "put the batch last", "one side": "on every side"},
        "edge",
        "cols is wrong in 2 of 4 cases",
    )


def learner_col2im(dcols, x_shape, KH, KW, stride, padding, mistake=None):
    N, C, H, W = x_shape
    H_out = (H + 2 * padding - KH) // stride + 1
    W_out = (W + 2 * padding - KW) // stride + 1
    dx_pad = np.zeros((N, C, H + 2 * padding, W + 2 * padding))
    count = np.zeros_like(dx_pad)
    column = 0
    for n in range(N):
        for p in range(H_out):
            for q in range(W_out):
                block = dcols[:, column].reshape(C, KH, KW)
                at = (
                    n,
                    slice(None),
                    slice(p * stride, p * stride + KH),
                    slice(q * stride, q * stride + KW),
                )
                if mistake == "overwrite":
                    dx_pad[at] = block
                else:
                    dx_pad[at] += block
                count[at] += 1
                column += 1
    if mistake == "average":
        dx_pad /= np.maximum(count, 1)
    if mistake == "corner":
        return dx_pad[:, :, :H, :W]
    return dx_pad[:, :, padding : padding + H, padding : padding + W]


def test_col2im():
    accepted("col2im", learner_col2im)
    rejected(
        "col2im",
        lambda *a: learner_col2im(*a, mistake="overwrite"),
        "dx is wrong",
        "add (+=) into dx",
    )
    rejected("col2im", lambda *a: learner_col2im(*a, mistake="corner"), "off by the padding")

    def rows_channel_last(dcols, x_shape, KH, KW, stride, padding):
        C = x_shape[1]
        reordered = dcols.reshape(KH, KW, C, -1).transpose(2, 0, 1, 3).reshape(dcols.shape)
        return learner_col2im(reordered, x_shape, KH, KW, stride, padding)

    rejected("col2im", rows_channel_last, "read as (i, j, c)")
    rejected(
        "col2im",
        lambda *a: learner_col2im(*a, mistake="average"),
        "dx is wrong",
        "finite differences",
        GENERIC,
    )


# ----------------------------------------------------------------------- conv2d
def learner_conv2d_forward(x, w, b, stride, padding, mistake=None):
    N, _, H, W = x.shape
    C_out, _, KH, KW = w.shape
    pads = (0, 2 * padding) if mistake == "one side" else (padding, padding)
    x_pad = np.pad(x, ((0, 0), (0, 0), pads, pads))
    kernel = w[:, :, ::-1, ::-1] if mistake == "flipped" else w
    H_out, W_out = (H + 2 * padding - KH) // stride + 1, (W + 2 * padding - KW) // stride + 1
    y = np.zeros((N, C_out, H_out, W_out))
    for p in range(H_out):
        for q in range(W_out):
            window = x_pad[:, :, p * stride : p * stride + KH, q * stride : q * stride + KW]
            y[:, :, p, q] = np.einsum("ncij,ocij->no", window, kernel)
    if mistake == "no bias":
        return y
    return y + b[:, None, None] * (2 if mistake == "bias twice" else 1)


def learner_conv2d_forward_by_im2col(x, w, b, stride, padding, mistake=None):
    """im2col and one product; the product Y (C_out, N*H_out*W_out) back to NCHW."""
    N, _, H, W = x.shape
    C_out, _, KH, KW = w.shape
    H_out, W_out = (H + 2 * padding - KH) // stride + 1, (W + 2 * padding - KW) // stride + 1
    Y = w.reshape(C_out, -1) @ learner_im2col(x, KH, KW, stride, padding) + b[:, None]
    if mistake == "no transpose":
        return Y.reshape(N, C_out, H_out, W_out)
    return Y.reshape(C_out, N, H_out, W_out).transpose(1, 0, 2, 3)


def test_conv2d_forward():
    check_learner(
        "conv2d_forward",
        learner_conv2d_forward,
        {"flipped": "true convolution", "no bias": "bias is missing", "one side": "on every side"},
        "bias twice",
        "y is wrong in 4 of 4 cases",
    )
    accepted("conv2d_forward", learner_conv2d_forward_by_im2col)
    rejected(
        "conv2d_forward",
        functools.partial(learner_conv2d_forward_by_im2col, mistake="no transpose"),
        "y is wrong in 3 of 4 cases",
        "images and channels are mixed up",
    )

    def bias_after_reshape(x, w, b, stride, padding):
        y = learner_conv2d_forward_by_im2col(
            x, w, np.zeros_like(b), stride, padding, "no transpose"
        )
        return y + b[:, None, None]

    rejected("conv2d_forward", bias_after_reshape, "images and channels are mixed up")


def learner_conv2d_backward(dy, x, w, stride, padding, mistake=None):
    """Scatter-add loops, as the forward read the inputs."""
    C_out, _, KH, KW = w.shape
    x_pad = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    dx_pad, dw = np.zeros_like(x_pad), np.zeros_like(w)
    kernel = w[:, :, ::-1, ::-1] if mistake == "flipped dx" else w
    for p in range(dy.shape[2]):
        for q in range(dy.shape[3]):
            rows, cols = slice(p * stride, p * stride + KH), slice(q * stride, q * stride + KW)
            dx_pad[:, :, rows, cols] += np.einsum("no,ocij->ncij", dy[:, :, p, q], kernel)
            dw += np.einsum("no,ncij->ocij", dy[:, :, p, q], x_pad[:, :, rows, cols])
    H, W = x.shape[2:]
    dx = dx_pad[:, :, padding : padding + H, padding : padding + W]
    db = np.zeros(C_out) if mistake == "no db" else dy.sum(axis=(0, 2, 3))
    if mistake == "db mean":
        db = dy.mean(axis=(0, 2, 3))
    if mistake == "dw mean":
        dw /= len(x)
    return (dx * 0.5 if mistake == "generic" else dx), dw, db


def test_conv2d_backward():
    check_learner(
        "conv2d_backward",
        learner_conv2d_backward,
        {
            "flipped dx": "dx used the flipped kernel",
            "no db": "bias gradient is missing",
            "dw mean": "dw sums over the batch",
            "db mean": "db sums dy over the batch and every position",
        },
        "generic",
        "dx is wrong in 4 of 4 cases",
        "dw, db are right",
    )


def learner_conv2d_backward_by_im2col(dy, x, w, stride, padding, mistake=None):
    """dY @ cols.T and col2im(W2.T @ dY), dY with a row per output channel."""
    C_out, _, KH, KW = w.shape
    if mistake == "no transpose":
        dY = dy.reshape(C_out, -1)
    else:
        dY = dy.transpose(1, 0, 2, 3).reshape(C_out, -1)
    dw = (dY @ learner_im2col(x, KH, KW, stride, padding).T).reshape(w.shape)
    dx = learner_col2im(w.reshape(C_out, -1).T @ dY, x.shape, KH, KW, stride, padding)
    return dx, dw, dY.sum(axis=1)


def test_conv2d_backward_by_im2col():
    accepted("conv2d_backward", learner_conv2d_backward_by_im2col)
    untransposed = functools.partial(learner_conv2d_backward_by_im2col, mistake="no transpose")
    message = rejected(
        "conv2d_backward",
        untransposed,
        "dx is wrong in 3 of 4 cases",
        "dw is wrong in 3 of 4 cases",
        "db is wrong in 3 of 4 cases",
    )
    assert message.count("Hint: images and channels are mixed up") == 1  # one hint for all

    def db_from_dy(dy, x, w, stride, padding):
        dx, dw, _ = untransposed(dy, x, w, stride, padding)
        return dx, dw, dy.sum(axis=(0, 2, 3))

    rejected("conv2d_backward", db_from_dy, "images and channels are mixed up", "db is right")


# ----------------------------------------------------------------------- pooling
def learner_max_pool_backward(dy, x, kernel_size, stride, mistake=None):
    dx = np.zeros_like(x)
    k = kernel_size
    for n, c, p, q in np.ndindex(*dy.shape):
        window = x[n, c, p * stride : p * stride + k, q * stride : q * stride + k]
        target = dx[n, c, p * stride : p * stride + k, q * stride : q * stride + k]
        if mistake == "all ties":
            target += (window == window.max()) * dy[n, c, p, q]
            continue
        if mistake == "average":
            target += dy[n, c, p, q] / k**2
            continue
        if mistake == "split ties":
            winners = window == window.max()
            target += winners * dy[n, c, p, q] / winners.sum()
            continue
        flat = window.reshape(-1)
        i = flat.size - 1 - np.argmax(flat[::-1]) if mistake == "last" else np.argmax(flat)
        if mistake == "overwrite":
            target[divmod(i, k)] = dy[n, c, p, q]
        else:
            target[divmod(i, k)] += dy[n, c, p, q]
    return dx


def test_max_pool_backward():
    check_learner(
        "max_pool_backward",
        learner_max_pool_backward,
        {
            "all ties": "not every element equal to the maximum",
            "last": "not the last",
            "overwrite": "receives both gradients",
            "split ties": "it is not shared among the tied elements",
        },
        "average",
        "dx is wrong in 4 of 4 cases",
    )


def test_global_avg_pool_backward():
    def spread(divisor):
        return lambda dy, shape: np.ones(shape) * dy[:, :, None, None] / divisor(*shape)

    accepted("global_avg_pool_backward", spread(lambda N, C, H, W: H * W))
    rejected("global_avg_pool_backward", spread(lambda N, C, H, W: 1), "divide by H*W")
    rejected("global_avg_pool_backward", spread(lambda N, C, H, W: N * H * W), "not over the batch")
    rejected("global_avg_pool_backward", spread(lambda N, C, H, W: H), "not by H alone")
    rejected(
        "global_avg_pool_backward",
        spread(lambda N, C, H, W: H + W),
        "dx is wrong in 3 of 3 cases",
        GENERIC,
    )


# ----------------------------------------------------------------------- batch norm
def learner_bn_forward(x, gamma, beta, running_mean, running_var, momentum, eps, mistake=None):
    axes = (0, 2, 3)
    M = len(x) if mistake == "M = N" else x.size // x.shape[1]
    mean, var = x.mean(axis=axes), ((x - x.mean(axis=axes, keepdims=True)) ** 2).mean(axis=axes)
    std = np.sqrt(var) + eps if mistake == "eps outside" else np.sqrt(var + eps)
    if mistake == "no eps":
        std = np.sqrt(var)
    xhat = (x - mean[:, None, None]) / std[:, None, None]
    scale, shift = (beta, gamma) if mistake == "swapped" else (gamma, beta)
    y = scale[:, None, None] * xhat + shift[:, None, None]
    keep = momentum if mistake == "reversed momentum" else 1 - momentum
    batch_var = var if mistake == "biased running" else var * M / (M - 1)
    if mistake == "in place":
        running_mean *= keep
    return y, keep * running_mean + (1 - keep) * mean, keep * running_var + (1 - keep) * batch_var


def test_batch_norm_forward():
    check_learner(
        "batch_norm_forward",
        learner_bn_forward,
        {
            "biased running": "takes the unbiased variance",
            "reversed momentum": "momentum is the weight of the new batch",
            "eps outside": "eps goes inside the square root",
            "in place": "writes into one of its inputs",
            "no eps": "eps is missing",
            "M = N": "not the N samples alone",
        },
        "swapped",
        "y is wrong",
        "running_mean, running_var are right",
    )


def test_a_small_error_is_printed_with_the_digits_that_show_it():
    message = rejected(
        "batch_norm_forward", functools.partial(learner_bn_forward, mistake="no eps"), "Hint:"
    )
    line = message.splitlines()[0]
    assert "y is wrong in 4 of 4 cases" in line and "relative" in line, line
    values = re.search(r"expected (\S+), received (\S+) \(differs by (\S+), relative (\S+)\)", line)
    want, got, gap, relative = map(float, values.groups())
    assert want != got and abs(want - got) == pytest.approx(gap, rel=0.05)
    assert 1e-7 < relative < 1e-3 and abs(want - got) / abs(want) == pytest.approx(
        relative, rel=0.05
    )
    far = rejected("relu_backward", lambda dy, x: 2 * dy * (x > 0), GENERIC)
    assert "differs by" not in far  # a large error keeps the short form


def learner_bn_backward(dy, x, gamma, eps, mistake=None):
    """Staged through the graph: xc = x - mean, var, inv_std, xhat, y, in reverse."""
    axes, M = (0, 2, 3), x.size // x.shape[1]
    xc = x - x.mean(axis=axes, keepdims=True)
    var = (xc**2).mean(axis=axes, keepdims=True)
    eps = 0.0 if mistake == "no eps" else eps
    inv_std = 1 / np.sqrt(var + eps)
    xhat = xc * inv_std
    dbeta = dy.sum(axis=axes)
    dgamma = (dy * (x if mistake == "dgamma x" else xhat)).sum(axis=axes)
    dxhat = dy * gamma[:, None, None]
    dinv_std = (dxhat * xc).sum(axis=axes, keepdims=True)
    dvar = dinv_std * -0.5 * (var + eps) ** -1.5 * (-1 if mistake == "sign" else 1)
    if mistake == "M = N":  # as for a (N, D) input
        M = len(x)
    dxc = dxhat * inv_std + dvar * 2 * xc / M
    dx = dxc - dxc.sum(axis=axes, keepdims=True) / M
    if mistake == "constants":
        dx = dxhat * inv_std
    if mistake == "no mean term":
        dx = dxc
    return dx, dgamma, dbeta


def test_batch_norm_backward():
    check_learner(
        "batch_norm_backward",
        learner_bn_backward,
        {
            "constants": "treated mean and var as constants",
            "no mean term": "path through the mean",
            "dgamma x": "not with x",
            "M = N": "not over the N samples alone",
            "no eps": "eps is missing",
        },
        "sign",
        "dx is wrong in 4 of 4 cases",
    )


# ----------------------------------------------------------------------- cross-entropy
def learner_ce_forward(logits, targets, mistake=None):
    z = logits if mistake == "unstable" else logits - logits.max(axis=1, keepdims=True)
    probs = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    picked = probs[np.arange(len(targets)), targets]
    losses = -picked if mistake == "no log" else -np.log(picked)
    return float(losses.sum() if mistake == "sum" else losses.mean()), (probs, targets)


def learner_ce_backward(dloss, cache, mistake=None):
    probs, targets = cache
    d = probs.copy()
    d[np.arange(len(targets)), targets] -= 1
    N = 1 if mistake == "no N" else len(targets)
    return d / N * (1 if mistake == "no dloss" else dloss)


def ce_pair(mistake=None):
    return (
        lambda logits, targets: learner_ce_forward(logits, targets, mistake),
        lambda dloss, cache: learner_ce_backward(dloss, cache, mistake),
    )


def test_cross_entropy():
    accepted("cross_entropy", ce_pair())
    rejected("cross_entropy", ce_pair("sum"), "loss is wrong", "not the sum", "dlogits is right")
    rejected("cross_entropy", ce_pair("unstable"), "received nan", "subtract each row's maximum")
    rejected("cross_entropy", ce_pair("no N"), "dlogits is wrong", "has the 1/N too")
    rejected("cross_entropy", ce_pair("no dloss"), "multiply by the upstream gradient dloss")
    rejected("cross_entropy", ce_pair("no log"), "loss is wrong in 4 of 4 cases", GENERIC)


# ----------------------------------------------------------------------- residual block
def test_residual_backward():
    def mask(dy, out):
        return dy * (out > 0)

    accepted(
        "residual_backward", lambda dy, out, main, short: short(mask(dy, out)) + main(mask(dy, out))
    )
    rejected(
        "residual_backward",
        lambda dy, out, main, short: main(mask(dy, out)),
        "only the residual branch",
    )
    rejected(
        "residual_backward", lambda dy, out, main, short: short(mask(dy, out)), "only the shortcut"
    )
    rejected(
        "residual_backward",
        lambda dy, out, main, short: main(mask(dy, out)) + short(dy),
        "gets the masked gradient too",
    )
    rejected(
        "residual_backward", lambda dy, out, main, short: main(dy) + short(dy), "has a backward too"
    )
    at_or_above_zero = lambda dy, out: dy * (out >= 0)  # noqa: E731
    rejected(
        "residual_backward",
        lambda dy, out, main, short: (
            main(at_or_above_zero(dy, out)) + short(at_or_above_zero(dy, out))
        ),
        "out >= 0 holds everywhere",
    )
    rejected(
        "residual_backward",
        lambda dy, out, main, short: 2 * main(mask(dy, out)) + short(mask(dy, out)),
        "dx is wrong in 3 of 3 cases",
        GENERIC,
    )

    def masking_dy_in_place(dy, out, main, short):
        dy[out <= 0] = 0
        return main(dy) + short(dy)

    rejected("residual_backward", masking_dy_in_place, "writes into one of its inputs")


# ----------------------------------------------------------------------- SGD, He init
def learner_sgd(p, grad, buf, lr, momentum, weight_decay, mistake=None):
    g = grad + weight_decay * p
    if mistake == "velocity":
        v = momentum * buf - lr * g
        return p + v, v
    if mistake == "in place":
        p -= lr * g
    new_buf = momentum * buf + ((1 - momentum) * g if mistake == "dampened" else g)
    step = buf if mistake == "old buf" else new_buf
    return p - (1 if mistake == "no lr" else lr) * step, new_buf


def test_sgd_momentum_step():
    check_learner(
        "sgd_momentum_step",
        learner_sgd,
        {
            "velocity": "velocity in parameter units",
            "dampened": "no dampening",
            "old buf": "update buf first",
            "in place": "writes into one of its inputs",
        },
        "no lr",
        "p is wrong in 4 of 4 cases",
    )
    rejected(
        "sgd_momentum_step",
        lambda p, *a: (p[:1], p),
        "p after step 0 has shape (1, 4) but the parameter has shape (3, 4)",
    )


def test_he_std():
    def learner(std_of_fan, swap=False):
        def he_std(shape, mode):
            receptive = math.prod(shape[2:])
            fan_in, fan_out = shape[1] * receptive, shape[0] * receptive
            return std_of_fan(fan_out if (mode == "fan_in") == swap else fan_in)

        return he_std

    accepted("he_std", learner(lambda fan: (2 / fan) ** 0.5))
    rejected(
        "he_std", learner(lambda fan: (2 / fan) ** 0.5, swap=True), "fan_in and fan_out are swapped"
    )
    rejected("he_std", learner(lambda fan: fan**-0.5), "LeCun")
    rejected("he_std", learner(lambda fan: 2 / fan), "the variance 2 / fan")
    rejected(
        "he_std",
        learner(lambda fan: 2**0.5 / fan),
        "std is wrong in 5 of 5 cases; first in case: conv weight (64, 3, 7, 7), mode fan_out, expected",
        GENERIC,
    )


# ----------------------------------------------------------------------- questions
def test_one_layer_gain_by_simulation():
    """Mean square of dz_prev over dz through relu -> conv (padding 0: no border losses)."""
    rng = np.random.default_rng(5)
    C, shape = 16, (16, 16, 3, 3)
    ratios = []
    for _ in range(8):
        z_prev = rng.standard_normal((4, C, 10, 10))
        h, relu_cache = relu_forward(z_prev)
        z, conv_cache = conv2d_forward(h, torch_default_uniform(shape, C * 9, rng, np.float64))
        dz = rng.standard_normal(z.shape)
        dz_prev = relu_backward(conv2d_backward(dz, conv_cache)[0], relu_cache)
        ratios.append(np.sum(dz_prev**2) / np.sum(dz**2))
    assert abs(np.mean(ratios) - 1 / 6) < 0.01
    assert exercises.reference("one_layer_gain") == pytest.approx(1 / 6)


def test_questions():
    accepted("one_layer_gain", 0.1667)
    accepted("one_layer_gain", np.array(1 / 6))  # a 0-d array, as np.mean gives
    accepted("one_layer_gain", np.float32(1 / 6))
    rejected("one_layer_gain", np.array([1 / 6]), "check expects a number, but got an array")
    rejected("one_layer_gain", True, "check expects a number, but got a bool")
    rejected(
        "one_layer_gain", math.sqrt(1 / 6), "0.408248 is not the answer", "the factor on the norm"
    )
    rejected("one_layer_gain", 1 / 3, "another factor 1/2")
    rejected("one_layer_gain", 0.5, "Var(U(-a, a)) is a^2 / 3")
    message = rejected("one_layer_gain", 0.2, "0.2 is not the answer", GENERIC)
    assert "0.1666" not in message  # a question never gives its answer away
    assert exercises.reference("basic_block_params") == 2 * (64 * 64 * 9) + 2 * 2 * 64 == 73_984
    accepted("basic_block_params", 73_984)
    rejected("basic_block_params", 73_728, "gamma and beta")
    rejected("basic_block_params", 74_240, "buffers, not trainable parameters")
    rejected("basic_block_params", 74_112, "have no bias")
    rejected("basic_block_params", 80_000, GENERIC)


# ----------------------------------------------------------------------- pca
def learner_pca_2d(emb, mistake=None):
    """PCA the other way: the top eigenvectors of the covariance matrix."""
    centred = emb if mistake == "not centred" else emb - emb.mean(axis=0)
    _, vectors = np.linalg.eigh(centred.T @ centred)  # ascending eigenvalues
    top = vectors[:, :2] if mistake == "last two" else vectors[:, ::-1][:, :2]
    top = top[:, ::-1] if mistake == "swapped" else top
    proj = centred @ top
    return proj / np.linalg.norm(proj, axis=0) if mistake == "normalised" else proj


def test_pca_2d():
    accepted("pca_2d", learner_pca_2d)
    accepted("pca_2d", lambda emb: -learner_pca_2d(emb))  # a direction's sign is free
    rejected("pca_2d", lambda emb: learner_pca_2d(emb, "not centred"), "centre the embeddings")
    rejected("pca_2d", lambda emb: learner_pca_2d(emb, "last two"), "not the last two")
    rejected("pca_2d", lambda emb: learner_pca_2d(emb, "normalised"), "U[:, :2] alone")
    rejected("pca_2d", lambda emb: learner_pca_2d(emb, "swapped"), "largest variance first")
    rejected(
        "pca_2d",
        lambda emb: learner_pca_2d(emb) / len(emb),  # scaled: no catalogue has it
        "proj is wrong in 3 of 3 cases",
        GENERIC,
    )


def test_exercises_run_on_the_readable_tier_only():
    code = (
        "import sys\nfrom nnscratch import exercises as e\n"
        "assert all(e.check(n, e.reference(n)).passed for n in e.names())\n"
        "print(sorted(m for m in sys.modules if m == 'numba' or m.startswith('nnscratch.functional.fast')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


# ----------------------------------------------------------------------- paths
def learner_path_length_counts(n, mistake=None):
    """Pascal's triangle, row by row (or, for the generic bug, counted on sampled paths)."""
    if mistake == "sampled":  # an estimate from 4096 random paths, scaled to 2^n
        lengths = np.random.default_rng(0).integers(0, 2, size=(4096, n)).sum(axis=1)
        return np.bincount(lengths, minlength=n + 1) / 4096 * 2**n
    row = [1]
    for _ in range(n + 1 if mistake == "n + 1 blocks" else n):
        row = [a + b for a, b in zip([0, *row], [*row, 0])]
    if mistake == "no last length":
        row = row[:-1]
    if mistake == "probabilities":
        return np.array(row) / 2**n
    return np.array(row)


def test_path_length_counts():
    check_learner(
        "path_length_counts",
        learner_path_length_counts,
        {
            "no last length": "that is n + 1 counts, k = 0..n",
            "n + 1 blocks": "those are the counts of n + 1 blocks",
            "probabilities": "those are the probabilities of each length",
        },
        "sampled",
        "counts is wrong in",
    )
    accepted("path_length_counts", lambda n: [math.comb(n, k) for k in range(n + 1)])  # a list
    rejected("path_length_counts", lambda n: [2**k for k in range(n + 1)], "2^k counts the ways")
    counts = exercises.reference("path_length_counts")(54)
    assert counts.sum() == 2**54 and counts.argmax() == 27  # exact in float64


def learner_routed_gradient(dy, backwards, path, mistake=None):
    """By index, from the last block down to the first."""
    n = len(backwards)
    order = range(n) if mistake == "forward order" else range(n - 1, -1, -1)
    d = dy
    for i in order:
        branch, shortcut = backwards[i]
        taken = path[n - 1 - i] if mistake == "path reversed" else path[i]
        if mistake == "both sides":
            d = branch(d) + shortcut(d)
        elif mistake == "swapped":
            d = shortcut(d) if taken else branch(d)
        elif mistake == "free shortcut":
            d = branch(d) if taken else d
        else:
            d = branch(d) if taken else shortcut(d)
    return d


def test_routed_gradient():
    check_learner(
        "routed_gradient",
        learner_routed_gradient,
        {
            "forward order": "from the last to the first",
            "both sides": "that is the full backward",
            "swapped": "the sides are swapped",
            "free shortcut": "a shortcut is not a free pass",
        },
        "path reversed",
        "dx is wrong in",
    )


def test_routed_gradients_of_all_paths_add_up_to_the_full_backward():
    """The identity the exercise's notebook verifies on a real net, here on the exercise's cases."""
    import itertools

    route = exercises.reference("routed_gradient")
    for case in _exercise("routed_gradient").cases():
        dy, backwards, _ = case.args.values()
        full = learner_routed_gradient(dy, backwards, [True] * len(backwards), mistake="both sides")
        total = sum(
            route(dy, backwards, path)
            for path in itertools.product((False, True), repeat=len(backwards))
        )
        np.testing.assert_allclose(total, full, rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------- autocorrelation
def learner_autocorrelation(s, mistake=None):
    """With np.correlate: every lag's sum at once."""
    c = s if mistake == "not centred" else s - s.mean()
    P = len(s)
    if mistake == "circular":  # by FFT without zero padding: lags wrap around
        sums = np.fft.ifft(np.abs(np.fft.fft(c)) ** 2).real
    else:
        full = np.correlate(c, c, "full")
        sums = full[:P] if mistake == "first half" else full[P - 1 :]
    energy = np.sum(c**2)
    if mistake == "per lag":
        return (sums / (P - np.arange(P))) / (energy / P)
    if mistake == "unnormalised":
        return sums
    return sums / energy


def test_autocorrelation():
    from nnscratch.experiments.shattered import autocorrelation as library

    check_learner(
        "autocorrelation",
        learner_autocorrelation,
        {
            "not centred": "centre the curve first",
            "per lag": "its own number of terms P - k",
            "unnormalised": "so that r(0) = 1",
            "first half": "lag 0 in the middle",
        },
        "circular",
        "r is wrong in",
    )

    def by_loops(s, shift=0):
        """A list, one lag at a time; ``shift=1`` slices one lag too far."""
        c = s - np.mean(s)
        P = len(c)
        return [float(c[: P - k - shift] @ c[k + shift :] / (c @ c)) for k in range(P)]

    accepted("autocorrelation", by_loops)
    rejected("autocorrelation", functools.partial(by_loops, shift=1), "r is shifted by one lag")
    reference = exercises.reference("autocorrelation")
    np.testing.assert_allclose(reference([1.0, 3.0, 2.0]), reference(np.array([1.0, 3.0, 2.0])))
    for case in _exercise("autocorrelation").cases():
        s = case.args["s"]
        np.testing.assert_allclose(exercises.reference("autocorrelation")(s), library(s))


# ----------------------------------------------------------------------- pre-activation blocks
def learner_preact_backward(dy, out, pre, branch, short, shared, mistake=None):
    """Each side's gradient first, then where the shared BN-ReLU (if any) sits."""
    d = np.where(out > 0, dy, 0.0) if mistake == "mask" else dy
    parts = {"branch": branch(d), "shortcut": short(d)}
    if mistake == "no shortcut":
        parts["shortcut"] = np.zeros_like(parts["shortcut"])
    if mistake == "minus":
        parts["shortcut"] = -parts["shortcut"]
    through_pre = shared or mistake == "always through pre"
    if mistake == "shortcut outside":
        through_pre = False
    if through_pre:
        return pre(parts["branch"] + parts["shortcut"])
    return parts["shortcut"] + pre(parts["branch"])


def test_preact_residual_backward():
    check_learner(
        "preact_residual_backward",
        learner_preact_backward,
        {
            "mask": "has no ReLU after the `+`",
            "no shortcut": "the shortcut's gradient is missing",
            "shortcut outside": "with shared=True the BN-ReLU comes before the split",
            "always through pre": "with shared=False the shortcut carries x itself",
        },
        "minus",
        "dx is wrong in 4 of 4 cases",
    )
    rejected(
        "preact_residual_backward",
        lambda dy, out, pre, branch, short, shared: branch(dy) + short(dy),
        "must go back through pre_backward too",
    )
    rejected(
        "preact_residual_backward",
        lambda dy, out, pre, branch, short, shared: learner_preact_backward(
            dy * (out >= 0), out, pre, branch, short, shared
        ),
        "has no ReLU after the `+`",
    )

    def masking_in_place(dy, out, pre, branch, short, shared):
        dy[out <= 0] = 0
        return learner_preact_backward(dy, out, pre, branch, short, shared)

    rejected("preact_residual_backward", masking_in_place, "writes into one of its inputs")


def learner_unrolled(d_top, branch_backwards, mistake=None):
    """Index by index from the top, keeping every intermediate gradient."""
    n = len(branch_backwards)
    order = range(n) if mistake == "bottom up" else range(n - 1, -1, -1)
    grads = [d_top]  # dL/dx_n, dL/dx_{n-1}, ...
    for k in order:
        g = grads[-1]
        part = branch_backwards[k](d_top if mistake == "top for all" else g)
        if mistake == "halved":
            part = 0.5 * part
        grads.append(part if mistake == "plain" else g + part)
    return grads[-1] - d_top if mistake == "no top" else grads[-1]


def test_unrolled_gradient():
    check_learner(
        "unrolled_gradient",
        learner_unrolled,
        {
            "top for all": "each branch receives the gradient at its own output",
            "bottom up": "backward starts at the top",
            "plain": "as in a plain net",
            "no top": "d_top itself is a term",
        },
        "halved",
        "dx is wrong in 4 of 4 cases",
    )
    # With one block, the order and the top-for-all mistakes are right: the other cases catch them.
    message = rejected(
        "unrolled_gradient", functools.partial(learner_unrolled, mistake="bottom up")
    )
    assert "in 3 of 4 cases" in message


# ----------------------------------------------------------------------- float32
def test_the_array_exercises_are_checked_again_in_float32():
    twinned = {n for n in exercises.names() if checking._twins(_exercise(n))}
    assert twinned == set(exercises.names()) - {
        "residual_backward",  # their arguments hold functions, whose arrays stay float64
        "preact_residual_backward",
        "unrolled_gradient",
        "routed_gradient",
        "he_std",  # no arrays among the arguments
        "path_length_counts",
        "one_layer_gain",
        "basic_block_params",
    }
    for name in twinned:
        assert "again in float32" in exercises.check(name, exercises.reference(name)).message
    seen = set()

    def relu_backward(dy, x):
        seen.add((dy.dtype, x.dtype))
        return dy * (x > 0)

    accepted("relu_backward", relu_backward)
    assert seen == {(np.dtype(np.float64),) * 2, (np.dtype(np.float32),) * 2}


@pytest.mark.parametrize(
    "name, learner, float32_out",
    [
        ("conv2d_forward", learner_conv2d_forward, False),  # np.zeros: float64 results
        ("conv2d_forward", learner_conv2d_forward_by_im2col, True),
        ("conv2d_backward", learner_conv2d_backward_by_im2col, False),
        ("batch_norm_forward", learner_bn_forward, True),
        ("batch_norm_backward", learner_bn_backward, True),
        ("max_pool_backward", learner_max_pool_backward, True),
        ("autocorrelation", learner_autocorrelation, True),
        ("pca_2d", learner_pca_2d, True),
        ("sgd_momentum_step", learner_sgd, False),  # the runner refuses a float64 p
    ],
)
def test_a_float32_computation_passes_where_the_float64_one_does(name, learner, float32_out):
    accepted(name, learner)
    args = checking._twins(_exercise(name))[0].case.args
    if float32_out:
        outputs = learner(*args.values())
        dtypes = {o.dtype for o in (outputs if isinstance(outputs, tuple) else (outputs,))}
        assert dtypes <= {np.dtype(np.float32)}


def test_a_float32_failure_is_reported_in_float32():
    def off_in_float32(dy, x):
        dx = dy * (x > 0)
        return dx if x.dtype == np.float64 else dx * np.float32(1.0002)

    rejected(
        "relu_backward",
        off_in_float32,
        "dx is wrong in 3 of 3 cases; first in case: a (2, 3, 4, 5) input away from 0, in float32",
        "relative 0.0002)",
        "Hint: the float64 cases pass",
    )
    rejected(
        "relu_backward",
        lambda dy, x: (dy * (x > 0)).astype(np.float16 if x.dtype == np.float32 else x.dtype),
        "dx has dtype float16 but x has dtype float32 (compute in the input's dtype), in case: "
        "a (2, 3, 4, 5) input away from 0, in float32",
    )

    def float64_only(dy, x, gamma, eps):
        assert x.dtype == np.float64
        return learner_bn_backward(dy, x, gamma, eps)

    rejected("batch_norm_backward", float64_only, "raised AssertionError", "in float32.")
