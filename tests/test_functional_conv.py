"""conv2d, both tiers: against the naive loops, gradient checks, errors."""

from functools import partial

import numpy as np
import pytest
from conftest import CONV_SWEEP, readonly

from nnscratch.gradcheck import check_op


def make(case, rng, dtype):
    N, C_in, H, W, C_out, k, stride, padding = case
    kh, kw = (k, k) if isinstance(k, int) else k
    x = rng.standard_normal((N, C_in, H, W)).astype(dtype)
    w = rng.standard_normal((C_out, C_in, kh, kw)).astype(dtype)
    b = rng.standard_normal(C_out).astype(dtype)
    return x, w, b, {"stride": stride, "padding": padding}


@pytest.mark.parametrize("case", CONV_SWEEP)
def test_fast_matches_naive_float64(F, case, rng):
    x, w, b, kw = make(case, rng, np.float64)
    y, cache = F.conv2d_forward(x, w, b, **kw)
    y_ref, cache_ref = F.conv2d_naive_forward(x, w, b, **kw)
    np.testing.assert_allclose(y, y_ref, rtol=0, atol=1e-10)
    dy = readonly(rng.standard_normal(y.shape))
    for got, want in zip(F.conv2d_backward(dy, cache), F.conv2d_naive_backward(dy, cache_ref)):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-10)


@pytest.mark.parametrize("case", CONV_SWEEP)
def test_float32_stays_float32_and_agrees(F, case, rng):
    x, w, b, kw = make(case, rng, np.float32)
    y, cache = F.conv2d_forward(x, w, b, **kw)
    y64, cache64 = F.conv2d_naive_forward(*(a.astype(np.float64) for a in (x, w, b)), **kw)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, y64, rtol=1e-4, atol=1e-4 * np.abs(y64).max())
    dy = rng.standard_normal(y.shape).astype(np.float32)
    grads = F.conv2d_backward(readonly(dy), cache)
    grads64 = F.conv2d_naive_backward(dy.astype(np.float64), cache64)
    for got, want in zip(grads, grads64):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


@pytest.mark.parametrize("case", CONV_SWEEP[:6])
def test_gradcheck(F, case, rng):
    x, w, b, kw = make(case, rng, np.float64)
    errors = check_op(partial(F.conv2d_forward, **kw), F.conv2d_backward, {"x": x, "w": w, "b": b})
    assert set(errors) == {"x", "w", "b"}
    assert max(errors.values()) < 1e-6


def test_without_bias(F, rng):
    x, w, _, kw = make(CONV_SWEEP[1], rng, np.float64)
    y, cache = F.conv2d_forward(x, w, **kw)
    *_, db = F.conv2d_backward(rng.standard_normal(y.shape), cache)
    assert db is None
    check_op(partial(F.conv2d_forward, **kw), F.conv2d_backward, {"x": x, "w": w})


def test_non_contiguous_input(F, rng):
    x, w, b, kw = make(CONV_SWEEP[0], rng, np.float64)
    x_t = np.ascontiguousarray(x.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2)  # same values
    assert not x_t.flags.c_contiguous
    np.testing.assert_array_equal(
        F.conv2d_forward(x_t, w, b, **kw)[0], F.conv2d_forward(x, w, b, **kw)[0]
    )


def test_im2col_col2im_are_adjoint(F, rng):
    """<im2col(x), c> == <x, col2im(c)>: col2im is exactly the transpose of im2col."""
    x, w, _, kw = make(CONV_SWEEP[2], rng, np.float64)
    _, cache = F.conv2d_forward(x, w, **kw)
    cols = F.im2col(x, cache.geom)
    c = rng.standard_normal(cols.shape)
    lhs = np.sum(cols * c)
    rhs = np.sum(x * F.col2im(c, x.shape, cache.geom))
    assert abs(lhs - rhs) < 1e-9 * abs(lhs)


def test_errors_name_the_problem(F, rng):
    w = rng.standard_normal((4, 3, 3, 3))
    with pytest.raises(ValueError, match=r"C_in=3.*got shape \(2, 5, 8, 8\)"):
        F.conv2d_forward(np.zeros((2, 5, 8, 8)), w)
    with pytest.raises(ValueError, match=r"4 dimensions, got shape \(5, 8, 8\)"):
        F.conv2d_forward(np.zeros((5, 8, 8)), w)
    with pytest.raises(TypeError, match="float32 or float64, got int64"):
        F.conv2d_forward(np.zeros((2, 3, 8, 8), dtype=np.int64), w)
    with pytest.raises(TypeError, match="dtype"):
        F.conv2d_forward(np.zeros((2, 3, 8, 8), dtype=np.float32), w)
    with pytest.raises(ValueError, match="smaller than the kernel"):
        F.conv2d_forward(np.zeros((1, 3, 2, 2)), w)
    with pytest.raises(ValueError, match="stride must be >= 1"):
        F.conv2d_forward(np.zeros((1, 3, 4, 4)), w, stride=0)
    with pytest.raises(RuntimeError, match="without a forward cache"):
        F.conv2d_backward(np.zeros((1, 4, 2, 2)), None)
    _, cache = F.conv2d_forward(np.zeros((1, 3, 4, 4)), w)
    with pytest.raises(ValueError, match="expected dy of shape"):
        F.conv2d_backward(np.zeros((1, 4, 3, 3)), cache)
