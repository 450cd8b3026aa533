"""MkDocs hooks: the pages that are generated from the code at build time, so they cannot drift.

- ``reference/cli.md``: the marker ``<!-- nnscratch:cli -->`` becomes the ``--help`` text
  of ``nnscratch`` and of each sub-command, rendered from ``nnscratch.cli.build_parser()``.
- ``reference/api/<name>.md``: one page per entry of ``API_MODULES`` that exists in the
  package (a subpackage lists its docstring, then every public submodule through
  mkdocstrings), added to the nav under Reference > API.
- ``<!-- nnscratch:notebook WORD ... -->`` on a page becomes the notebooks in
  ``notebooks/`` whose file name contains one of the words.

The site is configured in ``mkdocs.yml``; ``tests/test_docs.py`` builds it in strict mode.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import pkgutil
import re
from collections.abc import Iterator
from pathlib import Path

from mkdocs.structure.files import File, Files

# The API reference, in this order; a name that is not (yet) in the package is skipped.
API_MODULES = (
    "functional",
    "nn",
    "models",
    "optim",
    "data",
    "training",
    "io",
    "gradcheck",
    "plot",
    "experiments",
    "exercises",
)
# Submodules listed first on their package's page (the rest follow alphabetically).
FIRST = {"nn": ("module", "parameter")}
API_DIR = "reference/api"
CLI_MARKER = "<!-- nnscratch:cli -->"
NOTEBOOK_MARKER = re.compile(r"<!-- nnscratch:notebook ([\w\s-]+?) -->")
HELP_WIDTH = "88"


# ----------------------------------------------------------------------- API pages
def _exists(name: str) -> bool:
    """True if ``nnscratch.<name>`` is a module or a package with an ``__init__.py``."""
    spec = importlib.util.find_spec(f"nnscratch.{name}")
    return spec is not None and spec.origin is not None and Path(spec.origin).is_file()


def _api_modules() -> list[str]:
    return [n for n in API_MODULES if _exists(n)]


def _public_submodules(name: str) -> list[str]:
    """Public submodules of ``nnscratch.<name>`` (none for a plain module)."""
    spec = importlib.util.find_spec(f"nnscratch.{name}")
    if spec is None or not spec.submodule_search_locations:
        return []
    found = sorted(
        info.name
        for info in pkgutil.iter_modules(spec.submodule_search_locations)
        if not info.name.startswith("_")
    )
    first = [s for s in FIRST.get(name, ()) if s in found]
    return first + [s for s in found if s not in first]


def api_page(name: str) -> str:
    """The Markdown of the API page of ``nnscratch.<name>``."""
    full = f"nnscratch.{name}"
    submodules = _public_submodules(name)
    if not submodules:
        return f"# `{full}`\n\n::: {full}\n    options:\n      show_root_heading: false\n"
    lines = [
        f"# `{full}`",
        "",
        f"::: {full}",
        "    options:",
        "      show_root_heading: false",
        "      members: false",
        "",
        "Submodules: " + ", ".join(f"[`{s}`][{full}.{s}]" for s in submodules),
        "",
    ]
    for sub in submodules:
        lines += [f"::: {full}.{sub}", ""]
    return "\n".join(lines)


def on_config(config):
    """Add one nav entry per API page under Reference > API."""
    entries = [{f"nnscratch.{n}": f"{API_DIR}/{n}.md"} for n in _api_modules()]
    for item in config["nav"] or []:
        if isinstance(item, dict) and "Reference" in item:
            item["Reference"].append({"API": entries})
            break
    else:
        raise ValueError("mkdocs.yml: the nav needs a 'Reference' section for the API pages")
    return config


def on_files(files: Files, config) -> Files:
    """Generate the API pages (they exist only in the build, never in docs/)."""
    for name in _api_modules():
        files.append(File.generated(config, f"{API_DIR}/{name}.md", content=api_page(name)))
    return files


# ----------------------------------------------------------------------- CLI reference
@contextlib.contextmanager
def _help_environment() -> Iterator[None]:
    """A fixed help width and no colour, whatever terminal the build runs in."""
    saved = {k: os.environ.get(k) for k in ("COLUMNS", "NO_COLOR")}
    os.environ.update(COLUMNS=HELP_WIDTH, NO_COLOR="1")
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    """(name, one-line help, parser) of each sub-command, in registration order."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            return [(name, helps.get(name, ""), sub) for name, sub in action.choices.items()]
    return []


def _plain_help(parser: argparse.ArgumentParser) -> str:
    if hasattr(parser, "color"):  # Python 3.14 colours help on a terminal
        parser.color = False
    return parser.format_help().rstrip()


def cli_reference() -> str:
    """The Markdown of every command's ``--help``, generated from the real parser."""
    from nnscratch.cli import build_parser

    with _help_environment():
        parser = build_parser()
        commands = _subcommands(parser)
        out = ["| command | what it does |", "|---|---|"]
        out += [f"| [`nnscratch {n}`](#nnscratch-{n}) | {h} |" for n, h, _ in commands]
        out += ["", "## `nnscratch`", "", "```text", _plain_help(parser), "```", ""]
        for name, _, sub in commands:
            out += [f"## `nnscratch {name}`", "", "```text", _plain_help(sub), "```", ""]
    return "\n".join(out)


# ----------------------------------------------------------------------- notebooks
def notebooks_for(root: Path, words: list[str]) -> list[str]:
    """Paths (relative to the repository) of the notebooks whose name contains a word."""
    folder = root / "notebooks"
    if not folder.is_dir():
        return []
    return [
        f"notebooks/{p.name}"
        for p in sorted(folder.glob("*.ipynb"))
        if any(w.lower() in p.name.lower() for w in words)
    ]


def _notebook_line(root: Path, words: list[str]) -> str:
    found = notebooks_for(root, words)
    if not found:
        return "**Notebook:** the notebook for this topic is not in `notebooks/` yet."
    label = "Notebook" if len(found) == 1 else "Notebooks"
    return f"**{label}:** " + ", ".join(f"`{p}`" for p in found) + " (open it next to this page)."


def on_page_markdown(markdown: str, page, config, files) -> str:
    if CLI_MARKER in markdown:
        markdown = markdown.replace(CLI_MARKER, cli_reference())
    root = Path(config.config_file_path).parent
    return NOTEBOOK_MARKER.sub(lambda m: _notebook_line(root, m.group(1).split()), markdown)
