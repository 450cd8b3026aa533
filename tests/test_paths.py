"""Paths (Veit et al. 2016): the sum over all paths, routed gradients, deleting and swapping
blocks, retained caches, and the command."""

import json
import math

import numpy as np
import pytest
from conftest import readonly

from nnscratch import data, models, nn, reference_mode
from nnscratch.cli import main
from nnscratch.experiments import BranchRemoved, build_model, paths
from nnscratch.nn.module import retain_caches
from nnscratch.training import builders
from nnscratch.training.evaluation import evaluate


def randomise_statistics(model, rng):
    """Non-trivial batch-norm weights and running statistics, so eval mode is not the identity."""
    for name, p in model.named_parameters():
        if p.data.ndim == 1 and not name.startswith("fc"):
            p.data[...] = (
                rng.uniform(0.5, 1.5, p.shape)
                if name.endswith("weight")
                else rng.normal(0, 0.3, p.shape)
            )
    for name, b in model.named_buffers():
        if name.endswith("running_mean"):
            b[...] = rng.normal(0, 0.3, b.shape)
        elif name.endswith("running_var"):
            b[...] = rng.uniform(0.5, 2.0, b.shape)
    return model


NETS = {
    "post-activation, zero-pad": lambda: build_model(
        "resnet14", width=0.25, num_classes=4, seed=1, dtype="float64"
    ),
    "pre-activation, zero-pad": lambda: build_model(
        "preact_resnet14", width=0.25, num_classes=4, seed=2, dtype="float64"
    ),
    "pre-activation, projection": lambda: models.CifarResNet(
        8, block=nn.PreActBasicBlock, shortcut="projection", width=0.25, num_classes=4, seed=3
    ).to(np.float64),
}


@pytest.mark.parametrize("training", [True, False], ids=["batch-stats", "running-stats"])
@pytest.mark.parametrize("name", NETS)
def test_the_routed_gradients_of_all_paths_add_up_to_the_full_gradient(name, training, rng):
    model = randomise_statistics(NETS[name](), rng).train(training)
    x = rng.standard_normal((3, 3, 8, 8))
    dy = readonly(rng.standard_normal(model(x).shape))
    n = len(blocks_of(model.modules()))
    result = paths.sum_over_paths(model, x, dy)
    assert result["paths"] == 2**n
    scale = np.abs(result["full"]).max()
    assert scale > 0
    assert result["max_abs_error"] <= 1e-10 * scale
    np.testing.assert_allclose(result["path_sum"], result["full"], rtol=0, atol=1e-10 * scale)
    # no single path is the whole gradient: the identity is a sum of distinct parts
    model(x)
    shortest = paths.routed_backward(model, dy, [])
    assert np.abs(shortest - result["full"]).max() > 1e-3 * scale


def test_path_lengths_are_binomial_and_count_every_path():
    for n in (0, 1, 3, 9, 54):
        d = paths.path_length_distribution(n)
        pascal = np.array([1], dtype=object)
        for _ in range(n):  # the coefficients of (1 + z)^n, built row by row
            pascal = np.concatenate([pascal, [0]]) + np.concatenate([[0], pascal])
        assert d["count"] == list(pascal) and d["length"] == list(range(n + 1))
        assert sum(d["count"]) == 2**n
        assert math.isclose(sum(d["probability"]), 1.0)
        assert d["probability"][n // 2] == max(d["probability"])
    with pytest.raises(ValueError, match="non-negative integer"):
        paths.path_length_distribution(-1)


def identity_chain(block, rng, n=3):
    return nn.Sequential(*[block(4, 4, rng=rng) for _ in range(n)]).to(np.float64)


def test_the_path_of_length_zero_through_identity_blocks(rng):
    """Pre-activation: the gradient passes straight through; post-activation: each block's
    ReLU after the `+` masks it."""
    x = rng.standard_normal((2, 4, 5, 5))
    dy = readonly(rng.standard_normal(x.shape))
    chain = randomise_statistics(identity_chain(nn.PreActBasicBlock, rng), rng)
    chain(x)
    np.testing.assert_array_equal(paths.routed_backward(chain, dy, []), dy)
    assert all(block.route is None for block in chain)

    chain = randomise_statistics(identity_chain(nn.BasicBlock, rng), rng)
    outputs = [x]
    for block in chain:
        outputs.append(block(outputs[-1]))
    masked = dy * np.prod([y > 0 for y in outputs[1:]], axis=0)
    assert 0 < np.count_nonzero(masked) < dy.size
    np.testing.assert_array_equal(paths.routed_backward(chain, dy, []), masked)
    chain(x)
    with pytest.raises(ValueError, match="block indices"):
        paths.routed_backward(chain, dy, [3])


@pytest.mark.parametrize("reference", [False, True], ids=["fast", "readable"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_retained_caches_give_identical_backward_passes(reference, dtype, rng):
    """Even when another net's forward and backward reuse the scratch buffers in between."""
    model = randomise_statistics(build_model("resnet14", width=0.25, dtype=dtype), rng)
    other = build_model("resnet14", width=0.25, dtype=dtype, seed=5)
    x = rng.standard_normal((4, 3, 16, 16)).astype(dtype)
    with reference_mode(reference):
        dy = readonly(rng.standard_normal(model(x).shape).astype(dtype))
        with retain_caches():
            first = model.backward(dy)
            grads = [p.grad.copy() for p in model.parameters()]
            other.backward(other(rng.standard_normal(x.shape).astype(dtype)) * 3)
            second = model.backward(dy)
        np.testing.assert_array_equal(first, second)
        for p, g in zip(model.parameters(), grads):  # gradients accumulate on every pass
            np.testing.assert_allclose(p.grad, 2 * g, rtol=1e-6)
        model.backward(dy)  # the caches left behind allow one more backward ...
        with pytest.raises(RuntimeError, match="backward called without a forward"):
            model.backward(dy)  # ... and then no more
        model(x)
        model.backward(dy)
        with pytest.raises(RuntimeError, match="backward called without a forward"):
            model.backward(dy)


def test_gradient_by_path_length_samples_each_length_and_leaves_the_model_as_it_was(rng):
    model = randomise_statistics(build_model("resnet14", width=0.25, seed=4), rng).eval()
    for p in model.parameters():
        p.grad[...] = rng.standard_normal(p.shape)
    state, grads = model.state_dict(), [p.grad.copy() for p in model.parameters()]
    x = rng.standard_normal((4, 3, 16, 16)).astype(np.float32)
    result = paths.gradient_by_path_length(model, x, np.array([0, 1, 2, 3]), samples=4, seed=1)
    rows = result["lengths"]
    assert result["blocks"] == 6 and [row["length"] for row in rows] == list(range(7))
    assert [row["exhaustive"] for row in rows] == [True, False, False, False, False, False, True]
    assert [len(row["magnitudes"]) for row in rows] == [1, 4, 4, 4, 4, 4, 1]
    for row in rows:
        assert row["min"] <= row["mean"] <= row["max"] and row["min"] > 0
        assert row["total"] == pytest.approx(row["paths"] * np.mean(row["magnitudes"]))
    assert sum(row["share"] for row in rows) == pytest.approx(1.0)
    assert model.training is False
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, state[key], err_msg=key)
    for p, g in zip(model.parameters(), grads):
        np.testing.assert_array_equal(p.grad, g)
    with pytest.raises(ValueError, match="plain net has one path"):
        paths.gradient_by_path_length(build_model("resnet8", residual=False), x, np.zeros(4))


def test_subsets_are_distinct_and_all_of_them_when_few(rng):
    assert paths.choose_subsets(4, 2, 6, rng) == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    assert paths.choose_subsets(3, 0, 1, rng) == [()]
    drawn = paths.choose_subsets(9, 1, 8, rng)  # 8 of the 9 single blocks
    assert len(set(drawn)) == 8 and all(len(s) == 1 and 0 <= s[0] < 9 for s in drawn)
    drawn = paths.choose_subsets(54, 20, 30, rng)
    assert len(set(drawn)) == 30 and all(len(set(s)) == 20 for s in drawn)


def test_effective_lengths_is_the_shortest_window_carrying_the_fraction():
    shares = [0.05, 0.5, 0.3, 0.1, 0.05]
    gradients = {"lengths": [{"share": s, "paths": math.comb(4, k)} for k, s in enumerate(shares)]}
    e = paths.effective_lengths(gradients, 0.88)
    assert (e["shortest"], e["longest"]) == (1, 3) and e["share"] == pytest.approx(0.9)
    assert e["path_fraction"] == pytest.approx(14 / 16)
    assert e["mean_length"] == pytest.approx(sum(k * s for k, s in enumerate(shares)))
    tie = paths.effective_lengths(gradients, 0.85)  # 0..2 and 1..3 both do: the shorter paths
    assert (tie["shortest"], tie["longest"]) == (0, 2)
    one = paths.effective_lengths(gradients, 0.5)
    assert (one["shortest"], one["longest"]) == (1, 1)


def tiny_test_set(n=48):
    _, test = data.synthetic(n_train=0, n_test=n, seed=2, size=16)
    mean, std = data.channel_stats(test.images)
    return test, builders.eval_transform(mean, std)


def logits(model, x):
    """Eval-mode logits; the model's mode is left as it was."""
    training = model.training
    model.eval()
    with nn.no_grad():
        y = model(x)
    model.train(training)
    return y


def test_deleting_no_block_is_the_baseline_and_deleting_changes_the_net(rng):
    model = randomise_statistics(build_model("resnet14", width=0.25, seed=6), rng)
    test, transform = tiny_test_set()
    result = paths.delete_blocks(model, test, transform, draws=3, seed=0)
    rows = result["rows"]
    assert rows[0]["sets"] == [[]] and rows[0]["mean"] == evaluate(model, test, transform).accuracy
    assert result["baseline_accuracy"] == rows[0]["mean"]
    assert [len(row["sets"]) for row in rows] == [1, 3, 3, 3, 3, 3, 1]
    assert all(len(set(s)) == row["deleted"] for row in rows for s in row["sets"])
    x = transform(test.images[:4], rng).astype(np.float32)
    before, blocks = logits(model, x), list(model.modules())
    with paths.blocks_deleted(model, [1, 4]):
        assert isinstance(model.layer1[1], BranchRemoved)
        assert np.abs(logits(model, x) - before).max() > 1e-3
    np.testing.assert_array_equal(logits(model, x), before)
    assert list(model.modules()) == blocks


def test_deleting_pre_activation_blocks_leaves_their_shared_batch_norm_alone(rng):
    """The first block and the downsampling ones share bn1-relu1 with their shortcut: a
    deleted one must normalise with its running statistics and leave them as they were."""
    model = randomise_statistics(build_model("preact_resnet14", width=0.25, seed=8), rng).train()
    state = model.state_dict()
    test, transform = tiny_test_set()
    paths.delete_blocks(model, test, transform, draws=2)
    assert all(m.training for m in model.modules())
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, state[key], err_msg=key)


def test_swapping_two_blocks_changes_the_forward_and_is_undone(rng):
    model = randomise_statistics(build_model("resnet20", width=0.25, seed=7), rng)
    assert paths.swappable_pairs(model) == [(0, 1), (0, 2), (1, 2), (4, 5), (7, 8)]
    x = rng.standard_normal((4, 3, 16, 16)).astype(np.float32)
    before, blocks = logits(model, x), list(model.modules())
    with paths.blocks_swapped(model, [(4, 5)]) as order:
        assert order == [0, 1, 2, 3, 5, 4, 6, 7, 8]
        assert model.layer2[1] is blocks_of(blocks)[5]
        assert np.abs(logits(model, x) - before).max() > 1e-3
    np.testing.assert_array_equal(logits(model, x), before)
    assert list(model.modules()) == blocks
    with pytest.raises(ValueError, match="cannot trade places"):
        with paths.blocks_swapped(model, [(3, 4)]):
            pass
    assert list(model.modules()) == blocks
    test, transform = tiny_test_set()
    result = paths.reorder_blocks(model, test, transform, max_swaps=2, draws=3, seed=0)
    assert [row["swaps"] for row in result["rows"]] == [0, 1, 2]
    assert [len(row["orders"]) for row in result["rows"]] == [1, 3, 3]
    assert result["rows"][0]["kendall_tau"] == [1.0]
    assert all(tau < 1 for row in result["rows"][1:] for tau in row["kendall_tau"])  # no undoing
    assert result["rows"][0]["mean"] == evaluate(model, test, transform).accuracy


def blocks_of(modules):
    return [m for m in modules if isinstance(m, nn.ResidualBlock)]


def test_kendall_tau():
    assert paths.kendall_tau([0, 1, 2, 3]) == 1.0
    assert paths.kendall_tau([3, 2, 1, 0]) == -1.0
    assert paths.kendall_tau([1, 0, 2]) == pytest.approx(1 / 3)


TINY = (
    "--width 0.25 --batch-size 8 --n-train 32 --n-test 16 --steps 2 --samples 2 --draws 2 "
    "--max-swaps 1 --images 4 --no-progress"
).split()


def test_paths_command_end_to_end(tmp_path, capsys):
    out = tmp_path / "paths"
    assert main(["paths", "--model", "resnet14", *TINY, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "residual resnet14: test accuracy" in printed and "carry" in printed
    result = json.loads((out / "paths.json").read_text())
    assert result["distribution"]["count"] == [1, 6, 15, 20, 15, 6, 1]
    residual, plain = result["runs"]
    assert residual["residual"] and not plain["residual"] and plain["gradients"] is None
    assert set(residual["gradients"]) == {"trained", "initial"}
    assert [len(row["magnitudes"]) for row in residual["gradients"]["trained"]["lengths"]] == [
        1,
        2,
        2,
        2,
        2,
        2,
        1,
    ]
    assert [row["swaps"] for row in plain["reordering"]["rows"]] == [0, 1]
    for name in ("paths_gradients.csv", "paths_deletion.csv", "paths_swaps.csv", "paths.png"):
        assert (out / name).stat().st_size > 0, name
    assert len((out / "paths_gradients.csv").read_text().splitlines()) == 1 + 2 * 7


def test_paths_command_on_a_checkpoint_of_nnscratch_train(tmp_path, tiny_trained_run):
    out = tmp_path / "paths"
    checkpoint = str(tmp_path / "run" / "best.npz")
    argv = ["paths", "--checkpoint", checkpoint, "--samples", "2", "--draws", "1", "--images", "4"]
    assert main([*argv, "--out", str(out)]) == 0
    (run,) = json.loads((out / "paths.json").read_text())["runs"]
    assert run["label"] == "residual resnet20" and run["deletion"]["blocks"] == 9
    assert run["gradients"]["initial"] is not None


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--model", "resnet7"], "unknown model 'resnet7'"),
        (["--samples", "0"], "samples must be positive"),
        (["--draws", "-1"], "draws must be positive"),
        (["--max-swaps", "-1"], "max_swaps must be at least 0"),
        (["--images", "1"], "images must be at least 2"),
        (["--checkpoint", "missing.npz"], "not found"),
    ],
)
def test_paths_bad_input_is_one_line(argv, message, capsys, tmp_path):
    assert main(["paths", *argv, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and err.startswith("nnscratch paths: error:")
