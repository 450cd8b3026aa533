"""Experiments: the qualitative gradient-flow facts on small nets, the ledger, lesions, the CLI."""

import json
import math

import numpy as np
import pytest

from nnscratch import experiments, plot
from nnscratch.cli import main
from nnscratch.experiments.degradation import final_errors
from nnscratch.experiments.lesion import BranchRemoved
from nnscratch.experiments.network_parts import forward_with_block_outputs, residual_blocks
from nnscratch.experiments.short_training import build_schedule
from nnscratch.gradcheck import check_module
from nnscratch.nn import BasicBlock, ReLU
from nnscratch.nn.smooth_activation import Sigmoid, Tanh
from nnscratch.training import TrainConfig, builders
from nnscratch.utils.frobenius_norm import frobenius_norm

TINY = dict(width=0.25, batch_size=8)  # 4/8/16 channels, 8 images: fast, same facts


# ------------------------------------------------------------------ models and activation


def test_with_activation_replaces_every_relu_and_gradchecks():
    model = experiments.build_model("resnet8", width=0.25, seed=0)
    relus = sum(isinstance(m, ReLU) for m in model.modules())
    experiments.with_activation(model, "tanh")
    assert not any(isinstance(m, ReLU) for m in model.modules())
    tanhs = [m for m in model.modules() if isinstance(m, Tanh)]
    assert len(tanhs) == relus and len({id(m) for m in tanhs}) == relus  # one per site

    rng = np.random.default_rng(0)
    block = experiments.with_activation(BasicBlock(2, 2, rng=rng), "sigmoid").to(np.float64)
    assert isinstance(block.after_add, Sigmoid)  # the block calls the swapped module
    assert max(check_module(block, rng.standard_normal((2, 2, 4, 3))).values()) < 1e-6
    with pytest.raises(ValueError, match="unknown activation"):
        experiments.with_activation(model, "gelu")


def test_build_model_twins_share_weights_and_bad_names_fail():
    plain = experiments.build_model("resnet14", residual=False, width=0.25, seed=3)
    residual = experiments.build_model("resnet14", residual=True, width=0.25, seed=3)
    a, b = plain.state_dict(), residual.state_dict()
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert next(iter(plain.parameters())).dtype == np.float32
    for name in ("resnet9", "vgg16"):
        with pytest.raises(ValueError, match="unknown model"):
            experiments.build_model(name)


def test_forward_with_block_outputs_is_the_model_forward():
    model = experiments.build_model("resnet8", width=0.25, dtype="float64", seed=0)
    x, _, _ = experiments.fixed_batch(4, seed=0)
    logits, outputs = forward_with_block_outputs(model, x)
    np.testing.assert_allclose(logits, model(x), rtol=1e-12)
    assert len(outputs) == len(residual_blocks(model)) == 3


# ------------------------------------------------------------------ gradient flow facts


def test_classic_init_without_bn_plain_vanishes_residual_stays_level():
    plain = experiments.gradient_flow(
        "resnet20", residual=False, batch_norm=False, init="torch", **TINY
    )
    residual = experiments.gradient_flow(
        "resnet20", residual=True, batch_norm=False, init="torch", **TINY
    )
    assert plain["ratio"] < 1e-4  # orders of magnitude: the first layers get almost nothing
    assert 1 / 20 < residual["ratio"] < 20
    assert plain["depth"] == residual["depth"] == 20
    assert len(plain["convs"]) == 19 and plain["convs"][0]["name"] == "conv1"


def test_with_bn_plain_ratio_grows_with_depth_residual_stays_moderate():
    ratios = {
        (depth, residual): experiments.gradient_flow(
            f"resnet{depth}", residual=residual, batch_norm=True, init="he", **TINY
        )["ratio"]
        for depth in (20, 56)
        for residual in (False, True)
    }
    assert ratios[20, False] > 2  # explodes towards the input, does not vanish
    assert ratios[56, False] > 10 * ratios[20, False]
    assert ratios[56, True] < ratios[56, False] / 10


def test_regimes_table_and_bad_input():
    result = experiments.regimes(["resnet8"], ["no_bn_he", "bn_he"], **TINY)
    assert [(r["regime"], r["residual"]) for r in result["table"]] == [
        ("no_bn_he", False),
        ("no_bn_he", True),
        ("bn_he", False),
        ("bn_he", True),
    ]
    assert len(result["runs"]) == 4
    text = experiments.format_table(result["table"])
    assert "BN, He init" in text
    header, columns = text.splitlines()[:2]
    assert "first/last conv gradient-norm ratio" in header and "plain" in columns
    json.dumps(experiments.to_jsonable(result), allow_nan=False)
    with pytest.raises(ValueError, match="unknown regime"):
        experiments.regimes(["resnet8"], ["bn_xavier_typo"])
    with pytest.raises(ValueError, match="sets init"):
        experiments.regimes(["resnet8"], init="he")


def test_ledger_rows_are_consistent():
    for residual in (False, True):
        result = experiments.gradient_flow("resnet8", residual=residual, **TINY)
        for row in result["blocks"]:
            assert row["input_grad_norm"] == row["total"]
            if not residual:  # no shortcut: everything goes through the main path
                assert row["shortcut"] == 0 and row["main"] == row["total"]
            else:  # |a + b| lies between |a| - |b| and |a| + |b|
                assert abs(row["main"] - row["shortcut"]) <= row["total"] * (1 + 1e-12)
                assert row["total"] <= (row["main"] + row["shortcut"]) * (1 + 1e-12)


@pytest.mark.parametrize("index", [0, 1])  # layer1.0: identity; layer2.0: option-A shortcut
def test_ledger_splits_the_input_gradient_at_the_add(index, rng):
    model = experiments.build_model("resnet8", width=0.5, dtype="float64", seed=1)
    block = [model.layer1[0], model.layer2[0]][index]
    block.record_grad_ledger = True
    x = np.abs(rng.standard_normal((3, block.conv1.in_channels, 8, 8)))  # post-ReLU input
    y = block(x)
    dy = rng.standard_normal(y.shape)
    dx = block.backward(dy)
    d = dy * (y > 0)  # the gradient at the output of the add
    if block.downsample is None:
        dx_shortcut = d  # the identity passes d on unchanged
    else:  # keeps every 2nd pixel of the first C_in channels
        dx_shortcut = np.zeros_like(x)
        dx_shortcut[:, :, ::2, ::2] = d[:, : x.shape[1]]
    ledger = block.grad_ledger
    np.testing.assert_allclose(ledger["shortcut"], np.linalg.norm(dx_shortcut), rtol=1e-12)
    np.testing.assert_allclose(ledger["main"], np.linalg.norm(dx - dx_shortcut), rtol=1e-12)
    np.testing.assert_allclose(ledger["total"], np.linalg.norm(dx), rtol=1e-12)
    if block.downsample is None:
        np.testing.assert_allclose(ledger["shortcut"], np.linalg.norm(d), rtol=1e-12)


def test_measurement_state_is_restored_and_float32_is_available():
    result = experiments.gradient_flow("resnet8", residual=True, dtype="float32", **TINY)
    assert result["config"]["dtype"] == "float32" and math.isfinite(result["ratio"])
    result = experiments.gradient_flow("resnet8", steps=2, lr=0.01, **TINY)
    assert result["config"]["steps"] == 2 and result["ratio"] > 0


def test_to_jsonable_makes_strict_json():
    value = {
        "a": np.arange(3),
        "b": (np.float64(1.5), float("inf")),
        "c": np.bool_(True),
        1: float("nan"),
    }
    assert experiments.to_jsonable(value) == {
        "a": [0, 1, 2],
        "b": [1.5, None],
        "c": True,
        "1": None,
    }


# ------------------------------------------------------------------ lesion


def test_lesion_one_entry_per_block_and_model_restored():
    splits = experiments.load_splits(n_train=64, n_test=32)
    model = experiments.build_model("resnet8", width=0.25, seed=0)
    experiments.train_steps(model, splits, steps=2, batch_size=16, final_eval=False)
    before = [type(m).__name__ for m in model.modules()]
    transform = builders.eval_transform(splits.mean, splits.std)
    result = experiments.lesion(model, splits.test, transform)
    assert [r["name"] for r in result["blocks"]] == ["layer1.0", "layer2.0", "layer3.0"]
    assert [r["method"] for r in result["blocks"]] == ["identity", "shortcut", "shortcut"]
    for r in result["blocks"]:
        assert r["drop"] == pytest.approx(result["baseline_accuracy"] - r["accuracy"])
    assert [type(m).__name__ for m in model.modules()] == before


def test_branch_removed_is_the_block_without_its_main_branch(rng):
    block = BasicBlock(4, 4, rng=rng).to(np.float64).eval()
    x = np.abs(rng.standard_normal((2, 4, 5, 5)))
    assert BranchRemoved(block).method == "identity"
    np.testing.assert_array_equal(BranchRemoved(block)(x), x)  # relu(0 + x) = x for x >= 0
    plain = BasicBlock(4, 8, 2, residual=False, rng=rng)
    stand_in = BranchRemoved(plain)
    assert stand_in.method == "zero_pad" and stand_in(x).shape == (2, 8, 3, 3)


def _visible_ticks(axis) -> list[float]:
    low, high = sorted(axis.get_view_interval())
    return [t for t in axis.get_ticklocs() if low <= t <= high]


def test_figures_have_whole_number_ticks_and_log_axes_that_end_at_labelled_powers():
    result = experiments.regimes(["resnet20"], ["no_bn_torch", "bn_he"], **TINY)
    figure = plot.gradflow_figure(result["runs"])
    figure.canvas.draw()
    for ax in figure.axes:  # 19 convs: ticks 2, 4, ..., never 2.5
        assert all(float(t).is_integer() for t in _visible_ticks(ax.xaxis))
        ys = np.concatenate([line.get_ydata() for line in ax.get_lines()]).astype(float)
        low, high = ax.get_ylim()
        assert low <= np.nanmin(ys) and np.nanmax(ys) <= high
        assert np.log10(low).is_integer() and np.log10(high).is_integer()
    figure = plot.ratio_figure(result["table"])
    assert list(_visible_ticks(figure.axes[0].xaxis)) == [20]
    residual = [r for r in result["runs"] if r["config"]["residual"]]
    figure = plot.ledger_figure(residual)
    figure.canvas.draw()
    assert len(figure.legends) == 1  # one legend, outside the panels: over no bar
    assert all(ax.get_legend() is None for ax in figure.axes)
    for bars, right in zip(figure.axes[: len(residual)], figure.axes[len(residual) :], strict=True):
        assert bars.bbox.y0 > figure.legends[0].get_window_extent().y1 - 1
        total = right.get_lines()[0].get_ydata()
        low, high = right.get_ylim()
        assert low <= total.min() and total.max() <= high
        assert np.log10(low).is_integer() and np.log10(high).is_integer()


# ------------------------------------------------------------------ command line


def test_cli_commands_write_their_files(tmp_path, capsys):
    out = tmp_path / "gf"
    assert (
        main(
            [
                "gradflow",
                "--models",
                "resnet8",
                "--regimes",
                "no_bn_torch",
                "bn_he",
                "--width",
                "0.25",
                "--batch-size",
                "4",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    for name in (
        "gradflow.json",
        "ratios.csv",
        "layers.csv",
        "blocks.csv",
        "ratios.png",
        "gradflow.png",
        "ledger-resnet8.png",
    ):
        assert (out / name).stat().st_size > 0, name
    assert "no BN, PyTorch default init" in capsys.readouterr().out

    out = tmp_path / "dg"
    tiny = [
        "--width",
        "0.25",
        "--batch-size",
        "8",
        "--n-train",
        "32",
        "--n-test",
        "16",
        "--steps",
        "2",
        "--no-progress",
    ]
    assert main(["degradation", "--depths", "8", "14", *tiny, "--out", str(out)]) == 0
    runs = json.loads((out / "degradation.json").read_text())["runs"]
    assert [r["label"] for r in runs] == ["plain-8", "residual-8", "plain-14", "residual-14"]
    assert all(len(r["train_error"]) == 2 and r["eval"] for r in runs)
    for name in ("curves.csv", "test.csv", "degradation.png"):
        assert (out / name).stat().st_size > 0, name

    out = tmp_path / "ls"
    assert main(["lesion", "--model", "resnet8", *tiny, "--out", str(out)]) == 0
    runs = json.loads((out / "lesion.json").read_text())["runs"]
    assert [len(r["lesion"]["blocks"]) for r in runs] == [3, 3]
    assert [r["method"] for r in runs[1]["lesion"]["blocks"]] == [
        "identity",
        "zero_pad",
        "zero_pad",
    ]
    assert (out / "lesion.png").stat().st_size > 0 and (out / "lesion.csv").stat().st_size > 0


def test_lesion_command_on_a_checkpoint_of_nnscratch_train(tmp_path, tiny_trained_run):
    out = tmp_path / "ls"
    assert (
        main(["lesion", "--checkpoint", str(tmp_path / "run" / "best.npz"), "--out", str(out)]) == 0
    )
    (run,) = json.loads((out / "lesion.json").read_text())["runs"]
    assert run["label"] == "residual resnet20" and len(run["lesion"]["blocks"]) == 9


@pytest.mark.parametrize(
    "argv, message",
    [
        (["gradflow", "--models", "resnet9"], "unknown model 'resnet9'"),
        (["gradflow", "--regimes", "bn"], "unknown regime"),
        (["gradflow", "--batch-size", "1"], "at least 2"),
        (["degradation", "--depths", "10"], "6n + 2"),
        (["degradation", "--steps", "0"], "steps must be positive"),
        (["lesion", "--model", "vgg"], "unknown model 'vgg'"),
        (["lesion", "--checkpoint", "missing.npz"], "not found"),
    ],
)
def test_cli_bad_input_is_one_line(argv, message, capsys, tmp_path):
    assert main([*argv, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@pytest.mark.parametrize("command", ["gradflow", "degradation", "lesion"])
def test_help_lists_options_and_examples(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = capsys.readouterr().out
    assert "examples:" in text and "--out" in text and "--width" in text


def test_norm_does_not_underflow_for_tiny_float32_gradients():
    tiny = np.full(1000, 1e-30, dtype=np.float32)  # representable; its squares are not
    assert np.linalg.norm(tiny) == 0.0  # the trap
    assert frobenius_norm(tiny) == pytest.approx(1e-30 * np.sqrt(1000), rel=1e-6)
    assert frobenius_norm(np.zeros(3)) == 0.0


# ------------------------------------------------------------------ seeds and schedules

SEED_TINY = dict(width=0.25, batch_size=8, n_train=32, n_test=16)


def _spread_by_hand(values):
    v = np.array(values, dtype=np.float64)
    return v.mean(), v.std(ddof=1) if len(v) > 1 else 0.0, v.min(), v.max()


def test_degradation_aggregate_is_the_spread_of_its_per_seed_runs():
    result = experiments.degradation((8,), steps=3, eval_every=2, seeds=(0, 1, 2), **SEED_TINY)
    assert [(r["label"], r["seed"]) for r in result["runs"]] == [
        (label, seed) for seed in (0, 1, 2) for label in ("plain-8", "residual-8")
    ]
    for row in result["aggregate"]:
        group = [r for r in result["runs"] if r["label"] == row["label"]]
        assert row["seeds"] == [0, 1, 2] and row["diverged"] == []
        finals = [final_errors(r) for r in group]
        for key, values in (
            ("train_error", [f[0] for f in finals]),
            ("test_error", [f[1] for f in finals]),
        ):
            mean, std, low, high = _spread_by_hand(values)
            assert row[key] == pytest.approx({"mean": mean, "std": std, "min": low, "max": high})
        stacked = np.array([r["train_error"] for r in group])
        band = row["curves"]["train_error"]
        np.testing.assert_allclose(band["mean"], stacked.mean(axis=0))
        np.testing.assert_allclose(band["std"], stacked.std(axis=0, ddof=1))
        np.testing.assert_allclose(band["min"], stacked.min(axis=0))
        np.testing.assert_allclose(band["max"], stacked.max(axis=0))
        tests = np.array([[e["test_error"] for e in r["eval"]] for r in group])
        assert row["eval"]["step"] == [2, 3]
        np.testing.assert_allclose(row["eval"]["test_error"]["mean"], tests.mean(axis=0))
    # each seed: new weights and batches, so new curves
    losses = [tuple(r["train_loss"]) for r in result["runs"] if r["label"] == "plain-8"]
    assert len(set(losses)) == 3
    # the figure shades min to max over the seeds; one seed draws lines only
    assert all(ax.collections for ax in plot.degradation_figure(result).axes)
    one = dict(result, runs=[r for r in result["runs"] if r["seed"] == 0])
    assert not any(ax.collections for ax in plot.degradation_figure(one).axes)


def test_one_seed_is_the_single_seed_run_and_its_spread_is_a_point():
    result = experiments.degradation((8,), steps=2, seeds=(3,), **SEED_TINY)
    splits = experiments.load_splits(n_train=32, n_test=16, seed=3)
    model = experiments.build_model("resnet8", residual=False, width=0.25, seed=3)
    before = experiments.train_steps(model, splits, steps=2, batch_size=8, eval_every=50, seed=3)
    run, row = result["runs"][0], result["aggregate"][0]
    assert run["train_loss"] == before["train_loss"] and run["eval"] == before["eval"]
    train_error = final_errors(run)[0]
    assert row["train_error"] == {
        "mean": train_error,
        "std": 0.0,
        "min": train_error,
        "max": train_error,
    }


def test_lesion_aggregate_is_the_spread_of_its_per_seed_drops():
    result = experiments.lesion_study("resnet8", steps=2, seeds=(0, 1), **SEED_TINY)
    assert [(r["label"], r["seed"]) for r in result["runs"]] == [
        ("residual resnet8", 0),
        ("plain resnet8", 0),
        ("residual resnet8", 1),
        ("plain resnet8", 1),
    ]
    for row in result["aggregate"]:
        group = [r for r in result["runs"] if r["label"] == row["label"]]
        for i, block in enumerate(row["blocks"]):
            drops = [r["lesion"]["blocks"][i]["drop"] for r in group]
            mean, std, low, high = _spread_by_hand(drops)
            assert block["drop"] == pytest.approx(
                {"mean": mean, "std": std, "min": low, "max": high}
            )
        base = [r["lesion"]["baseline_accuracy"] for r in group]
        assert row["baseline_accuracy"]["mean"] == pytest.approx(np.mean(base))


def test_step_schedule_divides_the_lr_by_ten_at_half_and_three_quarters():
    model = experiments.build_model("resnet8", width=0.25)
    config = TrainConfig(epochs=1, lr=0.1, schedule="step")
    optimizer = builders.build_optimizer(config, model)
    schedule = build_schedule(optimizer, "step", 100, config)
    lrs = [schedule.get_last_lr()[0]]  # the lr of step 1
    for _ in range(99):
        schedule.step()
        lrs.append(schedule.get_last_lr()[0])  # the lr of steps 2..100
    assert lrs[49] == pytest.approx(0.1) and lrs[50] == pytest.approx(0.01)  # steps 50, 51
    assert lrs[74] == pytest.approx(0.01) and lrs[75] == pytest.approx(0.001)  # steps 75, 76
    assert lrs[99] == pytest.approx(0.001)
    with pytest.raises(ValueError, match="unknown schedule"):
        build_schedule(optimizer, "multistep", 100, config)


def test_cli_seeds_end_to_end(tmp_path, capsys):
    tiny = ["--width", "0.25", "--batch-size", "8", "--n-train", "32", "--n-test", "16"]
    tiny += ["--steps", "2", "--no-progress"]
    out = tmp_path / "dg"
    assert (
        main(["degradation", "--depths", "8", "--seeds", "0", "1", *tiny, "--out", str(out)]) == 0
    )
    saved = json.loads((out / "degradation.json").read_text())
    assert [r["seed"] for r in saved["runs"]] == [0, 0, 1, 1] and saved["config"]["seeds"] == [0, 1]
    assert [row["label"] for row in saved["aggregate"]] == ["plain-8", "residual-8"]
    final = (out / "final.csv").read_text().splitlines()
    assert sum(line.startswith("plain-8,all,") for line in final) == 1 and len(final) == 7
    assert len((out / "curves_mean.csv").read_text().splitlines()) == 1 + 2 * 2
    assert (out / "degradation.png").stat().st_size > 0
    assert "±" in capsys.readouterr().out

    out = tmp_path / "ls"
    assert main(["lesion", "--model", "resnet8", "--seed", "2", *tiny, "--out", str(out)]) == 0
    saved = json.loads((out / "lesion.json").read_text())
    assert saved["config"]["seeds"] == [2] and [r["seed"] for r in saved["runs"]] == [2, 2]
    rows = (out / "lesion.csv").read_text().splitlines()
    assert sum(",all," in line for line in rows) == 6 and (out / "lesion.png").stat().st_size > 0


@pytest.mark.parametrize(
    "seeds, message",
    [
        (["-1"], ">= 0"),
        ([], "at least one seed"),
        (["1", "2", "1"], "distinct"),
        (["x"], "integers"),
    ],
)
@pytest.mark.parametrize("command", ["degradation", "lesion"])
def test_cli_bad_seeds_are_one_line(command, seeds, message, capsys, tmp_path):
    assert main([command, "--seeds", *seeds, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert message in err and "--seeds" in err and err.count("\n") == 1
    assert not (tmp_path / "x").exists()
