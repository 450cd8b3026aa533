"""The trainer and the train/evaluate/extract commands, on tiny synthetic runs."""

import json
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import TINY_FLAGS
from test_data_image_folder import make_folder

import nnscratch.training.trainer as trainer_module
from nnscratch import plot
from nnscratch.cli import main
from nnscratch.nn.loss import CrossEntropyLoss
from nnscratch.training import TrainConfig, TrainingDiverged, load_checkpoint, train

TINY = dict(model="resnet20", width=0.25, n_train=240, n_test=40, batch_size=32, epochs=2, seed=3)


def weights(path):
    return load_checkpoint(path)["model"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    summary = train(TrainConfig(**TINY, out_dir=str(out)), progress=False, log=lambda s: None)
    return out, summary


def test_run_writes_everything(finished_run):
    out, summary = finished_run
    for name in (
        "config.json",
        "metrics.csv",
        "metrics.json",
        "last.npz",
        "best.npz",
        "curves.png",
        "confusion.png",
        "summary.json",
    ):
        assert (out / name).is_file(), name
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = json.loads((out / "metrics.json").read_text())
    assert [r["epoch"] for r in rows] == [1, 2]
    assert len((out / "metrics.csv").read_text().strip().splitlines()) == 3
    assert 0 <= summary["test_accuracy"] <= 1 and len(summary["per_class_accuracy"]) == 10
    assert (
        json.loads((out / "summary.json").read_text())["test_accuracy"] == summary["test_accuracy"]
    )
    checkpoint = load_checkpoint(out / "last.npz")
    assert checkpoint["progress"]["epoch"] == 2 and checkpoint["classes"][0] == "horizontal_stripes"


def test_metrics_lr_is_the_rate_of_the_epochs_last_step(finished_run):
    # 2 epochs of 6 steps under cosine annealing from 0.1: step t (0-based) uses
    # 0.1 * (1 + cos(pi t / 12)) / 2, and the rate after the last step is 0.
    out, _ = finished_run
    rows = json.loads((out / "metrics.json").read_text())
    expected = [0.1 * (1 + np.cos(np.pi * t / 12)) / 2 for t in (5, 11)]
    assert [row["lr"] for row in rows] == pytest.approx(expected, rel=1e-9)
    assert rows[-1]["lr"] > 0
    csv_lr = (out / "metrics.csv").read_text().splitlines()[-1].split(",")[5]
    assert float(csv_lr) == pytest.approx(expected[-1], rel=1e-6)


@pytest.mark.parametrize("epochs", [1, 2, 7])
def test_curves_have_whole_epoch_ticks_and_a_log_loss_axis(epochs):
    history = [
        dict(epoch=e, train_loss=1.6, train_accuracy=0.375, val_loss=4.2, val_accuracy=0.375)
        for e in range(1, epochs + 1)
    ]
    figure = plot.history_figure(history)
    figure.canvas.draw()
    for ax in figure.axes:
        low, high = ax.get_xlim()
        ticks = [t for t in ax.get_xticks() if low <= t <= high]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks
        assert 1 in ticks and high - low >= 1
    assert figure.axes[0].get_yscale() == "log"  # a first-epoch val spike cannot squash it


def test_same_seed_same_weights(finished_run, tmp_path):
    out, _ = finished_run
    train(TrainConfig(**TINY, out_dir=str(tmp_path)), progress=False, log=lambda s: None)
    for (key, a), b in zip(
        weights(out / "last.npz").items(), weights(tmp_path / "last.npz").values()
    ):
        np.testing.assert_array_equal(a, b, err_msg=key)


def test_ctrl_c_saves_and_resume_equals_uninterrupted(finished_run, tmp_path):
    """Interrupt the CLI mid-epoch with SIGINT, resume it, compare with the uninterrupted run."""
    out, _ = finished_run
    run_dir = tmp_path / "interrupted"
    command = [
        sys.executable,
        "-m",
        "nnscratch",
        "train",
        *TINY_FLAGS,
        "--epochs",
        "2",
        "--out",
        str(run_dir),
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 300
    while (
        not (run_dir / "metrics.csv").exists() and process.poll() is None and time.time() < deadline
    ):
        time.sleep(0.01)  # the metrics log is created once Ctrl-C is handled
    process.send_signal(signal.SIGINT)  # stops after the step in progress
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 130, output
    assert re.search(r"interrupted in epoch \d: saved", output) and "Traceback" not in output
    progress = load_checkpoint(run_dir / "last.npz")["progress"]
    assert (progress["epoch"], progress["batch"]) != (0, 0)  # stopped mid-run, not at the start
    assert main(["train", "--resume", str(run_dir), "--no-progress"]) == 0
    for (key, a), b in zip(
        weights(out / "last.npz").items(), weights(run_dir / "last.npz").values()
    ):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7, err_msg=key)
    rows = json.loads((run_dir / "metrics.json").read_text())
    assert [r["epoch"] for r in rows] == [1, 2]


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    calls = {"n": 0}

    class FailsInEpochTwo(CrossEntropyLoss):
        def forward(self, logits, targets):
            calls["n"] += 1
            loss = super().forward(logits, targets)
            return float("nan") if calls["n"] > 8 else loss  # 216 images: 6 batches per epoch

    monkeypatch.setattr(trainer_module, "CrossEntropyLoss", FailsInEpochTwo)
    with pytest.raises(TrainingDiverged, match=r"loss became nan at epoch 2, batch 3.*last\.npz"):
        train(TrainConfig(**TINY, out_dir=str(tmp_path)), progress=False, log=lambda s: None)
    assert load_checkpoint(tmp_path / "last.npz")["progress"]["epoch"] == 1
    assert all(np.isfinite(v).all() for v in weights(tmp_path / "last.npz").values())


def test_corrupted_and_truncated_checkpoints_are_clear_errors(finished_run, tmp_path, capsys):
    out, _ = finished_run
    data = (out / "last.npz").read_bytes()
    (tmp_path / "last.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"last\.npz: corrupted"):
        load_checkpoint(tmp_path / "last.npz")
    assert main(["train", "--resume", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "corrupted" in err and "Traceback" not in err
    (tmp_path / "junk.npz").write_bytes(b"not a checkpoint")
    assert main(["evaluate", str(tmp_path / "junk.npz")]) == 2


def test_evaluate_and_extract_commands(finished_run, tmp_path, capsys):
    out, summary = finished_run
    assert (
        main(["evaluate", str(out / "best.npz"), "--json", "--confusion", str(tmp_path / "c.png")])
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert result["accuracy"] == pytest.approx(summary["test_accuracy"]) and result["images"] == 40
    assert (tmp_path / "c.png").is_file()
    assert (
        main(["extract", str(out / "best.npz"), "--split", "val", "--out", str(tmp_path / "f.npz")])
        == 0
    )
    saved = np.load(tmp_path / "f.npz")
    assert saved["features"].shape == (24, 16) and saved["features"].dtype == np.float32
    assert saved["labels"].shape == (24,) and list(saved["classes"][:2]) == [
        "horizontal_stripes",
        "vertical_stripes",
    ]


def test_transfer_learning_from_a_checkpoint_with_frozen_backbone(finished_run, tmp_path):
    out, _ = finished_run
    config = TrainConfig(
        **{**TINY, "epochs": 1},
        init_from=str(out / "best.npz"),
        freeze_backbone=True,
        out_dir=str(tmp_path),
    )
    train(config, progress=False, log=lambda s: None)
    before, after = weights(out / "best.npz"), weights(tmp_path / "last.npz")
    for key in before:
        if not key.startswith("fc."):
            np.testing.assert_array_equal(before[key], after[key], err_msg=key)  # BN stats too
    assert not np.array_equal(before["fc.weight"], after["fc.weight"])


def test_a_run_without_batch_norm_and_its_checkpoint_keep_the_model_options(tmp_path, capsys):
    """--no-bn --init torch trains a net with no batch norm and conv biases; evaluate
    rebuilds the very same net from the checkpoint's config."""
    assert (
        main(
            [
                "train",
                *TINY_FLAGS,
                "--epochs",
                "1",
                "--no-bn",
                "--init",
                "torch",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    state = weights(tmp_path / "best.npz")
    assert not [k for k in state if "bn" in k or "running" in k]
    assert "conv1.bias" in state and "layer1.0.conv1.bias" in state
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["batch_norm"] is False and config["init"] == "torch"
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "best.npz")]) == 0
    assert "(test, 40 images): accuracy" in capsys.readouterr().out  # strict load: same net


def test_init_schemes_draw_different_weights():
    from nnscratch.training import builders

    def first_conv(init):
        return builders.build_model(TrainConfig(**TINY, init=init), 10, 3).conv1.weight.data

    spreads = {init: first_conv(init).std() for init in ("he", "xavier", "torch")}
    assert spreads["torch"] < spreads["xavier"] < spreads["he"]  # 1/(3 fan_in) < ... < 2/fan_out
    with pytest.raises(ValueError, match="unknown init 'orthogonal'"):
        TrainConfig(init="orthogonal")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--dataset", "imagenet"], "unknown dataset 'imagenet'"),
        (["train", "--model", "resnet19"], "unknown model 'resnet19'"),
        (["train", "--resume", "/nonexistent/run"], "not found"),
        (["train", "--init-from", "/nonexistent.pth", *TINY_FLAGS], "not found"),
        (
            ["train", "--batch-size", "0"],
            "batch_size (--batch-size) must be an integer of at least 1",
        ),
        (["train", "--width", "-1"], "width (--width) must be a finite number above 0"),
        (["train", "--dataset", "folder", "--data-dir", "/nonexistent/folder"], "nonexistent"),
        (["evaluate", "/nonexistent.npz"], "not found"),
    ],
)
def test_cli_bad_input_is_one_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_a_bad_thread_count_is_one_line_before_any_work(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("NNSCRATCH_NUM_THREADS", "two")
    assert main(["train", *TINY_FLAGS, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "NNSCRATCH_NUM_THREADS must be a positive integer, got 'two'" in err
    assert err.count("\n") == 1 and not (tmp_path / "run").exists()


def test_a_run_that_cannot_start_leaves_no_directory(capsys, tmp_path):
    """A batch larger than the training split fails before anything is written."""
    argv = [
        "train",
        "--model",
        "resnet20",
        "--width",
        "0.25",
        "--n-train",
        "100",
        "--n-test",
        "20",
        "--out",
        str(tmp_path / "run"),
    ]
    assert main(argv) == 2
    assert "leaves no batch" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_train_help_lists_options_and_examples(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in (
        "--dataset",
        "--model",
        "--stem",
        "--width",
        "--epochs",
        "--batch-size",
        "--optimizer",
        "--lr",
        "--schedule",
        "--crop",
        "--seed",
        "--out",
        "--resume",
        "examples:",
    ):
        assert option in text


def test_summary_defaults_to_trains_width_and_extract_help_states_the_dimension(capsys):
    assert main(["summary", "resnet18", "--depth", "1"]) == 0
    assert f"{701_466:,}" in capsys.readouterr().out  # the quarter-width model train builds
    assert TrainConfig().width == 0.25
    with pytest.raises(SystemExit):
        main(["extract", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "128-d at the default width 0.25" in text and "512-d at --width 1" in text


def test_counts_read_as_english():
    from nnscratch.utils.words import count

    assert [count(1, "epoch"), count(7, "epoch"), count(6, "batch", "batches")] == [
        "1 epoch",
        "7 epochs",  # not "7 epoches"
        "6 batches",
    ]


def test_train_messages_name_every_file_written_and_count_in_the_singular(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", *TINY_FLAGS, "--epochs", "1", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "1 epoch of 6 batches of 32" in lines[0]  # not "1 epochs"
    assert not any(line.startswith("data read from") for line in lines)  # generated in memory
    written = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))  # not .lock
    summary = json.loads((out / "summary.json").read_text())
    assert sorted(summary["output"]) == written
    assert sorted(lines[-1].split(": ", 1)[1].split(", ")) == written


def test_train_says_where_a_data_set_was_read_from(tmp_path, capsys):
    make_folder(tmp_path / "images", per_class=8)
    flags = "--dataset folder --image-size 8 --model resnet20 --width 0.25 --batch-size 4"
    argv = ["train", *flags.split(), "--epochs", "1", "--no-progress"]
    argv += ["--data-dir", str(tmp_path / "images"), "--out", str(tmp_path / "run")]
    assert main(argv) == 0
    assert f"data read from {tmp_path / 'images'}\n" in capsys.readouterr().out


def test_a_dataset_recipe_fills_only_the_options_not_given(capsys):
    from nnscratch.cli import build_parser
    from nnscratch.cli.train import config_from_args

    parse = build_parser().parse_args
    config = config_from_args(parse(["train", "--dataset", "fashion_mnist", "--epochs", "2"]))
    assert (config.epochs, config.label_smoothing, config.crop, config.test_flip) == (
        2,
        0.1,
        2,
        True,
    )
    assert (
        "fashion_mnist recipe: --label-smoothing 0.1 --crop 2 --test-flip"
        in capsys.readouterr().out
    )
    plain = config_from_args(parse(["train"]))  # the synthetic set has no recipe
    assert (plain.epochs, plain.label_smoothing, plain.test_flip) == (4, 0.0, False)


def test_test_flip_averages_the_logits_of_each_image_and_its_mirror(rng):
    from nnscratch import data, models
    from nnscratch.training import evaluate

    model = models.create("resnet20", num_classes=3, width=0.25, seed=0).eval()
    images = rng.integers(0, 256, (10, 3, 8, 8)).astype(np.uint8)
    dataset = data.ArrayDataset(images, rng.integers(0, 3, 10), ["a", "b", "c"])
    transform = data.Pipeline.from_options([0.5] * 3, [0.25] * 3)
    x = transform(images, np.random.default_rng(0))  # no random step: normalisation only
    logits = (model(x) + model(np.ascontiguousarray(x[..., ::-1]))) / 2
    result = evaluate(model, dataset, transform, batch_size=4, flip=True)
    np.testing.assert_array_equal(result.predictions, logits.argmax(axis=1))
    assert result.loss == pytest.approx(CrossEntropyLoss()(logits, dataset.labels), rel=1e-5)
    assert not np.array_equal(logits, model(x))  # the mirror image changes the logits
