"""The documentation is true: its snippets run, its commands parse, its paths exist, its
import rules hold, and the site builds in strict mode (broken links and references fail).

Every ```python block of a page runs, in order, in one namespace (like a notebook), in a
temporary directory. Every ``nnscratch ...`` line of a ```bash block is parsed by the real
command-line parser (and, for ``train`` and ``bench``, turned into a validated config),
so a renamed option fails here; the commands themselves are not run (they download data
or train for minutes).
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import os
import pkgutil
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = [*sorted(DOCS.rglob("*.md")), ROOT / "README.md"]

FENCE = re.compile(
    r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\n`]*)\n"
    r"(?P<body>.*?)^(?P=indent)(?P=fence)[ \t]*$",
    re.MULTILINE | re.DOTALL,
)
SHELL = {"bash", "sh", "shell", "console"}


def fenced_blocks(path: Path, languages: set[str]) -> list[tuple[int, str]]:
    """(first line number, dedented code) of each fenced block in one of ``languages``."""
    text = path.read_text(encoding="utf-8")
    found = []
    for m in FENCE.finditer(text):
        info = m.group("info").strip().lstrip("{").split()
        language = info[0].lstrip(".").lower() if info else ""
        if language in languages:
            indent = len(m.group("indent"))
            body = "".join(line[indent:] for line in m.group("body").splitlines(keepends=True))
            found.append((text.count("\n", 0, m.start("body")) + 1, body))
    return found


def page_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


PYTHON_PAGES = [p for p in PAGES if fenced_blocks(p, {"python", "py"})]
SHELL_PAGES = [p for p in PAGES if fenced_blocks(p, SHELL)]


# ----------------------------------------------------------------------- python snippets
@pytest.mark.parametrize("path", PYTHON_PAGES, ids=page_id)
def test_python_snippets_run(path: Path, tmp_path, monkeypatch, capsys) -> None:
    """Run the page's Python blocks top to bottom, as a reader pasting them would."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NNSCRATCH_DATA", str(tmp_path / "data"))  # never the user's cache
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace: dict = {"__name__": "__docs__"}
    for line, code in fenced_blocks(path, {"python", "py"}):
        # Padding with newlines makes tracebacks point at the line in the Markdown file.
        compiled = compile("\n" * (line - 1) + code, str(path), "exec")
        try:
            exec(compiled, namespace)
        except Exception as error:
            raise AssertionError(
                f"the snippet at {page_id(path)}:{line} failed: {type(error).__name__}: {error}"
            ) from error
    capsys.readouterr()


# ----------------------------------------------------------------------- shell commands
REDIRECT = re.compile(r"^(?:\d?>>?|<|&>)(?P<target>.*)$")


def shell_commands(code: str) -> list[list[str]]:
    """Each simple command of a shell block as a token list.

    Comments, leading ``VAR=value`` assignments and redirections (``> out.json``) are
    dropped; ``&&``, ``||``, ``;`` and ``|`` separate commands.
    """
    code = re.sub(r"\\\n", " ", code)  # join continued lines
    commands = []
    for line in code.splitlines():
        tokens = iter([*shlex.split(line, comments=True), ";"])
        current: list[str] = []
        for token in tokens:
            redirect = REDIRECT.match(token)
            if redirect and token != "2>&1":
                if not redirect.group("target"):
                    next(tokens, None)  # the file name is the next token
                continue
            if token == "2>&1":
                continue
            if token in {"&&", "||", ";", "|"}:
                while current and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", current[0]):
                    current.pop(0)  # NNSCRATCH_DATA=... nnscratch train
                if current:
                    commands.append(current)
                current = []
            else:
                current.append(token)
    return commands


def nnscratch_arguments(command: list[str]) -> list[str] | None:
    """The arguments after ``nnscratch`` (or ``python -m nnscratch``), or None."""
    if Path(command[0]).name == "nnscratch":
        return command[1:]
    if Path(command[0]).name.startswith("python") and command[1:3] == ["-m", "nnscratch"]:
        return command[3:]
    return None


def check_command(arguments: list[str]) -> None:
    """Parse like the real CLI and build the validated config, without running anything."""
    from nnscratch.cli import build_parser

    try:
        args = build_parser().parse_args(arguments)
    except SystemExit as exit_:
        if exit_.code:  # --help exits with 0
            message = f"nnscratch {shlex.join(arguments)}: rejected by the parser"
            raise AssertionError(message) from None
        return
    if args.command == "train":
        from nnscratch.cli.train import config_from_args

        config_from_args(args)
    elif args.command == "bench":
        from nnscratch import bench

        bench.config_from_args(args).validate()


@pytest.mark.parametrize("path", SHELL_PAGES, ids=page_id)
def test_shell_commands_parse(path: Path, capsys) -> None:
    for line, code in fenced_blocks(path, SHELL):
        for command in shell_commands(code):
            arguments = nnscratch_arguments(command)
            if arguments is None:
                continue
            try:
                check_command(arguments)
            except (AssertionError, ValueError, TypeError) as error:
                raise AssertionError(f"{page_id(path)}:{line}: {error}") from error
    capsys.readouterr()


def test_shell_command_splitting() -> None:
    code = (
        "# a comment\nNNSCRATCH_DATA=/d nnscratch train \\\n  --epochs 2 && ls runs  # done\n"
        "nnscratch bench --json > out.json 2>&1\nnnscratch summary resnet18 >s.txt\n"
    )
    assert shell_commands(code) == [
        ["nnscratch", "train", "--epochs", "2"],
        ["ls", "runs"],
        ["nnscratch", "bench", "--json"],
        ["nnscratch", "summary", "resnet18"],
    ]


# ----------------------------------------------------------------------- paths in the text
# Files that a worked example tells the reader to create: they do not exist in the repo.
EXAMPLE_FILES = {
    "nnscratch/functional/prelu.py",
    "nnscratch/functional/fast/prelu.py",
    "nnscratch/nn/prelu.py",
    "tests/test_prelu.py",
    "docs/concepts/prelu.md",
}
PATH_IN_CODE = re.compile(r"`((?:nnscratch|tests|docs|notebooks|\.ci)/[\w./-]*)`")


@pytest.mark.parametrize("path", PAGES, ids=page_id)
def test_source_paths_exist(path: Path) -> None:
    """A backticked repository path (`nnscratch/functional/conv.py`) names a real file."""
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    missing = [
        p
        for p in PATH_IN_CODE.findall(text)
        if p not in EXAMPLE_FILES and not any(ch in p for ch in "*<>") and not (ROOT / p).exists()
    ]
    assert not missing, f"{page_id(path)} names paths that do not exist: {missing}"


# The dev extra installs its tools into the virtual environment, not onto PATH: a command a
# page tells the reader to run names them as `.venv/bin/mkdocs` (a fresh clone has no other).
DEV_TOOL_COMMAND = re.compile(r"`((?:\S*/)?mkdocs serve[^`]*)`")


@pytest.mark.parametrize("path", PAGES, ids=page_id)
def test_dev_tool_commands_name_the_venv(path: Path) -> None:
    text = FENCE.sub("", path.read_text(encoding="utf-8"))
    bare = [c for c in DEV_TOOL_COMMAND.findall(text) if not c.startswith(".venv/bin/")]
    assert not bare, f"{page_id(path)}: write .venv/bin/ before {bare} (installed by '.[dev]')"


# ----------------------------------------------------------------------- architecture
def _import_table() -> dict[str, set[str]]:
    """The table under '## What may import what' in docs/architecture.md."""
    text = (DOCS / "architecture.md").read_text(encoding="utf-8")
    section = text.split("## What may import what", 1)[1].split("\n## ", 1)[0]
    table = {}
    for row in re.findall(r"^\|\s*`(?:nnscratch\.)?(\w+)`\s*\|(.*?)\|", section, re.MULTILINE):
        allowed = row[1].split("(")[0]  # a note in parentheses names what is *not* allowed
        table[row[0]] = set(re.findall(r"`(?:nnscratch\.)?(\w+)`", allowed))
    return table


def _actual_imports() -> dict[str, set[str]]:
    """For each top-level part of the package, the other parts its source imports."""
    edges: dict[str, set[str]] = {}
    for file in (ROOT / "nnscratch").rglob("*.py"):
        parts = file.relative_to(ROOT / "nnscratch").with_suffix("").parts
        unit = parts[0] if parts[0] != "__init__" else "__init__"
        edges.setdefault(unit, set())
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and not node.level and node.module:
                if node.module == "nnscratch":
                    names = [f"nnscratch.{a.name}" for a in node.names]
                else:
                    names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                bits = name.split(".")
                if bits[0] == "nnscratch" and len(bits) > 1 and bits[1] != unit:
                    edges[unit].add(bits[1])
    return edges


def test_architecture_import_rules_hold() -> None:
    """Every import between parts of the package is one the architecture page allows."""
    allowed = _import_table()
    assert {"functional", "nn", "models", "cli"} <= set(allowed), "import table not found"
    actual = _actual_imports()
    assert "functional" in actual["nn"], "the import scanner found nothing"
    problems = []
    for unit, imported in sorted(actual.items()):
        if unit in ("__init__", "__main__"):
            continue
        if unit not in allowed:
            problems.append(f"nnscratch.{unit} is missing from the table in docs/architecture.md")
            continue
        for target in sorted(imported - allowed[unit]):
            problems.append(f"nnscratch.{unit} imports nnscratch.{target}, which the table forbids")
    assert not problems, "\n".join(problems)


# ----------------------------------------------------------------------- docstrings
def _docs_hook():
    path = ROOT / "docs" / "hooks" / "nnscratch_docs.py"
    spec = importlib.util.spec_from_file_location("nnscratch_docs", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The packages that have API reference pages: the site's own list.
API_PACKAGES = _docs_hook().API_MODULES
# Public functions that had no docstring when this test was written; new ones fail.
KNOWN_UNDOCUMENTED: set[str] = set()


def _public_modules() -> list[str]:
    names = []
    for package in API_PACKAGES:
        spec = importlib.util.find_spec(f"nnscratch.{package}")
        if spec is None or spec.origin is None:
            continue
        names.append(f"nnscratch.{package}")
        if spec.submodule_search_locations:
            for info in pkgutil.walk_packages(
                spec.submodule_search_locations, f"nnscratch.{package}."
            ):
                if not any(p.startswith("_") for p in info.name.split(".")):
                    names.append(info.name)
    return names


def test_public_functions_and_classes_have_docstrings() -> None:
    missing = []
    for name in _public_modules():
        module = importlib.import_module(name)
        if not inspect.getdoc(module):
            missing.append(name)
        for attr, obj in vars(module).items():
            if attr.startswith("_") or getattr(obj, "__module__", None) != name:
                continue
            if (inspect.isfunction(obj) or inspect.isclass(obj)) and not obj.__doc__:
                missing.append(f"{name}.{attr}")
    new = sorted(set(missing) - KNOWN_UNDOCUMENTED)
    assert not new, "add a docstring (what it computes, the shapes) to: " + ", ".join(new)


# ----------------------------------------------------------------------- the site
def test_site_builds_in_strict_mode(tmp_path) -> None:
    for module in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python"):
        pytest.importorskip(module)
    site = tmp_path / "site"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--config-file",
            str(ROOT / "mkdocs.yml"),
            "--site-dir",
            str(site),
        ],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stderr[-6000:]}"
    cli = (site / "reference" / "cli" / "index.html").read_text(encoding="utf-8")
    assert "nnscratch train" in cli and "--epochs" in cli and "nnscratch:cli" not in cli
    for package in API_PACKAGES:
        spec = importlib.util.find_spec(f"nnscratch.{package}")
        if spec is not None and spec.origin is not None:
            page = site / "reference" / "api" / package / "index.html"
            assert page.is_file(), f"no API page for nnscratch.{package}"
    # The math is typeset at build time (MathML): no formula left as TeX, no script from the web.
    pages = {p: p.read_text(encoding="utf-8") for p in site.rglob("*.html")}
    assert "<math" in pages[site / "concepts" / "batch-norm" / "index.html"]
    for page, text in pages.items():
        assert 'class="arithmatex"' not in text, f"{page}: a formula left as TeX"
        assert not re.search(r'<script[^>]+src="(https?:)?//', text), (
            f"{page}: a script from the web"
        )
