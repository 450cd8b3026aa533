"""Optimizers and lr schedules against updates and lr sequences written out by hand.

The expected numbers are spelled as the update rules (v1 = g1, p1 = p0 - lr*v1, ...),
never by calling the code under test. Comparisons against PyTorch at the end are
optional and skipped when torch is not installed.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from nnscratch.nn.parameter import Parameter
from nnscratch.optim import (
    SGD,
    Adam,
    AdamW,
    CosineAnnealingLR,
    LinearWarmup,
    MultiStepLR,
    OneCycleLR,
    StepLR,
    weight_decay_groups,
)

P0 = np.array([1.0, -2.0, 0.5])
GRADS = [np.array([0.1, 0.2, -0.3]), np.array([-0.4, 0.1, 0.2]), np.array([0.3, -0.1, 0.05])]


def param(values, dtype=np.float64) -> Parameter:
    return Parameter(np.array(values, dtype=dtype))


def run(opt, p: Parameter, grads) -> None:
    """Set ``p.grad`` to each gradient in turn and take one step."""
    for g in grads:
        p.grad[...] = g
        opt.step()


# ---------------------------------------------------------------------------- SGD
def test_sgd_plain_two_steps():
    lr = 0.1
    p = param(P0)
    run(SGD([p], lr=lr), p, GRADS[:2])
    p1 = P0 - lr * GRADS[0]
    p2 = p1 - lr * GRADS[1]
    np.testing.assert_allclose(p.data, p2, rtol=0, atol=1e-15)


def test_sgd_momentum_dampening_weight_decay_three_steps():
    lr, mu, tau, wd = 0.1, 0.9, 0.3, 0.01
    p = param(P0)
    run(SGD([p], lr=lr, momentum=mu, dampening=tau, weight_decay=wd), p, GRADS)
    g1, g2, g3 = GRADS
    d1 = g1 + wd * P0
    v1 = d1  # first step: buffer = gradient, no dampening
    p1 = P0 - lr * v1
    d2 = g2 + wd * p1
    v2 = mu * v1 + (1 - tau) * d2
    p2 = p1 - lr * v2
    d3 = g3 + wd * p2
    v3 = mu * v2 + (1 - tau) * d3
    p3 = p2 - lr * v3
    np.testing.assert_allclose(p.data, p3, rtol=0, atol=1e-15)


def test_sgd_nesterov_weight_decay_three_steps():
    lr, mu, wd = 0.05, 0.9, 0.1
    p = param(P0)
    opt = SGD([p], lr=lr, momentum=mu, weight_decay=wd, nesterov=True)
    run(opt, p, GRADS)
    g1, g2, g3 = GRADS
    d1 = g1 + wd * P0
    v1 = d1
    p1 = P0 - lr * (d1 + mu * v1)
    d2 = g2 + wd * p1
    v2 = mu * v1 + d2
    p2 = p1 - lr * (d2 + mu * v2)
    d3 = g3 + wd * p2
    v3 = mu * v2 + d3
    p3 = p2 - lr * (d3 + mu * v3)
    np.testing.assert_allclose(p.data, p3, rtol=0, atol=1e-15)
    np.testing.assert_allclose(opt.state[p]["momentum_buffer"], v3, rtol=0, atol=1e-15)


def test_sgd_weight_decay_does_not_write_into_grad():
    p = param(P0)
    p.grad[...] = GRADS[0]
    SGD([p], lr=0.1, momentum=0.9, weight_decay=0.5).step()
    np.testing.assert_array_equal(p.grad, GRADS[0])


@pytest.mark.parametrize(
    "kwargs",
    [dict(momentum=0.0, nesterov=True), dict(momentum=0.9, dampening=0.1, nesterov=True)],
)
def test_sgd_nesterov_needs_momentum_and_no_dampening(kwargs):
    with pytest.raises(ValueError, match="nesterov"):
        SGD([param(P0)], lr=0.1, **kwargs)


# ---------------------------------------------------------------------------- Adam
def adam_reference(p0, grads, lr, beta1, beta2, eps, wd, decoupled):
    """Adam/AdamW written out step by step, as in the papers plus torch's eps placement."""
    p, m, v = p0.copy(), np.zeros_like(p0), np.zeros_like(p0)
    for t, g in enumerate(grads, start=1):
        if decoupled:
            p = p - lr * wd * p
        else:
            g = g + wd * p
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g**2
        m_hat = m / (1 - beta1**t)
        v_hat = v / (1 - beta2**t)
        p = p - lr * m_hat / (np.sqrt(v_hat) + eps)
    return p, m, v


def test_adam_first_step_moves_each_coordinate_by_lr():
    # m̂1 = g1 and v̂1 = g1², so the first step is lr·sign(g1) (up to eps).
    p = param(P0)
    run(Adam([p], lr=0.01, eps=0.0), p, GRADS[:1])
    np.testing.assert_allclose(p.data, P0 - 0.01 * np.sign(GRADS[0]), rtol=0, atol=1e-15)


def test_adam_l2_three_steps():
    lr, b1, b2, eps, wd = 0.01, 0.8, 0.9, 1e-3, 0.1
    p = param(P0)
    opt = Adam([p], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)
    run(opt, p, GRADS)

    g1, g2, g3 = GRADS
    g1 = g1 + wd * P0
    m1, v1 = (1 - b1) * g1, (1 - b2) * g1**2
    p1 = P0 - lr * (m1 / (1 - b1)) / (np.sqrt(v1 / (1 - b2)) + eps)
    g2 = g2 + wd * p1
    m2, v2 = b1 * m1 + (1 - b1) * g2, b2 * v1 + (1 - b2) * g2**2
    p2 = p1 - lr * (m2 / (1 - b1**2)) / (np.sqrt(v2 / (1 - b2**2)) + eps)
    g3 = g3 + wd * p2
    m3, v3 = b1 * m2 + (1 - b1) * g3, b2 * v2 + (1 - b2) * g3**2
    p3 = p2 - lr * (m3 / (1 - b1**3)) / (np.sqrt(v3 / (1 - b2**3)) + eps)

    np.testing.assert_allclose(p.data, p3, rtol=1e-13, atol=0)
    state = opt.state[p]
    assert state["step"] == 3
    np.testing.assert_allclose(state["exp_avg"], m3, rtol=1e-13)
    np.testing.assert_allclose(state["exp_avg_sq"], v3, rtol=1e-13)


def test_adamw_decoupled_three_steps():
    lr, b1, b2, eps, wd = 0.01, 0.8, 0.9, 1e-3, 0.1
    p = param(P0)
    run(AdamW([p], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd), p, GRADS)

    g1, g2, g3 = GRADS  # the gradients carry no decay term
    q0 = P0 - lr * wd * P0
    m1, v1 = (1 - b1) * g1, (1 - b2) * g1**2
    p1 = q0 - lr * (m1 / (1 - b1)) / (np.sqrt(v1 / (1 - b2)) + eps)
    q1 = p1 - lr * wd * p1
    m2, v2 = b1 * m1 + (1 - b1) * g2, b2 * v1 + (1 - b2) * g2**2
    p2 = q1 - lr * (m2 / (1 - b1**2)) / (np.sqrt(v2 / (1 - b2**2)) + eps)
    q2 = p2 - lr * wd * p2
    m3, v3 = b1 * m2 + (1 - b1) * g3, b2 * v2 + (1 - b2) * g3**2
    p3 = q2 - lr * (m3 / (1 - b1**3)) / (np.sqrt(v3 / (1 - b2**3)) + eps)

    np.testing.assert_allclose(p.data, p3, rtol=1e-13, atol=0)


def test_adamw_differs_from_adam_l2_only_through_weight_decay():
    def final(cls, wd):
        p = param(P0)
        run(cls([p], lr=0.01, weight_decay=wd), p, GRADS)
        return p.data

    # With decay the two rules differ: Adam rescales λp by 1/√v̂, AdamW does not.
    assert not np.allclose(final(Adam, 0.5), final(AdamW, 0.5), rtol=0, atol=1e-6)
    np.testing.assert_allclose(
        final(Adam, 0.5), adam_reference(P0, GRADS, 0.01, 0.9, 0.999, 1e-8, 0.5, False)[0]
    )
    np.testing.assert_allclose(
        final(AdamW, 0.5), adam_reference(P0, GRADS, 0.01, 0.9, 0.999, 1e-8, 0.5, True)[0]
    )
    np.testing.assert_array_equal(final(Adam, 0.0), final(AdamW, 0.0))


def test_adamw_default_weight_decay_is_1e_2():
    assert AdamW([param(P0)]).param_groups[0]["weight_decay"] == 1e-2
    assert Adam([param(P0)]).param_groups[0]["weight_decay"] == 0.0


# ---------------------------------------------------------------- all optimizers
OPTIMIZERS = {
    "sgd": lambda params: SGD(params, lr=0.1, momentum=0.9, weight_decay=0.1, nesterov=True),
    "adam": lambda params: Adam(params, lr=0.01, weight_decay=0.1),
    "adamw": lambda params: AdamW(params, lr=0.01, weight_decay=0.1),
}


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_frozen_parameter_is_untouched_and_has_no_state(name):
    live, frozen = param(P0), param(P0)
    frozen.requires_grad = False
    opt = OPTIMIZERS[name]([live, frozen])
    for g in GRADS:
        live.grad[...] = g
        frozen.grad[...] = g  # even a stray gradient must not move it
        opt.step()
    np.testing.assert_array_equal(frozen.data, P0)
    assert frozen not in opt.state
    assert not np.array_equal(live.data, P0)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_float32_stays_float32_and_matches_float64(name):
    p32, p64 = param(P0, np.float32), param(P0, np.float64)
    opt32, opt64 = OPTIMIZERS[name]([p32]), OPTIMIZERS[name]([p64])
    run(opt32, p32, GRADS)
    run(opt64, p64, GRADS)
    assert p32.data.dtype == np.float32
    for value in opt32.state[p32].values():
        if isinstance(value, np.ndarray):
            assert value.dtype == np.float32
    np.testing.assert_allclose(p32.data, p64.data, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_update_is_in_place(name):
    p = param(P0, np.float32)
    data, grad = p.data, p.grad
    opt = OPTIMIZERS[name]([p])
    run(opt, p, GRADS[:1])
    buffers = {k: v for k, v in opt.state[p].items() if isinstance(v, np.ndarray)}
    run(opt, p, GRADS[1:])
    assert p.data is data and p.grad is grad
    for k, v in buffers.items():
        assert opt.state[p][k] is v, k
    assert not np.array_equal(data, P0)


def test_param_groups_have_their_own_lr_and_decay():
    a, b = param(P0), param(P0)
    opt = SGD(
        [{"params": [a]}, {"params": [b], "lr": 0.5, "weight_decay": 0.2}],
        lr=0.1,
        weight_decay=0.0,
    )
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.5]
    a.grad[...] = GRADS[0]
    b.grad[...] = GRADS[0]
    opt.step()
    np.testing.assert_allclose(a.data, P0 - 0.1 * GRADS[0], rtol=0, atol=1e-15)
    np.testing.assert_allclose(b.data, P0 - 0.5 * (GRADS[0] + 0.2 * P0), rtol=0, atol=1e-15)


def test_zero_grad_resets_every_gradient():
    a, b = param(P0), param(P0)
    opt = Adam([{"params": [a]}, {"params": [b], "lr": 0.1}])
    a.grad[...] = 1.0
    b.grad[...] = 2.0
    grad = a.grad
    opt.zero_grad()
    assert a.grad is grad
    assert not a.grad.any() and not b.grad.any()


def test_weight_decay_groups_split_by_dimension():
    conv_w = param(np.ones((2, 1, 3, 3)))
    bn_w, bn_b = param(np.ones(2)), param(np.zeros(2))
    fc_w, fc_b = param(np.ones((3, 2))), param(np.ones(3))
    named = [
        ("conv1.weight", conv_w),
        ("bn1.weight", bn_w),
        ("bn1.bias", bn_b),
        ("fc.weight", fc_w),
        ("fc.bias", fc_b),
        ("fc_tied.weight", fc_w),  # shared: listed once
    ]
    decay, no_decay = weight_decay_groups(iter(named), weight_decay=5e-4)
    assert decay["weight_decay"] == 5e-4 and no_decay["weight_decay"] == 0.0
    assert decay["params"] == [conv_w, fc_w]
    assert no_decay["params"] == [bn_w, bn_b, fc_b]

    # With zero gradients only the decayed group moves.
    opt = SGD(weight_decay_groups(named, weight_decay=0.1), lr=1.0)
    opt.step()
    np.testing.assert_allclose(fc_w.data, 0.9)
    np.testing.assert_array_equal(fc_b.data, 1.0)
    np.testing.assert_array_equal(bn_w.data, 1.0)

    with pytest.raises(TypeError, match="named_parameters"):
        weight_decay_groups([conv_w], 0.1)


@pytest.mark.parametrize(
    ("make", "argument"),
    [
        (lambda ps: SGD(ps, lr=-0.1), "lr"),
        (lambda ps: SGD(ps, lr=0.1, momentum=-0.5), "momentum"),
        (lambda ps: SGD(ps, lr=0.1, weight_decay=-1e-4), "weight_decay"),
        (lambda ps: SGD(ps, lr=0.1, dampening=1.5), "dampening"),
        (lambda ps: SGD([{"params": ps, "lr": -1.0}], lr=0.1), "lr"),
        (lambda ps: Adam(ps, lr=-1e-3), "lr"),
        (lambda ps: Adam(ps, betas=(1.0, 0.999)), r"betas\[0\]"),
        (lambda ps: Adam(ps, betas=(0.9, -0.1)), r"betas\[1\]"),
        (lambda ps: Adam(ps, betas=(0.9,)), "betas"),
        (lambda ps: Adam(ps, eps=-1.0), "eps"),
        (lambda ps: AdamW(ps, weight_decay=-0.1), "weight_decay"),
        (lambda ps: AdamW([{"params": ps, "betas": (0.9, 1.0)}]), r"betas\[1\]"),
    ],
)
def test_bad_hyper_parameters_raise_naming_the_argument(make, argument):
    with pytest.raises(ValueError, match=argument):
        make([param(P0)])


def test_bad_parameter_lists_raise():
    p = param(P0)
    with pytest.raises(ValueError, match="empty"):
        SGD([], lr=0.1)
    with pytest.raises(TypeError, match="iterable"):
        SGD(p, lr=0.1)
    with pytest.raises(TypeError, match="Parameter"):
        SGD([P0], lr=0.1)
    with pytest.raises(ValueError, match="more than one"):
        SGD([{"params": [p]}, {"params": [p]}], lr=0.1)
    q = param(P0)
    q.grad = np.zeros(3, dtype=np.float32)
    with pytest.raises(ValueError, match="grad"):
        SGD([q], lr=0.1).step()


# ------------------------------------------------------------- optimizer state dict
def to_json_and_back(state):
    """Serialise through JSON the way a user would (arrays as lists, keys as strings)."""

    def default(obj):
        if isinstance(obj, np.ndarray):
            return obj.tolist()
        raise TypeError(type(obj))

    return json.loads(json.dumps(state, default=default))


def make_params(rng, dtype):
    return [
        Parameter(rng.standard_normal((3, 4)).astype(dtype)),
        Parameter(rng.standard_normal(4).astype(dtype)),
        Parameter(rng.standard_normal((2, 2)).astype(dtype), requires_grad=False),
        Parameter(rng.standard_normal(5).astype(dtype)),
    ]


def make_groups(params):
    return [
        {"params": params[:3]},
        {"params": params[3:], "lr": 0.003, "weight_decay": 0.0},
    ]


def train(opt, params, grads):
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            if p.requires_grad:
                p.grad[...] = g
        opt.step()


def random_grads(rng, params, n, dtype):
    return [[rng.standard_normal(p.shape).astype(dtype) for p in params] for _ in range(n)]


@pytest.mark.parametrize("name", OPTIMIZERS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("through_json", [False, True])
def test_optimizer_state_dict_round_trip_is_bitwise(name, dtype, through_json):
    rng = np.random.default_rng(0)
    params = make_params(rng, dtype)
    opt = OPTIMIZERS[name](make_groups(params))
    train(opt, params, random_grads(rng, params, 3, dtype))
    saved = opt.state_dict()
    snapshot = [p.data.copy() for p in params]

    later = random_grads(rng, params, 4, dtype)
    train(opt, params, later)  # must not alter `saved`

    fresh = [Parameter(a.copy(), requires_grad=p.requires_grad) for a, p in zip(snapshot, params)]
    opt2 = OPTIMIZERS[name](make_groups(fresh))
    opt2.load_state_dict(to_json_and_back(saved) if through_json else saved)
    train(opt2, fresh, later)
    for a, b in zip(params, fresh):
        assert b.data.dtype == dtype
        np.testing.assert_array_equal(a.data, b.data)
    assert opt2.param_groups[1]["lr"] == 0.003


def test_state_dict_is_plain_and_keyed_by_position():
    rng = np.random.default_rng(1)
    params = make_params(rng, np.float32)
    opt = Adam(make_groups(params), lr=0.01)
    train(opt, params, random_grads(rng, params, 2, np.float32))
    sd = opt.state_dict()
    assert sorted(sd["state"]) == [0, 1, 3]  # the frozen parameter 2 has no state
    assert [g["params"] for g in sd["param_groups"]] == [[0, 1, 2], [3]]
    assert sd["state"][0]["step"] == 2 and type(sd["state"][0]["step"]) is int
    assert sd["state"][3]["exp_avg"].shape == (5,)
    assert sd["param_groups"][0]["betas"] == (0.9, 0.999)
    assert type(sd["param_groups"][0]["lr"]) is float


class Float32Only(np.ndarray):
    """A float32 array whose ufuncs fail on any float64 operand or result.

    Writing into a float32 array hides a float64 temporary (the result is cast back),
    so the dtype of ``p.data`` alone cannot show one; this spy can.
    """

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        def plain(x):
            return x.view(np.ndarray) if isinstance(x, Float32Only) else x

        for x in inputs:
            if isinstance(x, (np.ndarray, np.generic)) and x.dtype != np.float32:
                raise AssertionError(f"np.{ufunc.__name__} got a {x.dtype} operand")
        if out is not None:
            kwargs["out"] = tuple(plain(o) for o in out)
        result = getattr(ufunc, method)(*map(plain, inputs), **kwargs)
        if isinstance(result, np.ndarray) and result.dtype != np.float32:
            raise AssertionError(f"np.{ufunc.__name__} made a {result.dtype} result")
        if out is not None:
            return out[0]
        return result.view(Float32Only) if isinstance(result, np.ndarray) else result


def spied_param():
    p = param(P0, np.float32)
    p.data, p.grad = p.data.view(Float32Only), p.grad.view(Float32Only)
    return p


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_no_float64_temporaries_in_a_float32_step(name):
    p = spied_param()
    run(OPTIMIZERS[name]([p]), p, GRADS)
    assert isinstance(p.data, Float32Only) and not np.array_equal(p.data.view(np.ndarray), P0)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_loaded_numpy_scalar_hyper_parameters_make_no_float64(name):
    # Hyper-parameters read back from .npz are NumPy float64 scalars, which (unlike
    # Python floats, NEP 50) would turn every float32 temporary into float64.
    p = spied_param()
    opt = OPTIMIZERS[name]([p])
    sd = opt.state_dict()
    for key, value in sd["param_groups"][0].items():
        if isinstance(value, float):
            sd["param_groups"][0][key] = np.float64(value)
        elif isinstance(value, tuple):
            sd["param_groups"][0][key] = np.array(value)
    opt.load_state_dict(sd)
    assert type(opt.param_groups[0]["lr"]) is float
    run(opt, p, GRADS)


def test_numpy_scalar_constructor_arguments_make_no_float64():
    f = np.float64
    for make in [
        lambda ps: SGD(ps, lr=f(0.1), momentum=f(0.9), weight_decay=f(0.1), nesterov=True),
        lambda ps: SGD(ps, lr=f(0.1), momentum=f(0.9), dampening=f(0.1)),
        lambda ps: Adam(
            ps, lr=f(0.01), betas=np.array([0.9, 0.99]), eps=f(1e-8), weight_decay=f(1)
        ),
        lambda ps: AdamW(ps, lr=f(0.01), betas=(f(0.9), f(0.99)), eps=f(1e-8), weight_decay=f(1)),
    ]:
        p = spied_param()
        run(make([p]), p, GRADS)


def test_load_state_dict_validates_and_changes_nothing_on_error():
    rng = np.random.default_rng(2)
    params = make_params(rng, np.float64)
    opt = SGD(make_groups(params), lr=0.1, momentum=0.9)
    train(opt, params, random_grads(rng, params, 1, np.float64))
    good = opt.state_dict()

    other = SGD([param(P0)], lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="param groups"):
        other.load_state_dict(good)

    fewer = SGD([{"params": params[:2]}, {"params": params[3:]}], lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="param group 0"):
        fewer.load_state_dict(good)

    bad_shape = opt.state_dict()
    bad_shape["state"][0]["momentum_buffer"] = np.zeros((4, 3))
    before = opt.state_dict()
    with pytest.raises(ValueError, match=r"shape \(4, 3\)"):
        opt.load_state_dict(bad_shape)
    after = opt.state_dict()
    assert after["param_groups"] == before["param_groups"]
    np.testing.assert_array_equal(after["state"][0]["momentum_buffer"], params[0].grad)

    adam = Adam(make_groups(params))
    with pytest.raises(ValueError, match="keys"):
        adam.load_state_dict(good)

    out_of_range = opt.state_dict()
    out_of_range["state"][9] = out_of_range["state"][0]
    with pytest.raises(ValueError, match="parameter 9"):
        opt.load_state_dict(out_of_range)

    bad_lr = opt.state_dict()
    bad_lr["param_groups"][1]["lr"] = -1.0
    with pytest.raises(ValueError, match="lr"):
        opt.load_state_dict(bad_lr)


# -------------------------------------------------------------------- schedules
def lr_sequence(sched, n_steps, group=0):
    """The lr at step 0 (after construction) and after each of ``n_steps`` steps."""
    lrs = [sched.optimizer.param_groups[group]["lr"]]
    for _ in range(n_steps):
        sched.optimizer.step()
        sched.step()
        lr = sched.optimizer.param_groups[group]["lr"]
        assert sched.get_last_lr()[group] == lr
        lrs.append(lr)
    return lrs


def sgd(lr=1.0, *extra_lrs):
    groups = [{"params": [param(P0)], "lr": lr}]
    groups += [{"params": [param(P0)], "lr": x} for x in extra_lrs]
    return SGD(groups, lr=lr)


def test_step_lr():
    expected = [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25, 0.25, 0.25, 0.125]
    assert lr_sequence(StepLR(sgd(1.0), step_size=3, gamma=0.5), 9) == expected


def test_multistep_lr_with_unsorted_and_repeated_milestones():
    opt = sgd(1.0, 2.0)
    sched = MultiStepLR(opt, milestones=[5, 2, 5], gamma=0.1)
    lrs = lr_sequence(sched, 7)
    expected = [1.0, 1.0, 0.1, 0.1, 0.1, 0.001, 0.001, 0.001]
    np.testing.assert_allclose(lrs, expected, rtol=1e-15)
    np.testing.assert_allclose(sched.get_last_lr(), [0.001, 0.002], rtol=1e-15)


def test_cosine_annealing_closed_form():
    base, eta_min, r = 1.1, 0.1, math.sqrt(2) / 2
    lrs = lr_sequence(CosineAnnealingLR(sgd(base), T_max=4, eta_min=eta_min), 4)
    expected = [1.1, 0.1 + (1 + r) / 2, 0.6, 0.1 + (1 - r) / 2, 0.1]
    np.testing.assert_allclose(lrs, expected, rtol=0, atol=1e-15)


def test_one_cycle_start_peak_end():
    # total 10, pct_start 0.3: the peak is at step 0.3*10 - 1 = 2, the end at step 9.
    sched = OneCycleLR(sgd(123.0), max_lr=1.0, total_steps=10, div_factor=25, final_div_factor=1e4)
    lrs = lr_sequence(sched, 9)
    start, peak, end = 1.0 / 25, 1.0, 1.0 / 25 / 1e4
    np.testing.assert_allclose(lrs[0], start, rtol=1e-15)
    np.testing.assert_allclose(lrs[1], (start + peak) / 2, rtol=1e-15)  # cos midpoint
    assert int(np.argmax(lrs)) == 2 and lrs[2] == peak
    # Phase 2 runs over 7 steps: step 4 is 2/7 of the way down.
    np.testing.assert_allclose(
        lrs[4], end + (peak - end) * (1 + math.cos(math.pi * 2 / 7)) / 2, rtol=1e-14
    )
    np.testing.assert_allclose(lrs[9], end, rtol=1e-12)
    assert all(np.diff(lrs[:3]) > 0) and all(np.diff(lrs[2:]) < 0)


def test_one_cycle_linear_and_per_group_max_lr():
    opt = sgd(1.0, 1.0)
    sched = OneCycleLR(opt, max_lr=[1.0, 2.0], total_steps=10, anneal_strategy="linear")
    lrs = lr_sequence(sched, 4, group=1)
    start, peak, end = 2.0 / 25, 2.0, 2.0 / 25 / 1e4
    np.testing.assert_allclose(lrs[:3], [start, (start + peak) / 2, peak], rtol=1e-15)
    np.testing.assert_allclose(lrs[4], peak + (end - peak) * 2 / 7, rtol=1e-14)
    np.testing.assert_allclose(sched.get_last_lr()[0], 1.0 + (end / 2 - 1.0) * 2 / 7)


def test_one_cycle_stepping_past_total_steps_raises():
    sched = OneCycleLR(sgd(), max_lr=1.0, total_steps=10)
    for _ in range(10):  # PyTorch allows exactly total_steps calls to step()
        sched.step()
    last = sched.get_last_lr()
    with pytest.raises(ValueError, match="total_steps is 10"):
        sched.step()
    assert sched.last_epoch == 10 and sched.get_last_lr() == last


def test_linear_warmup_then_cosine():
    opt = sgd(1.0)
    cosine = CosineAnnealingLR(opt, T_max=4)
    sched = LinearWarmup(opt, warmup_steps=3, after=cosine, start_factor=0.25)
    lrs = lr_sequence(sched, 8)
    r = math.sqrt(2) / 2
    expected = [0.25, 0.5, 0.75, 1.0, (1 + r) / 2, 0.5, (1 - r) / 2, 0.0, (1 - r) / 2]
    np.testing.assert_allclose(lrs, expected, rtol=0, atol=1e-15)
    assert cosine.last_epoch == 5 and cosine.get_last_lr() == sched.get_last_lr()


def test_linear_warmup_alone_holds_the_base_lr():
    lrs = lr_sequence(LinearWarmup(sgd(0.4), warmup_steps=4, start_factor=0.0), 6)
    np.testing.assert_allclose(lrs, [0.0, 0.1, 0.2, 0.3, 0.4, 0.4, 0.4], rtol=1e-15)


@pytest.mark.parametrize(
    ("make", "argument"),
    [
        (lambda o: StepLR(o, step_size=0), "step_size"),
        (lambda o: StepLR(o, step_size=2.5), "step_size"),
        (lambda o: MultiStepLR(o, milestones=[3, -1]), "milestones"),
        (lambda o: CosineAnnealingLR(o, T_max=0), "T_max"),
        (lambda o: CosineAnnealingLR(o, T_max=5, eta_min=-1.0), "eta_min"),
        (lambda o: OneCycleLR(o, max_lr=1.0, total_steps=0), "total_steps"),
        (lambda o: OneCycleLR(o, max_lr=1.0, total_steps=10, pct_start=1.0), "pct_start"),
        (lambda o: OneCycleLR(o, max_lr=1.0, total_steps=10, pct_start=0.1), "pct_start"),
        (lambda o: OneCycleLR(o, max_lr=[1.0, 2.0], total_steps=10), "max_lr"),
        (lambda o: OneCycleLR(o, max_lr=1.0, total_steps=10, anneal_strategy="x"), "anneal"),
        (lambda o: LinearWarmup(o, warmup_steps=0), "warmup_steps"),
        (lambda o: LinearWarmup(o, warmup_steps=3, start_factor=2.0), "start_factor"),
        (lambda o: LinearWarmup(o, 3, after=StepLR(sgd(), 2)), "same optimizer"),
    ],
)
def test_bad_schedule_arguments_raise(make, argument):
    with pytest.raises(ValueError, match=argument):
        make(sgd())


SCHEDULES = {
    "step": lambda o: StepLR(o, step_size=3, gamma=0.5),
    "multistep": lambda o: MultiStepLR(o, milestones=[2, 6], gamma=0.3),
    "cosine": lambda o: CosineAnnealingLR(o, T_max=9, eta_min=1e-3),
    "onecycle": lambda o: OneCycleLR(o, max_lr=[0.2, 0.05], total_steps=10),
    "warmup_cosine": lambda o: LinearWarmup(o, 3, after=CosineAnnealingLR(o, T_max=6)),
}


@pytest.mark.parametrize("name", SCHEDULES)
@pytest.mark.parametrize("k", [2, 5])
def test_schedule_state_dict_round_trip_is_bitwise(name, k):
    rng = np.random.default_rng(3)
    params = make_params(rng, np.float32)
    opt = SGD(make_groups(params), lr=0.1, momentum=0.9, nesterov=True)
    sched = SCHEDULES[name](opt)
    grads = random_grads(rng, params, 9, np.float32)
    for step_grads in grads[:k]:
        train(opt, params, [step_grads])
        sched.step()
    saved_opt = to_json_and_back(opt.state_dict())
    saved_sched = to_json_and_back(sched.state_dict())
    snapshot = [p.data.copy() for p in params]

    lrs = []
    for step_grads in grads[k:]:
        train(opt, params, [step_grads])
        sched.step()
        lrs.append(sched.get_last_lr())

    fresh = [Parameter(a.copy(), requires_grad=p.requires_grad) for a, p in zip(snapshot, params)]
    opt2 = SGD(make_groups(fresh), lr=0.1, momentum=0.9, nesterov=True)
    sched2 = SCHEDULES[name](opt2)
    opt2.load_state_dict(saved_opt)
    sched2.load_state_dict(saved_sched)
    assert sched2.last_epoch == k
    lrs2 = []
    for step_grads in grads[k:]:
        train(opt2, fresh, [step_grads])
        sched2.step()
        lrs2.append(sched2.get_last_lr())
    assert lrs == lrs2
    for a, b in zip(params, fresh):
        np.testing.assert_array_equal(a.data, b.data)


def test_schedule_load_rejects_another_schedule():
    opt = sgd()
    with pytest.raises(ValueError, match="StepLR"):
        CosineAnnealingLR(opt, T_max=5).load_state_dict(StepLR(opt, 2).state_dict())
    with pytest.raises(ValueError, match="after"):
        LinearWarmup(opt, 2).load_state_dict(
            LinearWarmup(opt, 2, after=StepLR(opt, 2)).state_dict()
        )


# ------------------------------------------------------------ optional: vs torch
def torch_pair(dtype, rng):
    torch = pytest.importorskip("torch")
    arrays = [rng.standard_normal(s).astype(dtype) for s in [(3, 4), (4,), (2, 3, 3)]]
    ours = [Parameter(a.copy()) for a in arrays]
    theirs = [torch.tensor(a.copy(), requires_grad=True) for a in arrays]
    return torch, ours, theirs


TORCH_OPTIMIZERS = {
    "sgd_nesterov_wd": (
        lambda ps: SGD(ps, lr=0.1, momentum=0.9, weight_decay=1e-2, nesterov=True),
        lambda torch, ps: torch.optim.SGD(
            ps, lr=0.1, momentum=0.9, weight_decay=1e-2, nesterov=True
        ),
    ),
    "sgd_dampening": (
        lambda ps: SGD(ps, lr=0.1, momentum=0.8, dampening=0.3, weight_decay=1e-3),
        lambda torch, ps: torch.optim.SGD(
            ps, lr=0.1, momentum=0.8, dampening=0.3, weight_decay=1e-3
        ),
    ),
    "adam_l2": (
        lambda ps: Adam(ps, lr=1e-2, betas=(0.8, 0.99), weight_decay=0.1),
        lambda torch, ps: torch.optim.Adam(ps, lr=1e-2, betas=(0.8, 0.99), weight_decay=0.1),
    ),
    "adamw": (
        lambda ps: AdamW(ps, lr=1e-2, weight_decay=0.1),
        lambda torch, ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=0.1),
    ),
}


@pytest.mark.parametrize("name", TORCH_OPTIMIZERS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_optimizers_match_torch(name, dtype):
    rng = np.random.default_rng(4)
    torch, ours, theirs = torch_pair(dtype, rng)
    make_ours, make_theirs = TORCH_OPTIMIZERS[name]
    opt, topt = make_ours(ours), make_theirs(torch, theirs)
    for _ in range(20):
        for p, t in zip(ours, theirs):
            g = rng.standard_normal(p.shape).astype(dtype)
            p.grad[...] = g
            t.grad = torch.tensor(g)
        opt.step()
        topt.step()
    for p, t in zip(ours, theirs):
        assert p.data.dtype == dtype
        np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=0, atol=1e-6)


def torch_schedule(torch, topt, name):
    lrs = torch.optim.lr_scheduler
    if name == "step":
        return lrs.StepLR(topt, step_size=3, gamma=0.5)
    if name == "multistep":
        return lrs.MultiStepLR(topt, milestones=[2, 6], gamma=0.3)
    if name == "cosine":
        return lrs.CosineAnnealingLR(topt, T_max=9, eta_min=1e-3)
    if name == "onecycle":
        return lrs.OneCycleLR(topt, max_lr=[0.2, 0.05], total_steps=10, cycle_momentum=False)
    warmup = lrs.LinearLR(topt, start_factor=1 / 3, end_factor=1.0, total_iters=3)
    return lrs.SequentialLR(topt, [warmup, lrs.CosineAnnealingLR(topt, T_max=6)], milestones=[3])


@pytest.mark.parametrize("name", SCHEDULES)
def test_schedules_match_torch(name):
    torch = pytest.importorskip("torch")
    w = [torch.zeros(2, requires_grad=True), torch.zeros(3, requires_grad=True)]
    topt = torch.optim.SGD([{"params": [w[0]]}, {"params": [w[1]], "lr": 0.03}], lr=0.1)
    tsched = torch_schedule(torch, topt, name)
    opt = SGD(make_groups(make_params(np.random.default_rng(5), np.float32)), lr=0.1)
    opt.param_groups[1]["lr"] = 0.03
    sched = SCHEDULES[name](opt)
    n = 10 if name == "onecycle" else 14  # past T_max: the cosine rises again in both
    ours, theirs = [sched.get_last_lr()], [tsched.get_last_lr()]
    for _ in range(n):
        topt.step()
        tsched.step()
        sched.step()
        ours.append(sched.get_last_lr())
        theirs.append(tsched.get_last_lr())
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12)
