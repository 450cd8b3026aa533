"""The ResNet families: sizes, names, end-to-end gradients, weights, transfer-learning tools."""

import io

import numpy as np
import pytest
from conftest import nontrivial_norms

import nnscratch.io
from nnscratch import models, nn
from nnscratch.gradcheck import check_module

TORCHVISION_COUNTS = {  # torchvision.models.resnetXX(num_classes=1000)
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
}
HE_ET_AL_COUNTS = {
    "resnet20": 0.27e6,
    "resnet32": 0.46e6,
    "resnet44": 0.66e6,
    "resnet56": 0.85e6,
    "resnet110": 1.7e6,
}


@pytest.mark.parametrize("name", TORCHVISION_COUNTS)
def test_parameter_counts_equal_torchvision(name):
    assert models.create(name, seed=0).num_parameters() == TORCHVISION_COUNTS[name]


def test_cifar_stem_resnet18_count():
    assert models.resnet18(stem="cifar", num_classes=10).num_parameters() == 11_173_962


@pytest.mark.parametrize("name", HE_ET_AL_COUNTS)
def test_cifar_family_counts_and_plain_twins(name):
    count = models.create(name).num_parameters()
    assert round(count / 1e6, 2 if count < 1e6 else 1) == HE_ET_AL_COUNTS[name] / 1e6
    assert models.create(name, residual=False).num_parameters() == count  # option-A shortcuts


def test_plain_resnet18_drops_only_the_projections():
    res, plain = models.resnet18(), models.resnet18(residual=False)
    projections = sum(
        v.size
        for k, v in res.state_dict().items()
        if "downsample" in k and "running" not in k and "num_batches" not in k
    )
    assert plain.num_parameters() == res.num_parameters() - projections


def test_torchvision_key_names():
    keys = list(models.resnet18().state_dict())
    assert keys[:6] == [
        "conv1.weight",
        "bn1.weight",
        "bn1.bias",
        "bn1.running_mean",
        "bn1.running_var",
        "bn1.num_batches_tracked",
    ]
    for key in [
        "layer1.0.conv1.weight",
        "layer2.0.downsample.0.weight",
        "layer2.0.downsample.1.running_var",
        "layer4.1.bn2.bias",
        "fc.weight",
        "fc.bias",
    ]:
        assert key in keys
    assert len(keys) == 122  # len(torchvision.models.resnet18().state_dict())
    assert "layer1.0.conv3.weight" in models.resnet50().state_dict()
    assert "layer1.0.downsample.0.weight" in models.resnet50().state_dict()  # 64 -> 256


def test_summary_shapes_at_224():
    out = io.StringIO()
    rows = {
        r["name"]: r["output_shape"]
        for r in models.resnet18(seed=0).summary((3, 224, 224), file=out)
    }
    assert rows["conv1"] == (64, 112, 112) and rows["maxpool"] == (64, 56, 56)
    assert [rows[f"layer{i}"][1] for i in range(1, 5)] == [56, 28, 14, 7]
    assert rows["fc"] == (1000,) and "11,689,512" in out.getvalue()


def small_resnet18(**kw):
    return models.resnet18(stem="cifar", num_classes=3, width=1 / 16, seed=0, **kw).to(np.float64)


@pytest.mark.parametrize("residual", [True, False], ids=["residual", "plain"])
def test_whole_small_resnet18_gradcheck(residual, rng):
    model = small_resnet18(residual=residual)
    nontrivial_norms(model, rng)
    # batch 4: even at layer4's 1x1 maps batch norm then sees 4 values per channel (with 2
    # values xhat is +-1 whatever the input, a function too curved for finite differences)
    errors = check_module(model, rng.standard_normal((4, 3, 8, 8)), max_entries=6)
    assert len(errors) == 1 + len(list(model.parameters()))
    assert max(errors.values()) < 1e-6


def test_whole_cifar_resnet_and_bottleneck_gradcheck(rng):
    # One Bottleneck per stage: a whole 50-layer net with 2-channel layers is so curved
    # that no finite-difference step is both above round-off and below its curvature.
    for model in (
        models.resnet20(width=0.25, num_classes=4, seed=1).to(np.float64),
        models.ResNet(
            nn.Bottleneck, [1, 1, 1, 1], stem="cifar", width=1 / 16, num_classes=3, seed=1
        ).to(np.float64),
    ):
        errors = check_module(model, rng.standard_normal((4, 3, 8, 8)), max_entries=4)
        assert max(errors.values()) < 1e-6, type(model).__name__


def test_no_batch_norm_variant(rng):
    model = models.resnet20(batch_norm=False, width=0.25, seed=0).to(np.float64)
    assert not any("bn" in k or "running" in k for k in model.state_dict())
    assert (
        max(check_module(model, rng.standard_normal((2, 3, 8, 8)), max_entries=4).values()) < 1e-6
    )


def test_seed_gives_identical_weights():
    a, b = models.resnet20(seed=3), models.resnet20(seed=3)
    assert all(
        np.array_equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values())
    )
    assert not np.array_equal(models.resnet20(seed=4).conv1.weight.data, a.conv1.weight.data)


def test_save_load_round_trip_eval_identical(tmp_path, rng):
    model = models.resnet20(width=0.5, seed=0)
    x = rng.standard_normal((4, 3, 16, 16)).astype(np.float32)
    model(x)  # move the running statistics away from their initial values
    model.eval()
    path = tmp_path / "model.npz"
    nnscratch.io.save(model, path)
    other = models.resnet20(width=0.5, seed=99).eval()
    other.load_state_dict(nnscratch.io.load(path))
    for (k, a), b in zip(model.state_dict().items(), other.state_dict().values()):
        assert a.dtype == b.dtype and np.array_equal(a, b), k
    np.testing.assert_array_equal(model(x), other(x))


def test_mismatched_checkpoints_name_the_keys():
    cifar = models.resnet18(stem="cifar", num_classes=10, width=0.25).state_dict()
    with pytest.raises(
        ValueError, match=r"conv1.weight: checkpoint \(16, 3, 3, 3\) vs model \(16, 3, 7, 7\)"
    ):
        models.resnet18(stem="imagenet", num_classes=10, width=0.25).load_state_dict(cifar)
    with pytest.raises(ValueError, match=r"fc.weight: checkpoint \(10, 128\) vs model \(5, 128\)"):
        models.resnet18(stem="cifar", num_classes=5, width=0.25).load_state_dict(cifar)
    with pytest.raises(ValueError, match=r"missing keys: .*layer2\.0\.downsample\.0\.weight"):
        models.resnet18(stem="cifar", num_classes=10, width=0.25).load_state_dict(
            models.resnet18(stem="cifar", num_classes=10, width=0.25, residual=False).state_dict()
        )


def test_features_and_head(rng):
    x = rng.standard_normal((2, 3, 32, 32)).astype(np.float32)
    model = models.resnet18(stem="cifar", num_classes=10, seed=0).eval()
    with nn.no_grad():
        feats = model.features(x)
        assert feats.shape == (2, 512) and feats.dtype == np.float32
        np.testing.assert_allclose(model.fc(feats), model(x), rtol=1e-5, atol=1e-5)
    assert models.resnet50(stem="cifar", width=0.25).eval().features(x[:1]).shape == (1, 512)
    assert models.resnet50(stem="cifar").fc.in_features == 2048


def test_replace_head_and_freeze_backbone(rng):
    model = models.resnet20(width=0.25, seed=0)
    model.replace_head(7)
    assert model.num_classes == 7 and model.fc.weight.shape == (7, 16)
    model.freeze_backbone()
    assert model.num_parameters(trainable_only=True) == 7 * 16 + 7
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    y = model(x)
    model.backward(np.ones_like(y))
    assert model.fc.weight.grad.any()
    assert not any(p.grad.any() for n, p in model.named_parameters() if not n.startswith("fc."))
    model.freeze_backbone(False)
    assert model.num_parameters(trainable_only=True) == model.num_parameters()


def test_zero_init_residual_makes_blocks_start_as_identity(rng):
    model = models.resnet18(stem="cifar", width=0.125, zero_init_residual=True, seed=0)
    block = model.layer1[0]
    assert not block.bn2.weight.data.any()
    x = np.abs(rng.standard_normal((2, 8, 6, 6))).astype(np.float32)  # post-ReLU input
    np.testing.assert_array_equal(block(x), x)


def test_init_schemes_and_bad_arguments():
    he = models.resnet20(init_scheme="he", seed=0).layer3[0].conv2.weight.data.std()
    torch_default = models.resnet20(init_scheme="torch", seed=0).layer3[0].conv2.weight.data.std()
    assert he == pytest.approx(np.sqrt(2 / (64 * 9)), rel=0.05)
    assert torch_default == pytest.approx(1 / np.sqrt(64 * 9) / np.sqrt(3), rel=0.05)
    with pytest.raises(ValueError, match="unknown model 'resnet19'"):
        models.create("resnet19")
    with pytest.raises(ValueError, match="6n \\+ 2"):
        models.CifarResNet(21)
    with pytest.raises(ValueError, match="unknown stem"):
        models.resnet18(stem="tiny")
    with pytest.raises(ValueError, match="unknown init"):
        models.resnet20(init_scheme="lecun")
