"""Inference's fused conv -> batch norm -> [+ plus] -> [ReLU]: the op on both tiers, and
nn.fusion, which runs it inside models under no_grad()."""

import dataclasses

import numpy as np
import pytest
from conftest import CONV_SWEEP, readonly

import nnscratch.functional as readable
import nnscratch.functional.fast as fast
from nnscratch import models, nn
from nnscratch.functional._checks import InputDtypeError, InputShapeError
from nnscratch.nn import fusion
from nnscratch.nn.module import trace_calls


def bn_arrays(C, dtype, rng):
    gamma = rng.standard_normal(C).astype(dtype)
    beta = rng.standard_normal(C).astype(dtype)
    mean = rng.standard_normal(C).astype(dtype)
    var = (rng.random(C) + 0.5).astype(dtype)
    return gamma, beta, mean, var


def layer_by_layer(tier, x, w, bn, stride, padding, plus, relu, eps=1e-5):
    y, _ = tier.conv2d_forward(x, w, stride=stride, padding=padding)
    y, _ = tier.batch_norm2d_forward(y, *bn, training=False, eps=eps)
    if plus is not None:
        y = y + plus
    if relu:
        y, _ = tier.relu_forward(y)
    return y


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", CONV_SWEEP)
def test_fused_equals_the_three_ops_bit_for_bit(case, dtype, conv_paths, rng):
    """Every convolution path, with and without the sum and the ReLU."""
    N, C_in, H, W, C_out, k, stride, padding = case
    kh, kw = (k, k) if isinstance(k, int) else k
    x = readonly(rng.standard_normal((N, C_in, H, W)).astype(dtype))
    w = readonly(rng.standard_normal((C_out, C_in, kh, kw)).astype(dtype))
    bn = [readonly(a) for a in bn_arrays(C_out, dtype, rng)]
    shape = layer_by_layer(fast, x, w, bn, stride, padding, None, False).shape
    plus = readonly(rng.standard_normal(shape).astype(dtype))
    for add, relu in [(None, False), (None, True), (plus, False), (plus, True)]:
        want = layer_by_layer(fast, x, w, bn, stride, padding, add, relu)
        got = fast.conv2d_bn_inference(
            x, w, *bn, stride=stride, padding=padding, plus=add, relu=relu
        )
        assert got.dtype == dtype
        np.testing.assert_array_equal(got, want)
        if relu:
            assert (got == 0).any() and (got > 0).any()  # the ReLU did cut something

        reference = readable.conv2d_bn_inference(
            x, w, *bn, stride=stride, padding=padding, plus=add, relu=relu
        )
        np.testing.assert_array_equal(
            reference, layer_by_layer(readable, x, w, bn, stride, padding, add, relu)
        )
        scale = np.abs(reference).max()
        tolerance = 1e-12 if dtype == np.float64 else 1e-5
        assert np.abs(got - reference).max() <= tolerance * scale


def test_fused_op_uses_eps_and_keeps_nan(rng):
    x = rng.standard_normal((2, 16, 8, 8)).astype(np.float32)
    x[1, 3, 4, 4] = np.nan
    w = rng.standard_normal((16, 16, 3, 3)).astype(np.float32)
    bn = bn_arrays(16, np.float32, rng)
    for eps in (1e-5, 0.5):
        got = fast.conv2d_bn_inference(x, w, *bn, padding=1, relu=True, eps=eps)
        want = layer_by_layer(fast, x, w, bn, 1, 1, None, True, eps=eps)
        np.testing.assert_array_equal(got, want)  # NaN where the unfused ops give NaN
        assert np.isnan(got[1]).any() and not np.isnan(got[0]).any()
    loose = fast.conv2d_bn_inference(x, w, *bn, padding=1, eps=0.5)
    assert not np.array_equal(loose, fast.conv2d_bn_inference(x, w, *bn, padding=1))


@pytest.mark.parametrize("tier", [readable, fast], ids=["readable", "fast"])
def test_fused_op_names_bad_input(tier, rng):
    x = rng.standard_normal((2, 4, 6, 6)).astype(np.float32)
    w = rng.standard_normal((8, 4, 3, 3)).astype(np.float32)
    gamma, beta, mean, var = bn_arrays(8, np.float32, rng)
    ok = np.zeros((2, 8, 6, 6), np.float32)

    def call(x=x, plus=ok, **changed):
        bn = {"gamma": gamma, "beta": beta, "running_mean": mean, "running_var": var, **changed}
        return tier.conv2d_bn_inference(x, w, **bn, padding=1, plus=plus)

    with pytest.raises(InputShapeError, match=r"expected gamma of shape \(8,\), got \(4,\)"):
        call(gamma=gamma[:4])
    with pytest.raises(InputShapeError, match=r"expected running_var of shape \(8,\)"):
        call(running_var=var[:, None])
    with pytest.raises(InputShapeError, match=r"plus of the output's shape \(2, 8, 6, 6\), got"):
        call(plus=np.zeros((2, 8, 3, 3), np.float32))
    with pytest.raises(InputDtypeError, match="plus has dtype float64"):
        call(plus=ok.astype(np.float64))
    with pytest.raises(InputShapeError, match="C_in=4 channels"):
        call(x=x[:, :3])
    with pytest.raises(InputDtypeError, match="expected plus to be a numpy array"):
        call(plus=[1.0])


# ----------------------------------------------------------------------- inside models
def with_statistics(model, rng):
    """Non-trivial running statistics and affine parameters in every batch norm."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            C = m.num_features
            m.running_mean[...] = rng.standard_normal(C)
            m.running_var[...] = rng.random(C) + 0.5
            m.weight.data[...] = rng.standard_normal(C)
            m.bias.data[...] = rng.standard_normal(C)
    return model


def counting_fused_calls(monkeypatch):
    """Count the fused op's calls and the batch-norm layers that still run on their own."""
    counts = {"fused": 0, "batch_norm": 0}
    current = fusion.backend

    def counting_backend():
        chosen = current()

        def counted(*args, **kwargs):
            counts["fused"] += 1
            return chosen.conv2d_bn_inference(*args, **kwargs)

        return dataclasses.replace(chosen, conv2d_bn_inference=counted)

    monkeypatch.setattr(fusion, "backend", counting_backend)
    forward = nn.BatchNorm2d.forward

    def bn_forward(self, x):
        counts["batch_norm"] += 1
        return forward(self, x)

    monkeypatch.setattr(nn.BatchNorm2d, "forward", bn_forward)
    return counts


MODELS = [
    ("resnet18", {"width": 0.25, "stem": "cifar"}, 20),
    ("resnet18", {"width": 0.25, "stem": "imagenet"}, 20),
    ("resnet20", {"shortcut": "zero_pad"}, 19),
    ("resnet50", {"width": 0.125}, 53),
    ("preact_resnet20", {}, 9),  # conv1 -> bn2 in each block; bn1 follows the sum
    ("resnet20", {"residual": False}, 19),
]


@pytest.mark.parametrize(("name", "kwargs", "pairs"), MODELS)
def test_models_fuse_every_conv_bn_pair_under_no_grad(name, kwargs, pairs, rng, monkeypatch):
    model = with_statistics(models.create(name, num_classes=10, **kwargs), rng).eval()
    x = rng.standard_normal((3, 3, 32, 32)).astype(np.float32)
    batch_norms = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    layer_by_layer = model(x)  # gradients enabled: every layer runs (and keeps its cache)
    counts = counting_fused_calls(monkeypatch)
    with nn.no_grad():
        fused = model(x)
    np.testing.assert_array_equal(fused, layer_by_layer)
    assert counts == {"fused": pairs, "batch_norm": batch_norms - pairs}
    with nn.no_grad():
        np.testing.assert_array_equal(model.features(x), model.features(x))
    assert counts["fused"] == 3 * pairs


def test_no_fusion_in_training_mode_with_gradients_or_under_trace(rng, monkeypatch):
    model = with_statistics(models.create("resnet20", num_classes=10), rng)
    x = rng.standard_normal((2, 3, 32, 32)).astype(np.float32)
    counts = counting_fused_calls(monkeypatch)
    with nn.no_grad():
        model.train()(x)  # batch statistics: nothing to fold
    model.eval()(x)  # a backward may follow: the layers keep their caches
    with nn.no_grad(), trace_calls() as calls:
        model(x)
    assert counts["fused"] == 0
    assert sum(isinstance(m, nn.BatchNorm2d) for m, _ in calls) == 19  # summary sees them all


def test_conv_with_bias_or_other_layers_are_not_folded(rng, monkeypatch):
    class ScaledBatchNorm(nn.BatchNorm2d):
        def forward(self, x):
            return 2 * super().forward(x)

    conv_bias = nn.Conv2d(3, 4, 3, padding=1, bias=True, rng=rng)
    chain = nn.Sequential(conv_bias, nn.BatchNorm2d(4), nn.Conv2d(4, 4, 1, bias=False, rng=rng))
    subclass = nn.Sequential(nn.Conv2d(3, 4, 1, bias=False, rng=rng), ScaledBatchNorm(4))
    x = rng.standard_normal((2, 3, 5, 5)).astype(np.float32)
    counts = counting_fused_calls(monkeypatch)
    for model in (chain, subclass):
        with_statistics(model, rng).eval()
        want = model(x)
        with nn.no_grad():
            np.testing.assert_array_equal(model(x), want)
    assert counts["fused"] == 0


def test_sequence_fuses_the_relu_and_the_sum_only_at_the_end(rng):
    conv1, bn1 = nn.Conv2d(4, 4, 3, padding=1, bias=False, rng=rng), nn.BatchNorm2d(4)
    conv2, bn2 = nn.Conv2d(4, 4, 3, padding=1, bias=False, rng=rng), nn.BatchNorm2d(4)
    layers = [conv1, bn1, nn.ReLU(), conv2, bn2]
    for m in layers:
        with_statistics(m, rng).eval()
    x = rng.standard_normal((2, 4, 6, 6)).astype(np.float32)
    plus = rng.standard_normal((2, 4, 6, 6)).astype(np.float32)
    for then in (nn.ReLU(), nn.Identity(), nn.Tanh(), None):
        want = fusion.sequence(layers, x, plus=plus, then=then)
        with nn.no_grad():
            got = fusion.sequence(layers, x, plus=plus, then=then)
        np.testing.assert_array_equal(got, want)
    assert (want < 0).any()  # Tanh (the last `then`) kept its negative values


def test_a_fused_layers_bad_input_is_named_after_the_convolution(rng):
    model = models.create("resnet20", num_classes=10).eval()
    with nn.no_grad(), pytest.raises(InputShapeError, match=r"^Conv2d\(3, 16.*C_in=3 channels"):
        model(np.zeros((1, 4, 32, 32), np.float32))
