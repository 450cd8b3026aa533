"""Residual blocks and their plain twins: gradient checks, the fan-out, shortcuts."""

import numpy as np
import pytest
from conftest import readonly

from nnscratch.gradcheck import check_module
from nnscratch.nn import BasicBlock, Bottleneck, ZeroPadShortcut

BLOCKS = {
    "basic_identity": (lambda r, res: BasicBlock(4, 4, residual=res, rng=r), (2, 4, 5, 5)),
    "basic_projection": (lambda r, res: BasicBlock(3, 6, 2, residual=res, rng=r), (2, 3, 7, 6)),
    "basic_zero_pad": (
        lambda r, res: BasicBlock(3, 6, 2, residual=res, shortcut="zero_pad", rng=r),
        (2, 3, 6, 5),
    ),
    "bottleneck_identity": (lambda r, res: Bottleneck(8, 2, residual=res, rng=r), (2, 8, 4, 4)),
    "bottleneck_projection": (
        lambda r, res: Bottleneck(4, 2, 2, residual=res, rng=r),
        (2, 4, 5, 5),
    ),
    "basic_no_bn": (
        lambda r, res: BasicBlock(3, 5, 2, residual=res, batch_norm=False, rng=r),
        (2, 3, 5, 5),
    ),
}


def randomise_norms(block, rng):
    """Non-trivial gamma/beta so the gradient check exercises them."""
    for name, p in block.named_parameters():
        if "bn" in name or "downsample.1" in name:
            p.data[...] = (
                rng.uniform(0.5, 1.5, p.shape)
                if name.endswith("weight")
                else rng.normal(0, 0.3, p.shape)
            )


def assert_block_gradients(make, shape, residual, rng):
    """Gradient-check the block ``make(rng, residual)`` on an input of ``shape``, every
    parameter included, its norms made non-trivial."""
    block = make(rng, residual).to(np.float64)
    randomise_norms(block, rng)
    errors = check_module(block, rng.standard_normal(shape))
    assert set(errors) == {"input"} | {k for k, _ in block.named_parameters()}
    assert max(errors.values()) < 1e-6


@pytest.mark.parametrize("residual", [True, False], ids=["residual", "plain"])
@pytest.mark.parametrize("name", BLOCKS)
def test_block_gradcheck(name, residual, rng):
    assert_block_gradients(*BLOCKS[name], residual, rng)


def test_projection_and_plain_twin_names(rng):
    block = BasicBlock(3, 6, 2, rng=rng)
    keys = list(block.state_dict())
    assert "downsample.0.weight" in keys and "downsample.1.running_var" in keys
    plain = BasicBlock(3, 6, 2, residual=False, rng=rng)
    assert not any(k.startswith("downsample") for k in plain.state_dict())
    assert [k for k in keys if not k.startswith("downsample")] == list(plain.state_dict())
    assert not any(
        k.startswith("downsample") for k in BasicBlock(3, 6, 2, shortcut="zero_pad").state_dict()
    )


def test_identity_block_is_the_plain_block_plus_x(rng):
    res, plain = (
        BasicBlock(4, 4, rng=np.random.default_rng(1)),
        BasicBlock(4, 4, residual=False, rng=np.random.default_rng(1)),
    )
    plain.relu2 = type(plain.relu2)()
    x = rng.standard_normal((2, 4, 5, 5)).astype(np.float32)
    main = plain.bn2(plain.conv2(plain.relu1(plain.bn1(plain.conv1(x)))))
    np.testing.assert_allclose(res(x), np.maximum(main + x, 0), rtol=1e-6, atol=1e-6)


def test_backward_fans_out_and_sums_without_touching_dy(rng):
    """dx = dx_main + dx_shortcut; dy is read-only so an in-place write would raise."""
    block = BasicBlock(4, 4, rng=rng).to(np.float64)
    block.record_grad_ledger = True
    x = rng.standard_normal((2, 4, 5, 5))
    y = block(x)
    dy = readonly(rng.standard_normal(y.shape))
    dx = block.backward(dy)
    d = dy * (y > 0)  # gradient at the output of the `+`
    np.testing.assert_allclose(block.grad_ledger["shortcut"], np.linalg.norm(d))  # identity path
    dx_main = dx - d
    np.testing.assert_allclose(block.grad_ledger["main"], np.linalg.norm(dx_main))
    np.testing.assert_allclose(block.grad_ledger["total"], np.linalg.norm(dx))


def test_plain_block_ledger_has_no_shortcut(rng):
    block = BasicBlock(4, 4, residual=False, rng=rng)
    block.record_grad_ledger = True
    y = block(rng.standard_normal((2, 4, 5, 5)).astype(np.float32))
    block.backward(np.ones_like(y))
    assert (
        block.grad_ledger["shortcut"] == 0
        and block.grad_ledger["main"] == block.grad_ledger["total"]
    )


def test_zero_pad_shortcut(rng):
    sc = ZeroPadShortcut(2, 5, 2)
    x = rng.standard_normal((1, 2, 5, 4))
    y = sc(x)
    assert y.shape == (1, 5, 3, 2)
    np.testing.assert_array_equal(y[:, :2], x[:, :, ::2, ::2])
    assert not y[:, 2:].any() and not list(sc.parameters())
    assert check_module(sc, x)["input"] < 1e-6
    with pytest.raises(ValueError, match="out_channels"):
        ZeroPadShortcut(4, 2, 1)


def test_unknown_shortcut():
    with pytest.raises(ValueError, match="projection, zero_pad"):
        BasicBlock(3, 6, 2, shortcut="option_c")
