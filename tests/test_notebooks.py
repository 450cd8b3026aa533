"""The teaching notebooks: in step with their sources, well formed, and clean in fast mode.

Each notebook is executed top to bottom in a fresh kernel with ``NNSCRATCH_FAST=1`` (small
sizes) into a temporary directory; the committed files are never modified. Refreshing the
committed outputs is ``python notebooks/run_notebooks.py --full``.
"""

from __future__ import annotations

import base64
import importlib.util
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def _load_runner():
    spec = importlib.util.spec_from_file_location("run_notebooks", NOTEBOOKS / "run_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


runner = _load_runner()
NAMES = runner.notebook_names()


def _read(name: str) -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)


def test_numbered_notebooks_each_with_its_source():
    assert len(NAMES) >= 9
    assert [n[:2] for n in NAMES] == [f"{k:02d}" for k in range(1, len(NAMES) + 1)], "01, 02, ..."
    committed = sorted(p.stem for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    assert committed == NAMES, "every notebooks/src/NN_*.py has its notebooks/NN_*.ipynb and back"


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_matches_its_source(name):
    """The committed cells are exactly those built from notebooks/src (rerun --full after edits)."""
    assert runner.cells_of(_read(name)) == runner.cells_of(runner.build(name))


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_is_a_lesson_with_outputs(name):
    nb = _read(name)
    nbformat.validate(nb)
    first, last = nb.cells[0], nb.cells[-1]
    assert first.cell_type == "markdown" and "What you will learn" in first.source
    assert last.cell_type == "markdown" and "Exercises" in last.source
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert 'os.environ.get("NNSCRATCH_FAST") == "1"' in code[0].source  # the fast-mode switch
    assert all("sys.path" not in c.source for c in code)  # the installed package, no path hacks
    assert any("import" in c.source and "nnscratch" in c.source for c in code)
    outputs = [o for c in code for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"], "committed with an error"
    assert not [o for o in outputs if o.get("name") == "stderr"], (
        "warnings in the committed outputs"
    )
    assert all(c.execution_count for c in code), "every code cell was executed (run --full)"
    assert "full mode" in "".join(o.get("text", "") for o in code[0].outputs), (
        "outputs of a full run"
    )
    images = [
        base64.b64decode(o.data["image/png"]) for o in outputs if "image/png" in o.get("data", {})
    ]
    assert images, "every lesson ends its beats with a picture"
    assert (NOTEBOOKS / f"{name}.ipynb").stat().st_size < 1_500_000


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_clean_in_fast_mode(name, tmp_path):
    """Executes the committed notebook (fast mode) in a temporary directory; any error fails."""
    nb = _read(name)
    runner.execute(nb, fast=True, timeout=600)
    nbformat.write(nb, tmp_path / f"{name}.ipynb")
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    first_code = next(c for c in nb.cells if c.cell_type == "code")
    assert "fast mode" in "".join(o.get("text", "") for o in first_code.outputs)
    assert not [o for o in outputs if o.output_type == "error"]


def _checks(nb: nbformat.NotebookNode) -> list[str]:
    """The text of every ``exercises.check`` result a notebook printed, in order."""
    return [
        o.get("data", {}).get("text/plain", "")
        for c in nb.cells
        if c.cell_type == "code" and "exercises.check(" in c.source
        for o in c.outputs
    ]


def _stubs(nb: nbformat.NotebookNode) -> list[str]:
    return [runner.exercise_name(c.source) for c in nb.cells if runner.exercise_name(c.source)]


@pytest.mark.parametrize("name", NAMES)
def test_every_exercise_stub_has_its_check_and_its_solution(name):
    nb = runner.build(name)
    stubs = _stubs(nb)
    assert sorted(stubs) == sorted(runner.solutions(name)), "a stub without a solution or back"
    for index, cell in enumerate(nb.cells):
        if runner.exercise_name(cell.source):
            assert "NotImplemented" in cell.source, "a stub, not an answer"
            following = next(c for c in nb.cells[index + 1 :] if c.cell_type == "code")
            assert f'exercises.check("{runner.exercise_name(cell.source)}"' in following.source


def test_every_exercise_is_done_in_the_notebook_that_teaches_it():
    from nnscratch import exercises

    used = [stub for name in NAMES for stub in _stubs(runner.build(name))]
    assert sorted(used) == sorted(exercises.names()), "each exercise in exactly one lesson"


@pytest.mark.parametrize("name", NAMES)
def test_committed_checks_say_not_implemented_yet(name):
    """As committed, the stubs are left alone and the lesson goes on past each check."""
    assert all("not implemented yet" in text for text in _checks(_read(name)))
    assert len(_checks(_read(name))) == len(_stubs(_read(name)))


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in NAMES if runner.solutions(n)])
def test_notebook_runs_with_the_solutions_and_every_check_passes(name, tmp_path):
    nb = runner.execute(runner.build(name, solved=True), fast=True, timeout=600)
    nbformat.write(nb, tmp_path / f"{name}.ipynb")
    results = _checks(nb)
    assert len(results) == len(_stubs(runner.build(name))) > 0
    failed = [text for text in results if "passed=True" not in text]
    assert not failed, failed


def test_prose_refresh_keeps_outputs_and_refuses_changed_code(monkeypatch):
    """--prose copies edited markdown in and keeps the outputs; a changed code cell is refused."""
    name = NAMES[0]
    built = runner.build(name)
    markdown = next(c for c in built.cells if c.cell_type == "markdown")
    markdown.source += "\n\nAn added sentence."
    monkeypatch.setattr(runner, "build", lambda _: built)
    refreshed = runner.refresh_prose(name)
    assert runner.cells_of(refreshed) == runner.cells_of(built)
    committed = _read(name)
    assert [c.get("outputs") for c in refreshed.cells] == [
        c.get("outputs") for c in committed.cells
    ]

    next(c for c in built.cells if c.cell_type == "code").source += "\nx = 1"
    with pytest.raises(SystemExit, match="code cells changed"):
        runner.refresh_prose(name)
