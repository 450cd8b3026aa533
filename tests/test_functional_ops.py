"""Batch norm, ReLU, pooling, linear and the losses: gradient checks and conventions."""

import numpy as np
import pytest
from conftest import kink_free, readonly

from nnscratch.gradcheck import GradcheckError, check_op


def bn(F, training, running_mean, running_var):
    def forward(x, gamma, beta):
        return F.batch_norm2d_forward(
            x, gamma, beta, running_mean.copy(), running_var.copy(), training=training
        )

    return forward


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(4, 3, 5, 3), (2, 2, 1, 1), (1, 3, 4, 4)])
def test_batch_norm_gradcheck(F, training, shape, rng):
    C = shape[1]
    x = rng.standard_normal(shape) * 2 + 1
    gamma, beta = rng.standard_normal(C) + 1.5, rng.standard_normal(C)
    forward = bn(F, training, rng.standard_normal(C), rng.uniform(0.5, 2, C))
    errors = check_op(forward, F.batch_norm2d_backward, {"x": x, "gamma": gamma, "beta": beta})
    assert max(errors.values()) < 1e-6


def test_batch_norm_normalises_per_channel(F, rng):
    x = rng.standard_normal((8, 3, 4, 5)) * np.array([1, 5, 0.1])[None, :, None, None] + 3
    y, _ = F.batch_norm2d_forward(
        x, np.ones(3), np.zeros(3), np.zeros(3), np.ones(3), training=True
    )
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    # biased variance, with eps=1e-5 in the denominator
    np.testing.assert_allclose(
        y.var(axis=(0, 2, 3)), x.var(axis=(0, 2, 3)) / (x.var(axis=(0, 2, 3)) + 1e-5)
    )


def test_batch_norm_running_stats_closed_form(F, rng):
    """After k steps with momentum m: r_k = (1-m)^k r_0 + sum_i m (1-m)^(k-1-i) s_i."""
    C, m = 3, 0.1
    running_mean, running_var = np.zeros(C), np.ones(C)
    batches = [rng.standard_normal((4, C, 3, 2)) * (i + 1) + i for i in range(5)]
    for x in batches:
        F.batch_norm2d_forward(
            x, np.ones(C), np.zeros(C), running_mean, running_var, training=True, momentum=m
        )
    k = len(batches)
    M = 4 * 3 * 2
    want_mean = sum(
        m * (1 - m) ** (k - 1 - i) * x.mean(axis=(0, 2, 3)) for i, x in enumerate(batches)
    )
    want_var = (1 - m) ** k + sum(
        m * (1 - m) ** (k - 1 - i) * x.var(axis=(0, 2, 3)) * M / (M - 1)
        for i, x in enumerate(batches)
    )
    np.testing.assert_allclose(running_mean, want_mean, rtol=1e-12)
    np.testing.assert_allclose(running_var, want_var, rtol=1e-12)
    # eval mode uses exactly these statistics
    x = rng.standard_normal((2, C, 3, 3))
    gamma, beta = rng.standard_normal(C), rng.standard_normal(C)
    y, _ = F.batch_norm2d_forward(x, gamma, beta, running_mean, running_var, training=False)
    c = (slice(None), None, None)
    want = (x - running_mean[c]) / np.sqrt(running_var[c] + 1e-5) * gamma[c] + beta[c]
    np.testing.assert_allclose(y, want, rtol=1e-12)


def test_batch_norm_float32_and_errors(F, rng):
    x = rng.standard_normal((4, 3, 2, 2)).astype(np.float32)
    p = [
        np.ones(3, np.float32),
        np.zeros(3, np.float32),
        np.zeros(3, np.float32),
        np.ones(3, np.float32),
    ]
    y, cache = F.batch_norm2d_forward(x, *p, training=True)
    grads = F.batch_norm2d_backward(readonly(np.ones_like(y)), cache)
    assert y.dtype == np.float32 and all(g.dtype == np.float32 for g in grads)
    with pytest.raises(ValueError, match=r"C=3 channels.*got shape \(4, 2, 2, 2\)"):
        F.batch_norm2d_forward(x[:, :2], *p, training=True)
    with pytest.raises(ValueError, match="more than one value per channel"):
        F.batch_norm2d_forward(x[:1, :, :1, :1], *p, training=True)


def test_relu_gradcheck_and_kink_convention(F, rng):
    x = kink_free(rng.standard_normal((3, 4, 5)))
    assert check_op(F.relu_forward, F.relu_backward, {"x": x})["x"] < 1e-6
    _, cache = F.relu_forward(np.array([-1.0, 0.0, 2.0]))
    np.testing.assert_array_equal(
        F.relu_backward(readonly(np.ones(3)), cache), [0, 0, 1]
    )  # relu'(0)=0


@pytest.mark.parametrize(
    "kernel, stride, padding", [(2, None, 0), (3, 2, 1), ((3, 2), (1, 2), (1, 0))]
)
def test_max_pool_gradcheck(F, kernel, stride, padding, rng):
    # a permutation of well-separated values: no ties, and eps never changes a winner
    x = rng.permutation(2 * 3 * 7 * 6).reshape(2, 3, 7, 6) / 10.0
    forward = lambda x: F.max_pool2d_forward(x, kernel, stride, padding)  # noqa: E731
    assert check_op(forward, F.max_pool2d_backward, {"x": x})["x"] < 1e-6


def test_max_pool_values_and_tie(F, rng):
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    y, cache = F.max_pool2d_forward(x, 2)
    np.testing.assert_array_equal(y[0, 0], [[5, 7], [13, 15]])
    ties = np.ones((1, 1, 2, 2))
    y, cache = F.max_pool2d_forward(ties, 2)
    dx = F.max_pool2d_backward(readonly(np.full((1, 1, 1, 1), 3.0)), cache)
    assert dx.sum() == 3.0 and np.count_nonzero(dx) == 1  # the tie goes to one element
    y, _ = F.max_pool2d_forward(-np.ones((1, 1, 3, 3)), 3, 2, 1)  # padding never wins
    np.testing.assert_array_equal(y, -1)


def test_global_avg_pool(F, rng):
    x = rng.standard_normal((2, 3, 5, 4))
    y, _ = F.global_avg_pool2d_forward(x)
    np.testing.assert_allclose(y, x.mean(axis=(2, 3)))
    assert check_op(F.global_avg_pool2d_forward, F.global_avg_pool2d_backward, {"x": x})["x"] < 1e-6


def test_linear(F, rng):
    x, w, b = rng.standard_normal((5, 4)), rng.standard_normal((3, 4)), rng.standard_normal(3)
    y, _ = F.linear_forward(x, w, b)
    np.testing.assert_allclose(y, x @ w.T + b)
    assert (
        max(check_op(F.linear_forward, F.linear_backward, {"x": x, "w": w, "b": b}).values()) < 1e-6
    )
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        F.linear_forward(x[:, :3], w, b)


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_cross_entropy(F, smoothing, rng):
    z, t = rng.standard_normal((6, 5)), rng.integers(0, 5, 6)
    forward = lambda z: F.cross_entropy_forward(z, t, smoothing)  # noqa: E731
    assert check_op(forward, F.cross_entropy_backward, {"z": z})["z"] < 1e-6
    loss, cache = forward(z)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    want = -np.mean((1 - smoothing) * log_p[np.arange(6), t] + smoothing * log_p.mean(axis=1))
    assert loss == pytest.approx(want, rel=1e-12)
    # backward multiplies by the upstream gradient
    np.testing.assert_allclose(
        F.cross_entropy_backward(2.5, cache), 2.5 * F.cross_entropy_backward(1.0, cache)
    )


def test_cross_entropy_is_stable_and_validates(F):
    z = np.array([[1000.0, 0.0, -1000.0]])
    loss, cache = F.cross_entropy_forward(z, np.array([2]))
    assert loss == pytest.approx(2000.0) and np.isfinite(F.cross_entropy_backward(1.0, cache)).all()
    loss, _ = F.cross_entropy_forward(np.zeros((4, 10), np.float32), np.arange(4))
    assert loss == pytest.approx(np.log(10), rel=1e-6)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        F.cross_entropy_forward(z, np.array([3]))
    with pytest.raises(TypeError, match="integer class indices"):
        F.cross_entropy_forward(z, np.array([1.0]))
    with pytest.raises(ValueError, match=r"targets of shape \(1,\)"):
        F.cross_entropy_forward(z, np.array([1, 2]))


def test_bce_with_logits(F, rng):
    z, t = rng.standard_normal(7), rng.uniform(0, 1, 7)
    forward = lambda z: F.bce_with_logits_forward(z, t)  # noqa: E731
    assert check_op(forward, F.bce_with_logits_backward, {"z": z})["z"] < 1e-6
    loss, _ = forward(z)
    s = 1 / (1 + np.exp(-z))
    assert loss == pytest.approx(-np.mean(t * np.log(s) + (1 - t) * np.log(1 - s)), rel=1e-12)
    big, _ = F.bce_with_logits_forward(np.array([800.0, -800.0]), np.array([0.0, 1.0]))
    assert big == pytest.approx(800.0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        F.bce_with_logits_forward(z, t + 1)


def test_gradcheck_catches_a_wrong_backward(F, rng):
    """The checker itself must fail on a subtly wrong gradient, naming argument and index."""

    def wrong_backward(dy, cache):
        dx, dw, db = F.linear_backward(dy, cache)
        dw = dw.copy()
        dw[1, 2] *= 1.001
        return dx, dw, db

    x, w, b = rng.standard_normal((5, 4)), rng.standard_normal((3, 4)), rng.standard_normal(3)
    with pytest.raises(GradcheckError, match=r"linear_forward.*gradient of w.*index \(1, 2\)"):
        check_op(F.linear_forward, wrong_backward, {"x": x, "w": w, "b": b})
    with pytest.raises(TypeError, match="float64"):
        check_op(F.linear_forward, F.linear_backward, {"x": x.astype(np.float32), "w": w})
