"""Modules: gradient checks of every layer, dtypes, caches, state dicts and errors."""

import numpy as np
import pytest
from conftest import kink_free, readonly

from nnscratch import nn
from nnscratch.gradcheck import check_module

rng0 = np.random.default_rng(7)

LAYERS = {
    "conv": (lambda r: nn.Conv2d(3, 4, 3, stride=2, padding=1, rng=r), (2, 3, 7, 5)),
    "conv_nonsquare_nobias": (
        lambda r: nn.Conv2d(2, 3, (1, 3), padding=(0, 1), bias=False, rng=r),
        (1, 2, 5, 4),
    ),
    "batchnorm": (lambda r: nn.BatchNorm2d(3), (3, 3, 4, 2)),
    "maxpool": (lambda r: nn.MaxPool2d(3, 2, 1), (2, 2, 7, 6)),
    "avgpool": (lambda r: nn.AdaptiveAvgPool2d(1), (2, 3, 4, 5)),
    "flatten": (lambda r: nn.Flatten(), (2, 3, 2, 2)),
    "linear": (lambda r: nn.Linear(6, 4, rng=r), (5, 6)),
    "relu": (lambda r: nn.ReLU(), (2, 3, 4, 4)),
    "identity": (lambda r: nn.Identity(), (2, 3)),
}


def layer_input(name, shape, rng):
    if name == "maxpool":  # distinct values: no ties
        return rng.permutation(int(np.prod(shape))).reshape(shape) / 10.0
    return kink_free(rng.standard_normal(shape))


@pytest.mark.parametrize("name", LAYERS)
def test_gradcheck_every_layer(name, rng):
    make, shape = LAYERS[name]
    layer = make(rng).to(np.float64)
    if name == "batchnorm":  # non-trivial gamma and beta
        layer.weight.data[:] = rng.uniform(0.5, 2, 3)
        layer.bias.data[:] = rng.standard_normal(3)
    errors = check_module(layer, layer_input(name, shape, rng))
    assert set(errors) == {"input"} | {k for k, _ in layer.named_parameters()}
    assert max(errors.values()) < 1e-6


def test_batchnorm_eval_mode_gradcheck(rng):
    layer = nn.BatchNorm2d(3).to(np.float64)
    layer.running_mean[:] = rng.standard_normal(3)
    layer.running_var[:] = rng.uniform(0.5, 2, 3)
    layer.eval()
    assert max(check_module(layer, rng.standard_normal((2, 3, 3, 3))).values()) < 1e-6


@pytest.mark.parametrize("name", LAYERS)
def test_float32_in_float32_out_and_readonly_dy(name, rng):
    make, shape = LAYERS[name]
    layer = make(rng)
    x = layer_input(name, shape, rng).astype(np.float32)
    y = layer(x)
    assert y.dtype == np.float32
    dx = layer.backward(readonly(rng.standard_normal(y.shape).astype(np.float32)))
    assert dx.dtype == np.float32 and dx.shape == x.shape
    assert all(p.grad.dtype == np.float32 for p in layer.parameters())


def test_small_network_end_to_end(rng):
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, bias=False, rng=rng),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 5, (1, 3), stride=2, rng=rng),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(5, 3, rng=rng),
    ).to(np.float64)
    errors = check_module(net, rng.standard_normal((2, 3, 8, 7)))
    assert len(errors) == 1 + 7 and max(errors.values()) < 1e-6


def test_gradients_accumulate_until_zero_grad(rng):
    layer = nn.Linear(3, 2, rng=rng)
    x = rng.standard_normal((4, 3)).astype(np.float32)
    dy = rng.standard_normal((4, 2)).astype(np.float32)
    layer(x)
    layer.backward(dy)
    once = layer.weight.grad.copy()
    layer(x)
    layer.backward(dy)
    np.testing.assert_allclose(layer.weight.grad, 2 * once, rtol=1e-6)
    layer.zero_grad()
    assert not layer.weight.grad.any()


def test_frozen_parameters_get_no_gradient(rng):
    layer = nn.Conv2d(2, 2, 3, rng=rng).requires_grad_(False)
    y = layer(rng.standard_normal((1, 2, 5, 5)).astype(np.float32))
    dx = layer.backward(np.ones_like(y))
    assert dx.any() and not layer.weight.grad.any() and not layer.bias.grad.any()
    assert (
        layer.num_parameters(trainable_only=True) == 0 and layer.num_parameters() == 2 * 2 * 9 + 2
    )


def test_backward_before_forward_and_twice(rng):
    layer = nn.Conv2d(1, 1, 3, rng=rng)
    with pytest.raises(RuntimeError, match=r"Conv2d\(1, 1.*backward called without a forward"):
        layer.backward(np.zeros((1, 1, 1, 1), np.float32))
    y = layer(np.zeros((1, 1, 3, 3), np.float32))
    layer.backward(np.ones_like(y))
    with pytest.raises(RuntimeError, match="each forward allows one backward"):
        layer.backward(np.ones_like(y))


def test_no_grad_keeps_no_cache(rng):
    layer = nn.Linear(3, 2, rng=rng)
    with nn.no_grad():
        assert not nn.is_grad_enabled()
        layer(np.ones((1, 3), np.float32))
    assert nn.is_grad_enabled() and layer._cache is None
    with pytest.raises(RuntimeError, match="outside no_grad"):
        layer.backward(np.ones((1, 2), np.float32))


@pytest.mark.parametrize(
    "layer, x, error, message",
    [
        (
            nn.Conv2d(3, 8, 3),
            np.zeros((2, 4, 8, 8), np.float32),
            ValueError,
            r"Conv2d\(3, 8.*C_in=3.*\(2, 4, 8, 8\)",
        ),
        (nn.Conv2d(3, 8, 3), np.zeros((3, 8, 8), np.float32), ValueError, r"Conv2d.*4 dimensions"),
        (
            nn.Conv2d(3, 8, 3),
            np.zeros((1, 3, 8, 8), np.int32),
            TypeError,
            r"Conv2d.*float32 or float64, got int32",
        ),
        (nn.Conv2d(3, 8, 3), np.zeros((1, 3, 8, 8)), TypeError, r"Conv2d.*float64.*float32"),
        (nn.BatchNorm2d(4), np.zeros((2, 3, 4, 4), np.float32), ValueError, r"BatchNorm2d\(4.*C=4"),
        (nn.Linear(6, 2), np.zeros((2, 5), np.float32), ValueError, r"in_features=6.*\(2, 5\)"),
        (nn.MaxPool2d(2), np.zeros((4, 4), np.float32), ValueError, r"MaxPool2d.*4 dimensions"),
        (nn.ReLU(), [1.0, 2.0], TypeError, r"ReLU.*numpy array, got list"),
    ],
)
def test_bad_input_names_layer_and_shapes(layer, x, error, message):
    with pytest.raises(error, match=message):
        layer(x)


def test_error_is_labelled_by_the_innermost_layer_once():
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Conv2d(5, 2, 1))
    with pytest.raises(ValueError) as info:
        net(np.zeros((1, 3, 5, 5), np.float32))
    assert str(info.value).startswith("Conv2d(5, 2") and "Sequential" not in str(info.value)


def test_state_dict_names_round_trip_and_strictness(rng):
    def make():
        return nn.Sequential(
            nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2)
        )

    a, b = make(), make()
    a(rng.standard_normal((2, 3, 3, 3)).astype(np.float32))  # move the running stats
    sd = a.state_dict()
    assert list(sd) == [
        "0.weight",
        "1.weight",
        "1.bias",
        "1.running_mean",
        "1.running_var",
        "1.num_batches_tracked",
        "3.weight",
        "3.bias",
    ]
    assert sd["1.num_batches_tracked"].dtype == np.int64 and sd["1.num_batches_tracked"] == 1
    sd["0.weight"][...] = 0  # a copy: the model is untouched
    assert a.state_dict()["0.weight"].any()
    b.load_state_dict(a.state_dict())
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        np.testing.assert_array_equal(va, vb, err_msg=k)
    without_counter = {k: v for k, v in a.state_dict().items() if "num_batches" not in k}
    b.load_state_dict(without_counter)  # older files lack num_batches_tracked
    bad = a.state_dict()
    bad["3.weight"] = np.zeros((5, 4), np.float32)
    bad["extra.weight"] = np.zeros(1)
    del bad["1.bias"]
    with pytest.raises(ValueError) as info:
        b.load_state_dict(bad)
    text = str(info.value)
    assert "missing keys: 1.bias" in text and "unexpected keys: extra.weight" in text
    assert "3.weight: checkpoint (5, 4) vs model (2, 4)" in text
    del bad["3.weight"]
    missing, unexpected = b.load_state_dict(bad, strict=False)
    assert missing == ["1.bias", "3.weight"] and unexpected == ["extra.weight"]


def test_to_casts_parameters_and_buffers():
    layer = nn.BatchNorm2d(2).to(np.float64)
    assert (
        layer.weight.data.dtype == layer.weight.grad.dtype == layer.running_var.dtype == np.float64
    )
    assert layer.num_batches_tracked.dtype == np.int64
    with pytest.raises(TypeError, match="float32 or float64"):
        layer.to(np.int32)


def test_train_eval_and_momentum_none(rng):
    bn = nn.BatchNorm2d(2, momentum=None)
    xs = [rng.standard_normal((4, 2, 3, 3)).astype(np.float32) + i for i in range(3)]
    for x in xs:
        bn(x)
    assert bn.num_batches_tracked == 3
    np.testing.assert_allclose(
        bn.running_mean, np.mean([x.mean(axis=(0, 2, 3)) for x in xs], axis=0), rtol=1e-5
    )
    bn.eval()
    assert not bn.training
    bn(xs[0])
    assert bn.num_batches_tracked == 3  # eval mode does not count batches


def test_default_initialisation_matches_torchvision_resnet():
    rng = np.random.default_rng(0)
    conv = nn.Conv2d(64, 128, 3, bias=False, rng=rng)
    assert conv.weight.data.std() == pytest.approx(np.sqrt(2 / (128 * 9)), rel=0.02)  # fan_out
    linear = nn.Linear(400, 10, rng=rng)
    bound = 1 / np.sqrt(400)
    assert (
        np.abs(linear.weight.data).max() <= bound
        and np.abs(linear.weight.data).max() > 0.95 * bound
    )
    bn = nn.BatchNorm2d(3)
    assert (bn.weight.data == 1).all() and (bn.bias.data == 0).all()


def test_losses_as_modules(rng):
    ce = nn.CrossEntropyLoss(label_smoothing=0.1)
    z = rng.standard_normal((4, 3))
    loss = ce(z, np.array([0, 1, 2, 1]))
    assert np.isfinite(loss)
    assert ce.backward().shape == (4, 3)
    bce = nn.BCEWithLogitsLoss()
    bce(z[:, 0], np.array([0, 1, 1, 0]))
    assert bce.backward(2.0).shape == (4,)
