"""No run ever writes over another's files, and every refusal is one line (through the CLI).

Each test reproduces a defect seen in an adversarial review: resuming from another working
directory, a crafted checkpoint's out_dir, two runs started in one second, Ctrl-C during
the last validation, a full disk, a read-only file system, impossible sizes.
"""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from child import run_child
from conftest import TINY_FLAGS

import nnscratch.training.trainer as trainer_module
from nnscratch.cli import main
from nnscratch.nn.loss import CrossEntropyLoss
from nnscratch.training import load_checkpoint, save_checkpoint
from nnscratch.training.run_dir import lock_run_dir

TINY = [*TINY_FLAGS, "--epochs", "2"]
BATCHES_PER_EPOCH = 6  # 216 training images in batches of 32


def snapshot_files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes (what a run must leave untouched)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def one_error_line(capsys, *fragments: str) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err
    return err


def interrupt_at_forward(monkeypatch, n: int) -> None:
    """Send this process SIGINT (Ctrl-C) during the n-th training forward pass."""
    calls = {"n": 0}

    class InterruptingLoss(CrossEntropyLoss):
        def forward(self, logits, targets):
            calls["n"] += 1
            if calls["n"] == n:
                os.kill(os.getpid(), signal.SIGINT)
            return super().forward(logits, targets)

    monkeypatch.setattr(trainer_module, "CrossEntropyLoss", InterruptingLoss)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A complete tiny run in ``<b>/runs/exp``, made from the working directory ``<b>``."""
    b = tmp_path_factory.mktemp("b")
    cwd = os.getcwd()
    os.chdir(b)
    try:
        assert main(["train", *TINY, "--out", "runs/exp"]) == 0
    finally:
        os.chdir(cwd)
    return b / "runs" / "exp"


@pytest.fixture
def interrupted_run(tmp_path, monkeypatch):
    """A run in ``<a>/runs/exp`` stopped by Ctrl-C in its first epoch."""
    a = tmp_path / "a"
    a.mkdir()
    monkeypatch.chdir(a)
    with monkeypatch.context() as patch:
        interrupt_at_forward(patch, 3)
        assert main(["train", *TINY, "--out", "runs/exp"]) == 130
    return a / "runs" / "exp"


def test_resume_writes_into_the_directory_it_is_given(finished_run, interrupted_run, monkeypatch):
    """From b, resuming a's run by a relative path finishes a's run and leaves b's alone
    (both were started with the same relative --out runs/exp)."""
    b_before = snapshot_files(finished_run)
    monkeypatch.chdir(finished_run.parent.parent)
    relative = os.path.relpath(interrupted_run)
    assert main(["train", "--resume", relative, "--no-progress"]) == 0
    assert snapshot_files(finished_run) == b_before
    assert (interrupted_run / "summary.json").is_file()
    assert load_checkpoint(interrupted_run / "last.npz")["progress"]["epoch"] == 2
    saved = json.loads((interrupted_run / "config.json").read_text())
    assert Path(saved["out_dir"]).resolve() == interrupted_run.resolve()


def test_a_crafted_out_dir_in_the_checkpoint_is_ignored(interrupted_run, tmp_path):
    checkpoint = load_checkpoint(interrupted_run / "last.npz")
    checkpoint["config"]["out_dir"] = str(tmp_path / "a" / ".." / ".." / "elsewhere")
    save_checkpoint(interrupted_run / "last.npz", checkpoint)
    assert main(["train", "--resume", str(interrupted_run), "--no-progress"]) == 0
    assert not (tmp_path.parent / "elsewhere").exists()
    assert (interrupted_run / "summary.json").is_file()


def test_resume_from_best_npz_is_refused_and_creates_nothing(
    finished_run, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    before = snapshot_files(finished_run)
    assert main(["train", "--resume", str(finished_run / "best.npz")]) == 2
    one_error_line(capsys, "--init-from")
    assert list(tmp_path.iterdir()) == [] and snapshot_files(finished_run) == before


def test_options_given_with_resume_are_refused_by_name(interrupted_run, capsys):
    before = snapshot_files(interrupted_run)
    assert main(["train", "--resume", str(interrupted_run), "--epochs", "5", "--lr", "1"]) == 2
    one_error_line(capsys, "--epochs, --lr cannot be given with it")
    assert snapshot_files(interrupted_run) == before


def test_a_finished_run_is_not_resumed(finished_run, capsys):
    before = snapshot_files(finished_run)
    assert main(["train", "--resume", str(finished_run)]) == 2
    one_error_line(capsys, "finished all 2 epochs")
    assert snapshot_files(finished_run) == before


def test_ctrl_c_during_the_last_validation_stops_and_resume_finishes(tmp_path, monkeypatch):
    """The handler is in place through validation and the final test: the run stops with a
    complete last.npz and no summary; resuming only tests and plots."""
    calls = {"n": 0}
    real_evaluate = trainer_module.evaluate

    def evaluate_with_ctrl_c(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # validation after the last (second) epoch
            os.kill(os.getpid(), signal.SIGINT)
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(trainer_module, "evaluate", evaluate_with_ctrl_c)
    run_dir = tmp_path / "run"
    assert main(["train", *TINY, "--out", str(run_dir)]) == 130
    assert not (run_dir / "summary.json").exists()
    assert load_checkpoint(run_dir / "last.npz")["progress"]["epoch"] == 2
    assert main(["train", "--resume", str(run_dir), "--no-progress"]) == 0
    assert json.loads((run_dir / "summary.json").read_text())["epochs"] == 2


def test_two_runs_started_in_the_same_second_get_their_own_directories(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("nnscratch.training.run_dir.time.strftime", lambda f: "runs/train-same")
    short = [*TINY_FLAGS, "--epochs", "1"]
    assert main(["train", *short]) == 0
    first = snapshot_files(tmp_path / "runs" / "train-same")
    assert main(["train", *short, "--seed", "4"]) == 0
    assert snapshot_files(tmp_path / "runs" / "train-same") == first
    second = json.loads((tmp_path / "runs" / "train-same-2" / "config.json").read_text())
    assert second["seed"] == 4 and second["out_dir"] == "runs/train-same-2"


def test_an_explicit_out_holding_a_run_is_refused(finished_run, capsys):
    before = snapshot_files(finished_run)
    assert main(["train", *TINY, "--out", str(finished_run)]) == 2
    one_error_line(capsys, "already holds a run", "--resume")
    assert snapshot_files(finished_run) == before


def test_a_run_directory_in_use_is_refused(interrupted_run, capsys):
    before = snapshot_files(interrupted_run)
    with lock_run_dir(interrupted_run):  # as another process training into it would
        assert main(["train", "--resume", str(interrupted_run)]) == 2
    one_error_line(capsys, "in use by another nnscratch process")
    assert snapshot_files(interrupted_run) == before


def test_leftover_temporary_files_are_removed_on_resume(interrupted_run):
    stale = interrupted_run / ".last.npz.k3j2x9.tmp"  # what kill -9 during a write leaves
    stale.write_bytes(b"half a checkpoint")
    assert main(["train", "--resume", str(interrupted_run), "--no-progress"]) == 0
    assert not stale.exists() and not list(interrupted_run.glob(".*.tmp"))


def test_divergence_before_any_checkpoint_says_none_was_saved(tmp_path, monkeypatch, capsys):
    class Diverges(CrossEntropyLoss):
        def forward(self, logits, targets):
            super().forward(logits, targets)
            return float("inf")

    monkeypatch.setattr(trainer_module, "CrossEntropyLoss", Diverges)
    assert main(["train", *TINY, "--out", str(tmp_path / "run")]) == 3
    err = capsys.readouterr().err
    assert "no checkpoint was saved yet" in err and "last.npz" not in err


@pytest.mark.parametrize(
    "argv, fragments",
    [
        (["--width", "inf"], ["width (--width) must be a finite number above 0, got inf"]),
        (["--lr", "inf"], ["lr (--lr) must be a finite number above 0, got inf"]),
        (["--seed", "-1"], ["seed (--seed) must be an integer of at least 0, got -1"]),
        (["--width", "100"], ["needs about", "GiB of memory", "lower --width"]),
        (["--dataset", "folder", "--image-size", "100000"], ["needs about", "--image-size"]),
    ],
)
def test_impossible_options_are_one_line_before_any_work(argv, fragments, tmp_path, capsys):
    assert main(["train", *argv, "--out", str(tmp_path / "run")]) == 2
    one_error_line(capsys, *fragments)
    assert not (tmp_path / "run").exists()


def test_out_naming_a_file_or_a_path_under_one_is_one_line(tmp_path, capsys):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    for out, fragment in ((a_file, "is an existing file"), (a_file / "run", "which is a file")):
        assert main(["train", *TINY, "--out", str(out)]) == 2
        one_error_line(capsys, fragment)
    assert a_file.read_text() == "mine"


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--depth", "-1"], "--depth must be at least 1"),
        (["--num-classes", "0"], "num_classes must be a positive integer"),
        (["--in-channels", "0"], "in_channels must be a positive integer"),
        (["--width", "100"], "GiB of memory"),
    ],
)
def test_summary_refuses_impossible_sizes(argv, fragment, capsys):
    assert main(["summary", "resnet18", *argv]) == 2
    one_error_line(capsys, fragment)


def test_a_huge_thread_count_is_one_line(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("NNSCRATCH_NUM_THREADS", "1200")
    assert main(["train", *TINY, "--out", str(tmp_path / "run")]) == 2
    one_error_line(capsys, "NNSCRATCH_NUM_THREADS=1200 is more than the")


def test_a_checkpoint_config_larger_than_its_weights_is_refused_in_bounded_memory(
    finished_run, tmp_path
):
    """A config claiming width 60 would build a 1-G-parameter net; the file holds 17 k."""
    checkpoint = load_checkpoint(finished_run / "best.npz")
    checkpoint["config"]["width"] = 60.0
    save_checkpoint(tmp_path / "wide.npz", checkpoint)
    result = run_child(["-m", "nnscratch", "evaluate", str(tmp_path / "wide.npz")])
    assert result.returncode == 2, result.stderr
    assert "holds only" in result.stderr and result.stderr.count("\n") == 1
    assert result.peak_mb < 600, result.peak_mb


def test_load_state_dict_checks_every_entry_before_changing_any(finished_run):
    from nnscratch import models

    model = models.create("resnet20", num_classes=10, width=0.25, seed=0)
    before = model.state_dict()
    state = load_checkpoint(finished_run / "best.npz")["model"]
    state["fc.bias"] = np.array(["x"] * 10)  # the right shape, but text
    with pytest.raises(ValueError, match=r"fc\.bias: dtype <U1"):
        model.load_state_dict(state)
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[key], err_msg=key)
    state["fc.bias"] = np.zeros(10, dtype=complex)
    with pytest.raises(ValueError, match=r"fc\.bias: dtype complex128"):
        model.load_state_dict(state)


# --- the file system refuses: these need a file system of our own (root can mount tmpfs) ---


@pytest.fixture
def mounted_tmpfs(tmp_path):
    """Mount a tmpfs at ``tmp_path/mnt`` with the given options; unmounted afterwards."""
    mounts = []

    def mount(options: str) -> Path:
        point = tmp_path / f"mnt{len(mounts)}"
        point.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], capture_output=True
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
        mounts.append(point)
        return point

    yield mount
    for point in mounts:
        subprocess.run(["umount", str(point)], check=False)


def test_a_read_only_file_system_is_one_line_before_any_work(mounted_tmpfs, capsys):
    point = mounted_tmpfs("ro,size=1m")
    assert main(["train", *TINY, "--out", str(point / "run")]) == 2
    one_error_line(capsys, "read-only file system")


def test_a_full_disk_is_one_line_and_leaves_no_partial_file(mounted_tmpfs, capsys):
    """A 64 KiB file system takes config.json and the metrics but not a checkpoint."""
    point = mounted_tmpfs("size=64k")
    assert main(["train", *TINY, "--out", str(point / "run")]) == 2
    one_error_line(capsys, "cannot write", "last.npz", "No space left on device")
    assert not list((point / "run").glob("*.npz")) and not list((point / "run").glob(".*.tmp"))


def test_the_cli_runs_as_a_module_with_one_line_errors():
    """The same through a real process: nothing is swallowed by the in-process tests."""
    done = subprocess.run(
        [sys.executable, "-m", "nnscratch", "train", "--seed", "-1"], capture_output=True, text=True
    )
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "--seed" in done.stderr


@pytest.mark.parametrize("command", [["evaluate"], ["lesion", "--out", "OUT", "--checkpoint"]])
@pytest.mark.parametrize("meta", ["[1, 2]", "[" * 100_000 + "]" * 100_000])
def test_a_checkpoint_with_malformed_metadata_is_one_line(command, meta, tmp_path, capsys):
    """Metadata that is a list (AttributeError before) or nested 100k deep (RecursionError)."""
    from nnscratch import io as nnio

    path = tmp_path / "bad.npz"
    entry = np.frombuffer(meta.encode(), dtype=np.uint8)
    nnio.save({"model/fc.bias": np.zeros(2, np.float32), "checkpoint.json": entry}, path)
    argv = [str(tmp_path / "out") if arg == "OUT" else arg for arg in command]
    assert main([*argv, str(path)]) == 2
    one_error_line(capsys, "bad.npz")


def test_an_offline_download_is_one_line(tmp_path, monkeypatch, capsys):
    """No network: the mirror is a closed port on 127.0.0.1."""
    monkeypatch.setenv("NNSCRATCH_MIRROR", "http://127.0.0.1:9")
    argv = ["train", "--dataset", "cifar10", "--data-dir", str(tmp_path / "empty")]
    assert main([*argv, "--out", str(tmp_path / "run")]) == 2
    one_error_line(capsys, "cifar-10-python.tar.gz", "nothing was written")
    assert not (tmp_path / "run").exists()


def test_an_empty_batch_is_a_clear_error():
    from nnscratch import nn

    with pytest.raises(ValueError, match=r"conv2d: x is an empty batch \(shape \(0, 3, 8, 8\)\)"):
        nn.Conv2d(3, 4, 3, padding=1)(np.zeros((0, 3, 8, 8), np.float32))
