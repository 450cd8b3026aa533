"""Fused batch norm + ReLU: gradient checks, and agreement with the unfused pair."""

import numpy as np
import pytest
from conftest import kink_free, readonly

import nnscratch.functional as F
from nnscratch.gradcheck import check_op


def bn_relu(training, running_mean, running_var):
    def forward(x, gamma, beta):
        return F.batch_norm_relu2d_forward(
            x, gamma, beta, running_mean.copy(), running_var.copy(), training=training
        )

    return forward


def unfused(x, gamma, beta, running_mean, running_var, training, dy):
    """relu(batch_norm2d(x)) through the two separate ops: y and (dx, dgamma, dbeta)."""
    z, bn_cache = F.batch_norm2d_forward(
        x, gamma, beta, running_mean, running_var, training=training
    )
    y, relu_cache = F.relu_forward(z)
    dz = F.relu_backward(dy, relu_cache)
    return y, F.batch_norm2d_backward(dz, bn_cache)


def inputs(shape, rng, dtype=np.float64):
    C = shape[1]
    x = (rng.standard_normal(shape) * 2 + 1).astype(dtype)
    gamma = (rng.standard_normal(C) + 1.5).astype(dtype)
    beta = (rng.standard_normal(C) * 0.5).astype(dtype)
    return x, gamma, beta


def away_from_kink(x, gamma, beta, mean, var, eps=1e-5):
    """Shift x so that gamma * xhat + beta stays at least 0.05 from ReLU's kink."""
    c = (slice(None), None, None)
    z = (x - mean[c]) / np.sqrt(var[c] + eps) * gamma[c] + beta[c]
    z = kink_free(z, 0.05)
    return (z - beta[c]) / gamma[c] * np.sqrt(var[c] + eps) + mean[c]


@pytest.mark.parametrize("shape", [(4, 3, 5, 3), (3, 2, 1, 1), (1, 3, 4, 4)])
def test_gradcheck_training(shape, rng):
    x, gamma, beta = inputs(shape, rng)
    # batch statistics move with x, so move x away from the kink for its own statistics
    x = away_from_kink(x, gamma, beta, x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3)))
    forward = bn_relu(True, np.zeros(shape[1]), np.ones(shape[1]))
    errors = check_op(forward, F.batch_norm_relu2d_backward, {"x": x, "gamma": gamma, "beta": beta})
    assert set(errors) == {"x", "gamma", "beta"}
    assert max(errors.values()) < 1e-6


def test_gradcheck_eval(rng):
    x, gamma, beta = inputs((3, 4, 3, 5), rng)
    mean, var = rng.standard_normal(4), rng.uniform(0.5, 2, 4)
    x = away_from_kink(x, gamma, beta, mean, var)
    errors = check_op(
        bn_relu(False, mean, var), F.batch_norm_relu2d_backward,
        {"x": x, "gamma": gamma, "beta": beta},
    )  # fmt: skip
    assert max(errors.values()) < 1e-6


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_matches_unfused_pair(training, dtype, rng):
    shape = (5, 4, 7, 3)
    x, gamma, beta = inputs(shape, rng, dtype)
    dy = readonly(rng.standard_normal(shape).astype(dtype))
    stats = [rng.standard_normal(4).astype(dtype), rng.uniform(0.5, 2, 4).astype(dtype)]
    stats_fused = [s.copy() for s in stats]
    y_ref, grads_ref = unfused(x, gamma, beta, *stats, training, dy)
    y, cache = F.batch_norm_relu2d_forward(x, gamma, beta, *stats_fused, training=training)
    grads = F.batch_norm_relu2d_backward(dy, cache)
    tol = 1e-12 if dtype == np.float64 else 2e-5
    assert y.dtype == dtype and all(g.dtype == dtype for g in grads)
    np.testing.assert_allclose(y, y_ref, rtol=tol, atol=tol)
    assert (y >= 0).all() and ((y == 0) == (y_ref == 0)).all()
    for got, want in zip(grads, grads_ref):
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.abs(want).max())
    for got, want in zip(stats_fused, stats):  # the running statistics move identically
        np.testing.assert_allclose(got, want, rtol=tol)


def test_relu_gradient_at_zero_is_zero():
    """gamma * xhat + beta == 0 exactly (beta = 0, x at its mean): relu'(0) = 0."""
    x = np.zeros((2, 1, 2, 2))
    x[0, 0, 0, 0], x[1, 0, 0, 0] = 1.0, -1.0  # every other entry equals the mean, 0
    y, cache = F.batch_norm_relu2d_forward(
        x, np.ones(1), np.zeros(1), np.zeros(1), np.ones(1), training=False
    )
    dx, _, dbeta = F.batch_norm_relu2d_backward(np.ones_like(x), cache)
    assert y[0, 0, 0, 1] == 0 and dx[0, 0, 0, 1] == 0
    assert dbeta[0] == 1.0  # only the one positive output passes its gradient


def test_errors_name_the_op(rng):
    with pytest.raises(ValueError, match=r"batch_norm_relu2d: expected x with C=3"):
        F.batch_norm_relu2d_forward(np.zeros((2, 4, 3, 3)), *[np.ones(3)] * 4, training=True)
    with pytest.raises(RuntimeError, match="batch_norm_relu2d"):
        F.batch_norm_relu2d_backward(np.zeros((2, 3, 3, 3)), None)
