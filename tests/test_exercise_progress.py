"""The learner's progress: every check is kept, `nnscratch exercises` lists it by lesson,
and a corrupt, foreign, oversized or unwritable progress file never breaks a check."""

import json
import re
from pathlib import Path

import pytest

from nnscratch import cli, exercises
from nnscratch.exercises import progress

NOTEBOOK_SOURCES = Path(__file__).parents[1] / "notebooks" / "src"


@pytest.fixture
def progress_path(tmp_path, monkeypatch):
    path = tmp_path / "state" / "exercises.json"
    monkeypatch.setenv("NNSCRATCH_PROGRESS", str(path))
    return path


def wrong_relu_backward(dy, x):
    return dy


def test_checks_are_kept_and_listed_by_lesson(progress_path, capsys):
    assert exercises.check("linear", exercises.reference("linear")).passed
    assert not exercises.check("relu_backward", wrong_relu_backward).passed
    record = json.loads(progress_path.read_text())
    assert {name: entry["passed"] for name, entry in record.items()} == {
        "linear": True,
        "relu_backward": False,
    }
    assert cli.main(["exercises"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("01_layers_and_backprop\n")
    assert re.search(r"^  passed \d{4}-\d\d-\d\d \d\d:\d\d +linear$", out, re.M)
    assert re.search(r"^  failed \d{4}-\d\d-\d\d \d\d:\d\d +relu_backward$", out, re.M)
    assert re.search(r"^  not checked yet +im2col$", out, re.M)
    assert f"1 of 22 passed at their last check (kept in {progress_path})" in out
    assert exercises.check("relu_backward", exercises.reference("relu_backward")).passed
    assert json.loads(progress_path.read_text())["relu_backward"]["passed"] is True


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b'{"linear": {"passed": tr',
        b'["a", "list"]',
        b'{"linear": {"passed": 1}}',
        b"\xff\xfe",
        b'{"linear": {"passed": true, "when": "yesterday"}}',
    ],
    ids=["corrupt", "truncated", "foreign", "wrong types", "not text", "no time"],
)
def test_a_bad_progress_file_is_ignored_with_one_warning(progress_path, content):
    progress_path.parent.mkdir(parents=True)
    progress_path.write_bytes(content)
    with pytest.warns(
        UserWarning, match=f"ignoring the progress file {re.escape(str(progress_path))}"
    ):
        assert progress.load() == {}
    with pytest.warns(UserWarning):
        assert exercises.check("linear", exercises.reference("linear")).passed
    assert set(json.loads(progress_path.read_text())) == {"linear"}  # rewritten whole


def test_an_oversized_progress_file_is_not_read(progress_path):
    progress_path.parent.mkdir(parents=True)
    progress_path.write_bytes(b" " * (progress.MAX_BYTES + 1))
    with pytest.warns(UserWarning, match="larger than"):
        assert progress.load() == {}


def test_an_unwritable_progress_file_never_stops_a_check(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("NNSCRATCH_PROGRESS", str(blocker / "exercises.json"))  # under a file
    with pytest.warns(UserWarning, match="could not keep your progress"):
        result = exercises.check("relu_backward", exercises.reference("relu_backward"))
    assert result.passed


def test_the_default_place_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv("NNSCRATCH_PROGRESS")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    assert progress.progress_file() == tmp_path / "nnscratch" / "exercises.json"


def test_lessons_name_every_exercise_once_as_the_notebooks_ask_for_them():
    listed = [name for names in exercises.LESSONS.values() for name in names]
    assert sorted(listed) == sorted(exercises.names())
    for lesson, names in exercises.LESSONS.items():
        source = (NOTEBOOK_SOURCES / f"{lesson}.py").read_text()
        assert tuple(re.findall(r"^# exercise: (\w+)$", source, re.M)) == names, lesson


def test_describe_from_the_command_line(capsys):
    assert cli.main(["exercises", "describe", "relu_backward"]) == 0
    assert capsys.readouterr().out.strip() == exercises.describe("relu_backward")
    assert cli.main(["exercises", "describe", "relu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no exercise named 'relu'" in err
