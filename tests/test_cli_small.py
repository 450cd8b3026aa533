"""Small behaviours of the extract, evaluate and summary commands, through the real CLI."""

import json

import pytest
from conftest import TINY_FLAGS

from nnscratch.cli import main
from nnscratch.training import load_checkpoint


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A finished one-epoch tiny run."""
    out = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", *TINY_FLAGS, "--epochs", "1", "--out", str(out)]) == 0
    return out


def refused_one_line(capsys, path) -> None:
    """Exactly one line on stderr, naming ``path`` and the refusal, and no traceback."""
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert f"{path} exists" in err and "does not overwrite files" in err, err


@pytest.mark.parametrize(
    "argv, option",
    [
        (["extract", "--split", "val"], "--out"),
        (["evaluate"], "--confusion"),
    ],
)
def test_an_existing_output_file_is_refused_and_left_as_it_was(
    run_dir, tmp_path, capsys, argv, option
):
    existing = tmp_path / "taken"
    existing.write_bytes(b"someone else's file")
    capsys.readouterr()
    assert main([argv[0], str(run_dir), *argv[1:], option, str(existing)]) == 2
    refused_one_line(capsys, existing)
    assert existing.read_bytes() == b"someone else's file"


def test_evaluate_says_where_it_wrote_the_confusion_matrix(run_dir, tmp_path, capsys):
    png = tmp_path / "c.png"
    capsys.readouterr()
    assert main(["evaluate", str(run_dir), "--confusion", str(png)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == f"confusion matrix written to {png}"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_json_keeps_stdout_json_and_names_the_figure_on_stderr(run_dir, tmp_path, capsys):
    png = tmp_path / "c.png"
    capsys.readouterr()
    assert main(["evaluate", str(run_dir), "--json", "--confusion", str(png)]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["split"] == "test"
    assert captured.err == f"confusion matrix written to {png}\n"


def test_summary_of_a_run_directory_is_the_table_of_its_model(run_dir, capsys):
    checkpoint = load_checkpoint(run_dir / "best.npz")
    channels, size, _ = checkpoint["image_shape"]
    capsys.readouterr()
    assert main(["summary", str(run_dir)]) == 0
    of_run = capsys.readouterr().out
    flags = ["--width", "0.25", "--num-classes", str(len(checkpoint["classes"]))]
    flags += ["--in-channels", str(channels), "--image-size", str(size)]
    assert main(["summary", "resnet20", *flags]) == 0
    assert of_run == capsys.readouterr().out
    assert "unknown model" not in of_run and "Conv2d" in of_run


def test_summary_of_a_directory_without_a_run_is_one_line(tmp_path, capsys):
    assert main(["summary", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds no best.npz" in err, err
