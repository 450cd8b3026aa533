"""A griffe extension: the reStructuredText habits of the docstrings, shown as Markdown.

- Sphinx roles (``:func:`conv2d_backward```, ``:class:`Parameter```) become links. Each
  is resolved in the scope of the object whose docstring holds it (then from the package
  root for dotted names) and rewritten as an *optional* autorefs link: a link where the
  target is documented, plain code where it is not (a private helper), never a warning.
- A simple table (rows between ``=====  =====`` rules) becomes a preformatted block.
- A literal-block marker (a line ending in ``::``) ends in a single colon; the indented
  block after it is already code in Markdown.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:func|class|meth|attr|mod|data|exc|obj):`~?\.?([\w.]+)(?:\(\))?`")
TABLE_RULE = re.compile(r"^\s*=+(?:\s+=+)+\s*$")


def rest_to_markdown(text: str) -> str:
    """Simple tables as preformatted blocks, ``::`` markers as ``:``."""
    lines, out, table = text.split("\n"), [], []
    for line in lines:
        if table:
            table.append(line)
            if TABLE_RULE.match(line) and len([t for t in table if TABLE_RULE.match(t)]) == 3:
                out += ["```text", *table, "```"]
                table = []
        elif TABLE_RULE.match(line):
            table = [line]
        else:
            out.append(line[:-1] if line.endswith("::") and not line.endswith(":::") else line)
    return "\n".join(out + table)


def _target(obj: griffe.Object, root: griffe.Module, name: str) -> str | None:
    """The full path of the object that ``name`` names from ``obj``'s scope, if any."""
    head, _, rest = name.partition(".")
    try:
        path = obj.resolve(head) + (f".{rest}" if rest else "")
    except griffe.NameResolutionError:
        if head != root.name:
            return None
        path = name
    try:
        found = root[path[len(root.name) + 1 :]] if path != root.name else root
    except (KeyError, ValueError):
        return None
    try:
        return found.final_target.path if found.is_alias else found.path
    except (griffe.AliasResolutionError, griffe.CyclicAliasError):
        return None


class SphinxRolesToLinks(griffe.Extension):
    """Rewrite ``:role:`name``` in every docstring of the package once it is loaded."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        self._walk(pkg, pkg)

    def _walk(self, obj: griffe.Object, root: griffe.Module) -> None:
        if obj.docstring is not None:
            value = rest_to_markdown(obj.docstring.value)
            obj.docstring.value = ROLE.sub(lambda m: self._link(obj, root, m), value)
        for member in obj.members.values():
            if not member.is_alias:
                self._walk(member, root)

    @staticmethod
    def _link(obj: griffe.Object, root: griffe.Module, match: re.Match) -> str:
        name = match.group(1)
        target = _target(obj, root, name)
        if target is None:
            return f"`{name}`"
        return f'<autoref identifier="{target}" optional><code>{name}</code></autoref>'
