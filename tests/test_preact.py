"""Pre-activation blocks and nets (He et al. 2016): gradients, the identity mapping, routes."""

import numpy as np
import pytest
from conftest import nontrivial_norms, readonly
from test_blocks import assert_block_gradients, randomise_norms

from nnscratch import models, nn
from nnscratch.gradcheck import check_module
from nnscratch.nn import PreActBasicBlock, PreActBottleneck

BLOCKS = {
    "identity": (lambda r, res: PreActBasicBlock(4, 4, residual=res, rng=r), (2, 4, 5, 5)),
    "shared_identity": (
        lambda r, res: PreActBasicBlock(4, 4, residual=res, shared_activation=True, rng=r),
        (2, 4, 5, 5),
    ),
    "projection": (lambda r, res: PreActBasicBlock(3, 6, 2, residual=res, rng=r), (2, 3, 7, 6)),
    "zero_pad": (
        lambda r, res: PreActBasicBlock(3, 6, 2, residual=res, shortcut="zero_pad", rng=r),
        (2, 3, 6, 5),
    ),
    "no_bn": (
        lambda r, res: PreActBasicBlock(3, 5, 2, residual=res, batch_norm=False, rng=r),
        (2, 3, 5, 5),
    ),
    "bottleneck_identity": (
        lambda r, res: PreActBottleneck(8, 2, residual=res, rng=r),
        (2, 8, 4, 4),
    ),
    "bottleneck_projection": (
        lambda r, res: PreActBottleneck(4, 2, 2, residual=res, rng=r),
        (2, 4, 5, 5),
    ),
}


@pytest.mark.parametrize("residual", [True, False], ids=["residual", "plain"])
@pytest.mark.parametrize("name", BLOCKS)
def test_preact_block_gradcheck(name, residual, rng):
    assert_block_gradients(*BLOCKS[name], residual, rng)


def test_preact_block_computes_the_formula(rng):
    block = PreActBasicBlock(4, 4, rng=rng).to(np.float64)
    randomise_norms(block, rng)
    x = rng.standard_normal((3, 4, 5, 5))
    branch = block.conv2(block.relu2(block.bn2(block.conv1(block.relu1(block.bn1(x))))))
    block.train()
    np.testing.assert_allclose(block(x), x + branch, rtol=1e-12, atol=1e-12)
    shared = PreActBasicBlock(3, 6, 2, rng=rng).to(np.float64)
    h = shared.relu1(shared.bn1(x[:, :3]))
    expected = shared.conv2(shared.relu2(shared.bn2(shared.conv1(h)))) + shared.downsample(h)
    np.testing.assert_allclose(shared(x[:, :3]), expected, rtol=1e-12, atol=1e-12)


def test_nothing_follows_the_add_so_the_shortcut_passes_dy_unchanged(rng):
    """Identity pre-activation block: dx = dy + dx_main exactly, dy read-only."""
    block = PreActBasicBlock(4, 4, rng=rng).to(np.float64)
    block.record_grad_ledger = True
    x = rng.standard_normal((2, 4, 5, 5))
    y = block(x)
    dy = readonly(rng.standard_normal(y.shape))
    dx = block.backward(dy)
    block.route = "main"
    block(x)
    dx_main = block.backward(dy)
    np.testing.assert_allclose(dx, dy + dx_main, rtol=1e-13, atol=1e-13)
    ledger = block.grad_ledger
    assert ledger["above"] == pytest.approx(np.linalg.norm(dy), rel=1e-12)
    assert ledger["shortcut"] == 0.0 and ledger["main"] == pytest.approx(np.linalg.norm(dx_main))


def small_preact(depth=20, **kw):
    return models.CifarResNet(depth, block=nn.PreActBasicBlock, width=0.25, num_classes=4, **kw)


def test_ledger_identity_holds_in_every_preact_identity_block_and_not_post_activation(rng):
    """shortcut part of every identity block's input gradient == the gradient from above."""
    x = rng.standard_normal((4, 3, 8, 8))
    for pre_activation in (True, False):
        block_type = nn.PreActBasicBlock if pre_activation else nn.BasicBlock
        model = models.CifarResNet(20, block=block_type, width=0.25, num_classes=4, seed=0).to(
            np.float64
        )
        blocks = [m for m in model.modules() if isinstance(m, nn.ResidualBlock)]
        for block in blocks:
            block.record_grad_ledger = True
        model.backward(rng.standard_normal(model(x).shape))
        identity = [b for b in blocks if b.downsample is None and not b.shared_path()]
        assert len(identity) == (6 if pre_activation else 7)
        gaps = [abs(b.grad_ledger["shortcut"] - b.grad_ledger["above"]) for b in identity]
        if pre_activation:
            assert max(g / b.grad_ledger["above"] for g, b in zip(gaps, identity)) < 1e-10
        else:  # the ReLU after the `+` masks part of the gradient from above
            assert all(g > 1e-3 * b.grad_ledger["above"] for g, b in zip(gaps, identity))


def test_unrolled_gradient_is_top_gradient_plus_the_branches(rng):
    """dL/dx_l = dL/dx_L + sum over blocks l..L-1 of their branch gradients (one stage)."""
    model = small_preact(seed=2).to(np.float64)
    stage = model.layer2  # blocks 1 and 2 have identity shortcuts
    x = rng.standard_normal((4, 8, 4, 4))
    blocks = list(stage)[1:]
    h = x
    for block in blocks:
        h = block(h)
    dtop = rng.standard_normal(h.shape)
    dx = dtop
    branch_parts = []
    for block in reversed(blocks):
        block.record_grad_ledger = True
        dnext = dx
        dx = block.backward(dnext)
        branch_parts.append(dx - dnext)
    np.testing.assert_allclose(dx, dtop + sum(branch_parts), rtol=1e-12, atol=1e-12)
    for block in blocks:
        block.record_grad_ledger = False


@pytest.mark.parametrize("route", ["main", "shortcut"])
def test_routes_split_the_backward_exactly(route, rng):
    for make, shape in (BLOCKS["identity"], BLOCKS["projection"]):
        block = make(rng, True).to(np.float64)
        x = rng.standard_normal(shape)
        dy = rng.standard_normal(block(x).shape)
        dx_both = block.backward(dy)
        parts = {}
        for r in ("main", "shortcut"):
            block.route = r
            block(x)
            parts[r] = block.backward(dy)
        np.testing.assert_allclose(parts["main"] + parts["shortcut"], dx_both, atol=1e-12)
        assert np.abs(parts[route]).max() > 0
    with pytest.raises(ValueError, match="unknown route"):
        block.route = "sideways"
        block(x)
        block.backward(dy)


@pytest.mark.parametrize(
    "make",
    [
        lambda: small_preact(seed=1),
        lambda: small_preact(seed=1, residual=False),
        lambda: models.preact_resnet18(stem="cifar", num_classes=3, width=1 / 16, seed=1),
        lambda: models.CifarResNet(
            11, block=nn.PreActBottleneck, width=0.25, num_classes=3, shortcut="projection", seed=1
        ),
    ],
    ids=["preact20", "plain20", "preact18", "preact_bottleneck11"],
)
def test_whole_preact_net_gradcheck(make, rng):
    model = make().to(np.float64)
    nontrivial_norms(model, rng)
    errors = check_module(model, rng.standard_normal((4, 3, 8, 8)), max_entries=4)
    assert len(errors) == 1 + len(list(model.parameters()))
    assert max(errors.values()) < 1e-6


def test_preact_nets_layout_counts_and_names():
    for name in ("preact_resnet18", "preact_resnet20", "preact_resnet164"):
        assert name in models.names()
    # the stem BN moves to the end, the first-of-stage BNs see the narrower input (the two
    # cancel), and projections lose their BN (their input is BN-ReLU'd already)
    post = models.resnet18(num_classes=10, stem="cifar")
    projection_norms = sum(
        p.size for k, p in post.named_parameters() if k.split(".")[2:4] == ["downsample", "1"]
    )
    assert projection_norms == 2 * (128 + 256 + 512)
    assert models.preact_resnet18(num_classes=10, stem="cifar").num_parameters() == (
        post.num_parameters() - projection_norms
    )
    assert round(models.preact_resnet164().num_parameters() / 1e6, 1) == 1.7  # He et al. 2016
    assert round(models.preact_resnet110().num_parameters() / 1e6, 1) == 1.7
    keys = list(models.preact_resnet20().state_dict())
    assert keys[:2] == ["conv1.weight", "layer1.0.bn1.weight"] and "bn1.weight" not in keys
    assert "final_bn.running_var" in keys and keys[-2:] == ["fc.weight", "fc.bias"]
    first = models.preact_resnet20().layer1[0]
    assert first.shares_activation() and not models.preact_resnet20().layer1[1].shares_activation()
    plain = models.preact_resnet20(residual=False)
    assert plain.num_parameters() == models.preact_resnet20().num_parameters()
    with pytest.raises(ValueError, match="9n \\+ 2"):
        models.CifarResNet(32, block=nn.PreActBottleneck)


def test_zero_init_residual_makes_preact_blocks_start_as_identity(rng):
    model = models.preact_resnet20(width=0.5, zero_init_residual=True, seed=0)
    block = model.layer1[1]
    assert not block.conv2.weight.data.any()
    x = rng.standard_normal((2, 8, 6, 6)).astype(np.float32)
    np.testing.assert_array_equal(block(x), x)
    # without batch norm the branch's last convolution has a bias: it is zeroed too
    no_bn = models.preact_resnet20(width=0.5, batch_norm=False, zero_init_residual=True, seed=0)
    x16 = rng.standard_normal((2, 16, 4, 4)).astype(np.float32)
    np.testing.assert_array_equal(no_bn.layer2[1](x16), x16)


def test_lesion_of_a_preact_block_keeps_the_shortcut(rng):
    from nnscratch.experiments import BranchRemoved

    model = small_preact(seed=0).to(np.float64)
    model.eval()
    x = rng.standard_normal((2, 4, 8, 8))
    assert np.array_equal(BranchRemoved(model.layer1[1])(x), x)
    down = model.layer2[0]
    expected = down.downsample(down.relu1(down.bn1(x)))
    np.testing.assert_allclose(BranchRemoved(down)(x), expected, rtol=1e-12)
    # the shared BN is the stand-in's own layer: eval() reaches it (batch statistics in
    # training mode would overwrite its running ones)
    model.train()
    stand_in = BranchRemoved(down)
    stand_in.eval()
    assert not down.bn1.training and down.bn1 in list(stand_in.modules())
