"""Build the teaching notebooks from their sources and execute them.

Each notebook ``notebooks/NN_name.ipynb`` is generated from ``notebooks/src/NN_name.py``,
a plain Python file in the "percent" format: ``# %%`` starts a code cell and
``# %% [markdown]`` a markdown cell (its lines start with ``# ``). Edit the source, then

    python notebooks/run_notebooks.py            # fast mode: execute into a temporary directory
    python notebooks/run_notebooks.py --full     # full mode: rewrite the committed notebooks
    python notebooks/run_notebooks.py 03 05      # only the notebooks whose names contain 03 or 05
    python notebooks/run_notebooks.py --prose    # copy edited markdown in, keep the outputs
    python notebooks/run_notebooks.py --solutions   # fast mode, with the exercises solved

An exercise is a code cell whose first line is ``# exercise: NAME``: a stub that raises
``NotImplementedError``, followed by a cell that runs ``exercises.check("NAME", ...)``. The
lesson runs as committed with the stubs left alone (each check says "not implemented
yet" and the lesson goes on with the library's version). ``notebooks/solutions/NN_name.py``
holds one cell ``# %% exercise: NAME`` per exercise; with ``--solutions`` each stub is
replaced by its solution, and every check must then pass (``tests/test_notebooks.py``).

Fast mode sets ``NNSCRATCH_FAST=1`` in the kernel's environment, and each notebook picks
small sizes from it, so that all of them run in CI in a few minutes. Full mode is what the
committed notebooks show: it re-executes every selected notebook and writes it, with its
outputs, over ``notebooks/NN_name.ipynb``. A notebook that raises stops the run with the
cell and the error.

The kernel is ``python3`` from this interpreter's environment (its kernel spec is
installed into ``sys.prefix`` if it is missing), so the notebooks import the nnscratch
installed there.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
SOURCES = HERE / "src"
SOLUTIONS = HERE / "solutions"
EXERCISE_MARK = "# exercise: "
KERNEL = "python3"
FAST_FLAG = "NNSCRATCH_FAST"


# ----------------------------------------------------------------------- sources -> notebooks
def notebook_names() -> list[str]:
    """``["01_layers_and_backprop", ...]``: one per source file, in order."""
    return sorted(p.stem for p in SOURCES.glob("[0-9][0-9]_*.py"))


def read_cells(source: Path) -> list[tuple[str, str]]:
    """``(cell_type, text)`` for each cell of a percent-format source file."""
    return read_cells_text(source.read_text(encoding="utf-8"))


def read_cells_text(text: str) -> list[tuple[str, str]]:
    """``(cell_type, text)`` for each cell of percent-format text.

    Lines before the first ``# %%`` marker (a header comment) are not part of the
    notebook. Markdown lines lose their leading ``# `` (or a lone ``#``).
    """
    cells: list[tuple[str, list[str]]] = []
    for line in text.splitlines():
        if line.startswith("# %%"):
            cells.append(("markdown" if "[markdown]" in line else "code", []))
        elif cells:
            cells[-1][1].append(line)
    out = []
    for kind, lines in cells:
        if kind == "markdown":
            lines = [ln[2:] if ln.startswith("# ") else ln.lstrip("#") for ln in lines]
        text = "\n".join(lines).strip("\n")
        if text:
            out.append((kind, text))
    return out


def exercise_name(text: str) -> str | None:
    """``NAME`` if a code cell's text starts with ``# exercise: NAME`` (a stub or a solution)."""
    first = text.split("\n", 1)[0]
    return first[len(EXERCISE_MARK) :].split()[0] if first.startswith(EXERCISE_MARK) else None


def solutions(name: str) -> dict[str, str]:
    """The solution cells of ``notebooks/solutions/<name>.py``, by exercise name."""
    path = SOLUTIONS / f"{name}.py"
    if not path.exists():
        return {}
    text = path.read_text(encoding="utf-8").replace("# %% exercise: ", "# %%\n" + EXERCISE_MARK)
    found = {}
    for kind, cell in read_cells_text(text):
        if kind == "code" and exercise_name(cell):
            found[exercise_name(cell)] = cell
    return found


def build(name: str, *, solved: bool = False) -> nbformat.NotebookNode:
    """The unexecuted notebook for ``name``, with stable cell ids; ``solved``: each
    exercise stub replaced by its solution."""
    answers = solutions(name) if solved else {}
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": KERNEL, "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for index, (kind, text) in enumerate(read_cells(SOURCES / f"{name}.py")):
        if kind == "code" and solved and exercise_name(text):
            text = answers[exercise_name(text)]  # a KeyError names an unsolved exercise
        make = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
        cell = make(text)
        cell["id"] = f"{name[:2]}-{index:02d}"
        nb.cells.append(cell)
    return nb


def cells_of(nb: nbformat.NotebookNode) -> list[tuple[str, str]]:
    """``(cell_type, source)`` of every cell: what must match between source and notebook."""
    return [(cell.cell_type, cell.source) for cell in nb.cells]


def refresh_prose(name: str) -> nbformat.NotebookNode:
    """The committed notebook with its markdown cells rebuilt from the source, outputs kept.

    Only for edits of the prose: if any code cell (or the cell order) differs from the
    source, the outputs would no longer belong to the code, and this raises instead.
    """
    committed = nbformat.read(HERE / f"{name}.ipynb", as_version=4)
    built = build(name)

    def code_layout(nb: nbformat.NotebookNode) -> list[tuple[str, str]]:  # markdown text left out
        return [(kind, text if kind == "code" else "") for kind, text in cells_of(nb)]

    if code_layout(built) != code_layout(committed):
        raise SystemExit(f"{name}: code cells changed since the last run; rerun it with --full")
    for old, new in zip(committed.cells, built.cells):
        if old.cell_type == "markdown":
            old.source = new.source
    return committed


# ----------------------------------------------------------------------- execution
def ensure_kernel() -> None:
    """Make ``python3`` resolve to this interpreter's environment."""
    os.environ.setdefault("JUPYTER_PREFER_ENV_PATH", "1")  # sys.prefix's kernels come first
    spec = Path(sys.prefix) / "share" / "jupyter" / "kernels" / KERNEL / "kernel.json"
    if not spec.exists():
        from ipykernel.kernelspec import install

        install(prefix=sys.prefix)


def execute(nb: nbformat.NotebookNode, *, fast: bool, timeout: int = 1800) -> nbformat.NotebookNode:
    """Run every cell of ``nb`` in a fresh kernel, in ``notebooks/``; raise on the first error."""
    ensure_kernel()
    env = dict(os.environ)
    if fast:
        env[FAST_FLAG] = "1"
    else:
        env.pop(FAST_FLAG, None)
    client = NotebookClient(
        nb,
        kernel_name=KERNEL,
        timeout=timeout,
        record_timing=False,
        resources={"metadata": {"path": str(HERE)}},
    )
    client.execute(env=env)
    return nb


def write_atomic(nb: nbformat.NotebookNode, target: Path) -> None:
    """Write ``nb`` to ``target`` so that an interrupted run never leaves half a notebook."""
    tmp = target.with_suffix(".ipynb.tmp")
    nbformat.write(nb, tmp)
    tmp.replace(target)


def run(
    names: list[str], *, fast: bool, out_dir: Path, solved: bool = False, log=print
) -> dict[str, float]:
    """Build and execute ``names``, writing each to ``out_dir``; returns seconds per notebook."""
    out_dir.mkdir(parents=True, exist_ok=True)
    seconds = {}
    for name in names:
        start = time.perf_counter()
        nb = execute(build(name, solved=solved), fast=fast)
        seconds[name] = time.perf_counter() - start
        target = out_dir / f"{name}.ipynb"
        write_atomic(nb, target)
        log(f"{name}: {seconds[name]:.0f} s -> {target}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--fast", action="store_true", help="small sizes, into a temporary directory (default)"
    )
    mode.add_argument(
        "--full", action="store_true", help="full sizes, rewriting the committed notebooks"
    )
    mode.add_argument(
        "--prose",
        action="store_true",
        help="only copy edited markdown into the committed notebooks (no execution)",
    )
    parser.add_argument(
        "--solutions",
        action="store_true",
        help="replace every exercise stub by its solution (fast mode, temporary directory)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="write the executed notebooks here instead (fast mode default: a new "
        "temporary directory; full mode default: notebooks/ itself)",
    )
    parser.add_argument(
        "only", nargs="*", help="run only the notebooks whose names contain one of these"
    )
    args = parser.parse_args(argv)
    names = [n for n in notebook_names() if not args.only or any(w in n for w in args.only)]
    if not names:
        parser.error(f"no notebook matches {args.only}")
    if args.prose:
        for name in names:
            write_atomic(refresh_prose(name), HERE / f"{name}.ipynb")
            print(f"{name}: markdown refreshed")
        return 0
    if args.solutions and args.full:
        parser.error("--solutions runs in fast mode only: the committed notebooks keep the stubs")
    if args.out:
        out_dir = args.out
    elif args.full:
        out_dir = HERE
    else:
        out_dir = Path(tempfile.mkdtemp(prefix="nnscratch-notebooks-"))
    mode_name = "full" if args.full else "fast"
    print(f"{mode_name} mode: {len(names)} notebook(s)")
    seconds = run(names, fast=not args.full, out_dir=out_dir, solved=args.solutions)
    print(f"total {sum(seconds.values()):.0f} s ({mode_name} mode)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
