"""MkDocs hook: typeset the math at build time, as MathML, so the site needs no script.

``pymdownx.arithmatex`` (generic mode) leaves each formula as its TeX source inside
``<span class="arithmatex">\\(...\\)</span>`` or ``<div class="arithmatex">\\[...\\]</div>``.
This hook replaces each with the MathML that ``latex2mathml`` makes of it, which every
current browser draws natively: the pages render offline, with no MathJax download. A
formula that does not convert fails the build, naming the page.
"""

from __future__ import annotations

import html
import re

from latex2mathml.converter import convert

_FORMULA = re.compile(
    r'<(?P<tag>span|div) class="arithmatex">\s*(?:\\\((?P<inline>.*?)\\\)|\\\[(?P<block>.*?)\\\])\s*</(?P=tag)>',
    re.S,
)


def on_page_content(content: str, page, config, files) -> str:
    def mathml(match: re.Match) -> str:
        inline = match.group("inline") is not None
        tex = html.unescape(match.group("inline") if inline else match.group("block"))
        try:
            out = convert(tex, display="inline" if inline else "block")
        except Exception as error:
            raise ValueError(f"{page.file.src_path}: cannot typeset {tex!r} ({error})") from None
        if "<merror" in out:
            raise ValueError(f"{page.file.src_path}: cannot typeset {tex!r}")
        return out

    return _FORMULA.sub(mathml, content)
