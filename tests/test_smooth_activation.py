"""Tanh and Sigmoid: gradient checks (functional and module), values, dtypes, errors."""

import numpy as np
import pytest
from conftest import readonly

from nnscratch.functional.smooth_activation import (
    sigmoid_backward,
    sigmoid_forward,
    tanh_backward,
    tanh_forward,
)
from nnscratch.gradcheck import check_module, check_op
from nnscratch.nn.smooth_activation import Sigmoid, Tanh

PAIRS = {"tanh": (tanh_forward, tanh_backward), "sigmoid": (sigmoid_forward, sigmoid_backward)}
MODULES = {"tanh": Tanh, "sigmoid": Sigmoid}


@pytest.mark.parametrize("name", PAIRS)
def test_functional_gradcheck(name, rng):
    forward, backward = PAIRS[name]
    x = 2 * rng.standard_normal((2, 3, 4, 5))  # both the linear part and the tails
    errors = check_op(forward, backward, {"x": x}, name=name)
    assert errors["x"] < 1e-6


@pytest.mark.parametrize("name", MODULES)
def test_module_gradcheck_odd_shape(name, rng):
    errors = check_module(MODULES[name](), 2 * rng.standard_normal((1, 3, 5, 7)))
    assert errors["input"] < 1e-6


def test_values_match_numpy_and_sigmoid_is_stable(rng):
    x = rng.standard_normal((4, 6))
    np.testing.assert_allclose(tanh_forward(x)[0], np.tanh(x), rtol=1e-15)
    np.testing.assert_allclose(sigmoid_forward(x)[0], 1 / (1 + np.exp(-x)), rtol=1e-14)
    extreme = np.array([-1000.0, -40.0, 0.0, 40.0, 1000.0])
    with np.errstate(over="raise", invalid="raise"):  # exp never overflows
        y, _ = sigmoid_forward(extreme)
    assert y[0] == 0.0 and y[2] == 0.5 and y[-1] == 1.0
    assert np.all(np.isfinite(y))


@pytest.mark.parametrize("name", PAIRS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_kept_and_dy_not_written(name, dtype, rng):
    forward, backward = PAIRS[name]
    x = rng.standard_normal((2, 3)).astype(dtype)
    y, cache = forward(x)
    dx = backward(readonly(rng.standard_normal((2, 3)).astype(dtype)), cache)
    assert y.dtype == dtype and dx.dtype == dtype and dx.shape == x.shape


@pytest.mark.parametrize("name", PAIRS)
def test_errors(name):
    forward, backward = PAIRS[name]
    with pytest.raises(TypeError, match=name):
        forward(np.arange(3))  # int array
    _, cache = forward(np.zeros(3))
    with pytest.raises(ValueError, match="shape"):
        backward(np.zeros(4), cache)
    with pytest.raises(RuntimeError, match="without a forward"):
        backward(np.zeros(3), None)
    module = MODULES[name]()
    with pytest.raises(RuntimeError, match="without a forward"):
        module.backward(np.zeros(3))
