"""Markdown as one self-contained HTML page (report.html), figures embedded: MLflow's artifact viewer shows an
HTML artifact from a blob URL, where a relative link to another artifact cannot resolve. Covers what
`render.markdown` writes: headings, paragraphs, pipe tables, images, `code`."""

from __future__ import annotations

import base64
import html as escape
import re
from pathlib import Path

HEAD = (
    "<!doctype html><html><head><meta charset='utf-8'><title>langdec report</title><style>"
    "body{font-family:sans-serif;margin:2em;max-width:100em}table{border-collapse:collapse;margin:1em 0;font-size:90%}"
    "td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}img{max-width:100%}</style></head><body>"
)
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)]+)\)")
RULE = re.compile(r"\|(\s*-+\s*\|)+")  # a pipe table's header rule


def html(markdown_text: str, folder: Path) -> str:
    """The page; an image is embedded when its file is in `folder`."""
    out = [HEAD]
    lines = markdown_text.splitlines()
    i = 0
    while i < len(lines):
        block, i = _block(lines, i, folder)
        if block:
            out.append(block)
    out.append("</body></html>")
    return "\n".join(out)


def _inline(text: str) -> str:
    text = escape.escape(text)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", text))


def _block(lines: list[str], i: int, folder: Path) -> tuple[str, int]:
    """The HTML of the block that starts at line i ("" for a blank line), and the line after the block."""
    line = lines[i]
    image = IMAGE.fullmatch(line.strip())
    if line.startswith("#"):
        level = len(line) - len(line.lstrip("#"))
        return f"<h{level}>{_inline(line[level:].strip())}</h{level}>", i + 1
    if image and (folder / image.group(1)).is_file():
        name = image.group(1)
        src = "data:image/png;base64," + base64.b64encode((folder / name).read_bytes()).decode()
        return f"<p><img alt='{escape.escape(name)}' src='{src}'></p>", i + 1
    if line.startswith("|"):
        return _table(lines, i)
    if line.strip():
        paragraph = [line]
        while i + 1 < len(lines) and lines[i + 1].strip() and not lines[i + 1].startswith(("#", "|", "![")):
            i += 1
            paragraph.append(lines[i])
        return f"<p>{_inline(' '.join(paragraph))}</p>", i + 1
    return "", i + 1


def _table(lines: list[str], i: int) -> tuple[str, int]:
    """A pipe table from line i on, its first row the header, and the line after it."""
    rows = []
    while i < len(lines) and lines[i].startswith("|"):
        if not RULE.fullmatch(lines[i].strip()):
            rows.append([c.strip() for c in lines[i].strip().strip("|").split("|")])
        i += 1
    cells = (
        "<tr>"
        + "".join(f"<{'th' if n == 0 else 'td'}>{_inline(c)}</{'th' if n == 0 else 'td'}>" for c in row)
        + "</tr>"
        for n, row in enumerate(rows)
    )
    return "<table>" + "".join(cells) + "</table>", i
