"""The two tiers: the fast ops equal the readable ones, and reference_mode() switches a
whole network to the readable ones (so that no fast code runs)."""

import dataclasses
import functools
import os
import subprocess
import sys
import threading
import types
from pathlib import Path

import numpy as np
import pytest
from conftest import CONV_SWEEP, readonly

import nnscratch
import nnscratch.functional as readable
import nnscratch.functional.fast as fast
from nnscratch import models, nn
from nnscratch.functional.backend import Backend, backend
from nnscratch.functional.backend import fast as fast_backend
from nnscratch.functional.backend import readable as readable_backend
from nnscratch.functional.fast.im2col import im2col_kernel

FAST_DIR = Path(fast.__file__).parent
TOLERANCE = {np.float64: 1e-12, np.float32: 1e-5}  # max |a - b| relative to max |b|


def assert_close(got, want, dtype, what):
    assert got.dtype == want.dtype == dtype and got.shape == want.shape, what
    scale = max(np.abs(want).max(), np.finfo(dtype).tiny)
    error = np.abs(got - want).max() / scale
    assert error <= TOLERANCE[dtype], f"{what}: relative error {error:.2e}"


def assert_same_results(forward, backward, inputs, kwargs, dtype, rng):
    """Run both tiers' forward and backward on the same inputs and compare everything."""
    results = {}
    for tier in (readable, fast):
        args = [a.copy() if isinstance(a, np.ndarray) else a for a in inputs]
        y, cache = getattr(tier, forward)(*args, **kwargs)
        dy = readonly(np.random.default_rng(7).standard_normal(y.shape).astype(dtype))
        grads = getattr(tier, backward)(dy, cache)
        grads = grads if isinstance(grads, tuple) else (grads,)
        results[tier] = [y, *(g for g in grads if g is not None), *args]
    for k, (a, b) in enumerate(zip(results[fast], results[readable], strict=True)):
        if isinstance(a, np.ndarray):
            assert_close(a, b, dtype, f"{forward} output {k}")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", CONV_SWEEP)
def test_conv2d_tiers_agree(case, dtype, conv_paths, rng):
    N, C_in, H, W, C_out, k, stride, padding = case
    kh, kw = (k, k) if isinstance(k, int) else k
    x = rng.standard_normal((N, C_in, W, H)).astype(dtype).transpose(0, 1, 3, 2)  # strided
    w = rng.standard_normal((C_out, C_in, kh, kw)).astype(dtype)
    b = rng.standard_normal(C_out).astype(dtype)
    kwargs = {"stride": stride, "padding": padding}
    assert_same_results("conv2d_forward", "conv2d_backward", [x, w, b], kwargs, dtype, rng)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(1, 3, 5, 7), (4, 2, 3, 3), (8, 5, 1, 1)])
def test_batch_norm_tiers_agree(shape, training, dtype, rng):
    C = shape[1]
    x = (rng.standard_normal(shape) * 3 + 1).astype(dtype)
    gamma, beta = rng.uniform(0.5, 2, C).astype(dtype), rng.standard_normal(C).astype(dtype)
    stats = [rng.standard_normal(C).astype(dtype), rng.uniform(0.5, 2, C).astype(dtype)]
    inputs = [x, gamma, beta, *stats]  # the running stats are compared after the update too
    kwargs = {"training": training, "momentum": 0.1, "eps": 1e-5}
    assert_same_results("batch_norm2d_forward", "batch_norm2d_backward", inputs, kwargs, dtype, rng)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_relu_tiers_agree(dtype, rng):
    x = rng.standard_normal((3, 4, 5, 6)).astype(dtype)
    x[0, 0, 0, :3] = 0  # relu'(0) = 0 in both
    assert_same_results("relu_forward", "relu_backward", [x], {}, dtype, rng)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    "kernel, stride, padding", [(2, 2, 0), (3, 2, 1), (3, 1, 1), ((3, 2), (1, 2), (1, 0))]
)
def test_max_pool_tiers_agree_with_ties(kernel, stride, padding, dtype, rng):
    x = rng.integers(-2, 3, (2, 3, 7, 6)).astype(dtype)  # few values: many tied windows
    kwargs = {"kernel_size": kernel, "stride": stride, "padding": padding}
    assert_same_results("max_pool2d_forward", "max_pool2d_backward", [x], kwargs, dtype, rng)
    _, cache_r = readable.max_pool2d_forward(x, **kwargs)
    _, cache_f = fast.max_pool2d_forward(x, **kwargs)
    np.testing.assert_array_equal(cache_r.argmax, cache_f.argmax)  # the same winner of a tie


def test_readable_im2col_has_the_fast_kernels_layout(rng):
    x = rng.standard_normal((3, 2, 7, 6))
    _, cache = readable.conv2d_forward(x, np.zeros((1, 2, 3, 2)), stride=(2, 1), padding=(1, 2))
    g = cache.geom
    cols = np.empty((2 * g.KH * g.KW, 3 * g.H_out * g.W_out))
    im2col_kernel(x, 0, *g, cols)
    np.testing.assert_array_equal(readable.im2col(x, g), cols)


def test_the_readable_tier_imports_no_numba():
    code = "import sys, nnscratch.functional; print('numba' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


# ----------------------------------------------------------------------- the switch
def test_reference_mode_switches_and_nests(monkeypatch):
    monkeypatch.delenv("NNSCRATCH_REFERENCE", raising=False)
    assert backend() is fast_backend()
    with nnscratch.reference_mode():
        assert backend() is readable_backend()
        with nnscratch.reference_mode(False):
            assert backend() is fast_backend()
        assert backend() is readable_backend()
    assert backend() is fast_backend()
    monkeypatch.setenv("NNSCRATCH_REFERENCE", "1")
    assert backend() is readable_backend()
    monkeypatch.setenv("NNSCRATCH_REFERENCE", "yes")
    with pytest.raises(ValueError, match="NNSCRATCH_REFERENCE must be 0 or 1, got 'yes'"):
        backend()


def test_the_switch_belongs_to_its_thread(monkeypatch):
    monkeypatch.delenv("NNSCRATCH_REFERENCE", raising=False)
    seen = []
    with nnscratch.reference_mode():
        other = threading.Thread(target=lambda: seen.append(backend()))
        other.start()
        other.join()
        assert backend() is readable_backend()
    assert seen == [fast_backend()]


@pytest.mark.parametrize("tier", [readable, fast], ids=["readable", "fast"])
def test_each_tier_has_every_op_a_layer_calls(tier):
    gathered = Backend.from_module(tier)
    assert gathered.name == tier.__name__
    for field in dataclasses.fields(Backend)[1:]:
        assert getattr(gathered, field.name) is getattr(tier, field.name)


def test_the_fast_tier_reexports_the_readable_op_where_it_has_no_fast_one():
    fast_ops = {"conv2d", "conv2d_bn", "batch_norm2d", "relu", "max_pool2d"}
    for field in dataclasses.fields(Backend)[1:]:
        op = getattr(fast_backend(), field.name)
        if isinstance(op, functools.partial):  # the readable op on the fast ones it calls
            assert op.func is getattr(readable_backend(), field.name), field.name
            assert all(getattr(fast_backend(), name) is f for name, f in op.keywords.items())
            continue
        has_fast = field.name.rsplit("_", 1)[0] in fast_ops
        assert (Path(op.__code__.co_filename).parent == FAST_DIR) == has_fast, field.name
        if not has_fast:
            assert op is getattr(readable_backend(), field.name)


def test_a_tier_missing_an_op_is_named():
    incomplete = types.ModuleType("incomplete")
    incomplete.relu_forward = readable.relu_forward
    with pytest.raises(AttributeError, match="incomplete lacks the ops conv2d_forward, "):
        Backend.from_module(incomplete)


def training_step(model, x, y):
    """One training step's numbers: logits, dx, every parameter gradient, the BN buffers."""
    model.zero_grad()
    criterion = nn.CrossEntropyLoss()
    logits = model(x)
    criterion(logits, y)
    dx = model.backward(criterion.backward())
    grads = {name: p.grad.copy() for name, p in model.named_parameters()}
    return {"logits": logits, "dx": dx, **grads, **model.state_dict()}


def fast_calls_during(step):
    """Every function under functional/fast/ that runs during ``step()`` (Python or numba)."""
    seen = set()

    def profile(frame, event, arg):
        if event == "call" and Path(frame.f_code.co_filename).parent == FAST_DIR:
            seen.add(frame.f_code.co_name)
        elif event == "c_call":  # a numba dispatcher is called like a C function
            py_func = getattr(arg, "py_func", None)
            if py_func is not None and Path(py_func.__code__.co_filename).parent == FAST_DIR:
                seen.add(py_func.__name__)

    sys.setprofile(profile)
    try:
        result = step()
    finally:
        sys.setprofile(None)
    return result, seen


def test_a_resnet18_step_is_the_same_in_both_modes_and_reference_runs_no_fast_code(rng):
    x = rng.standard_normal((4, 3, 32, 32))
    y = rng.integers(0, 10, 4)

    def fresh():
        return models.resnet18(stem="cifar", num_classes=10, width=0.25, seed=0).to(np.float64)

    fast_step, fast_seen = fast_calls_during(lambda: training_step(fresh(), x, y))
    with nnscratch.reference_mode():
        reference_step, reference_seen = fast_calls_during(lambda: training_step(fresh(), x, y))
    assert {"conv2d_forward", "_im2col", "batch_norm2d_backward"} <= fast_seen  # the probe works
    assert reference_seen == set()
    for key, value in fast_step.items():
        scale = max(np.abs(reference_step[key]).max(), 1e-300)
        error = np.abs(value - reference_step[key]).max() / scale
        assert error < 1e-10, f"{key}: relative difference {error:.2e}"


def test_reference_mode_for_a_whole_process():
    code = (
        "import numpy as np, nnscratch.functional.backend as b; from nnscratch import nn;"
        "print(b.backend().name); nn.Conv2d(3, 4, 3)(np.zeros((1, 3, 5, 5), np.float32))"
    )
    env = {**os.environ, "NNSCRATCH_REFERENCE": "1"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "nnscratch.functional"
