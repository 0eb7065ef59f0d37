"""Finds the *code words* of Python source: identifier and number runs outside strings and comments.

The transpiler rewrites only these spans and lexes its own output with the same
function, so the forward and the reverse pass see the same segmentation; that,
plus a bijective word map, is what makes the round trip exact.

Python's own `tokenize` is not used because on 3.11 it treats an f-string as one
opaque STRING (the expressions inside braces are code we must translate) and its
`\\w+` name pattern splits identifiers that contain combining marks (Devanagari
vowel signs), and because it cannot lex translated output with localised digits.
"""

from __future__ import annotations

from typing import NamedTuple

import regex

IDENT = 0
NUMBER = 1


class Word(NamedTuple):
    start: int
    end: int
    kind: int  # IDENT or NUMBER


_PREFIX = r"(?:[rRbBuU]|[rR][bB]|[bB][rR])?"
_FPREFIX = r"(?:[fF]|[rR][fF]|[fF][rR])"
# Unrolled-loop string bodies: backslash escapes anything (a raw string's \" does
# not end it either); a single-quoted string stops at an unescaped newline so an
# unterminated literal cannot swallow the rest of the file.
_STRING = (
    rf"{_PREFIX}(?:"
    r"'''[^'\\]*(?:(?:\\.|'(?!''))[^'\\]*)*(?:'''|\Z)"
    r'|"""[^"\\]*(?:(?:\\.|"(?!""))[^"\\]*)*(?:"""|\Z)'
    r"|'[^'\\\n]*(?:\\.[^'\\\n]*)*'?"
    r'|"[^"\\\n]*(?:\\.[^"\\\n]*)*"?'
    r")"
)
_TOP = regex.compile(
    r"(?P<c>#[^\r\n]*)"
    rf"|(?P<s>{_STRING})"
    rf"|(?P<f>{_FPREFIX}(?:'''|\"\"\"|'|\"))"
    r"|(?P<w>[\p{XID_Start}_]\p{XID_Continue}*)"
    r"|(?P<n>\d\p{XID_Continue}*)",
    regex.DOTALL,
)
# Inside f-string braces we also need brackets and the field terminators.
_EXPR = regex.compile(
    r"(?P<c>#[^\r\n]*)"
    rf"|(?P<s>{_STRING})"
    rf"|(?P<f>{_FPREFIX}(?:'''|\"\"\"|'|\"))"
    r"|(?P<w>[\p{XID_Start}_]\p{XID_Continue}*)"
    r"|(?P<n>\d\p{XID_Continue}*)"
    r"|(?P<o>[(\[{])|(?P<x>[)\]}])|(?P<b>!=?)|(?P<k>:)",
    regex.DOTALL,
)
_CONVERSION = regex.compile(r"\p{XID_Continue}*")


def code_words(text: str) -> list[Word]:
    """All identifier/number runs of `text` that are code (not string or comment text)."""
    out: list[Word] = []
    pos, n = 0, len(text)
    while pos < n:
        m = _TOP.search(text, pos)
        if m is None:
            break
        pos = _consume(m, text, out)
    return out


def _consume(m, text: str, out: list[Word]) -> int:
    """Record a word, skip a comment or string, or scan an f-string; return where scanning goes on."""
    group = m.lastgroup
    if group == "w":
        out.append(Word(m.start(), m.end(), IDENT))
    elif group == "n":
        out.append(Word(m.start(), m.end(), NUMBER))
    elif group == "f":
        quote = text[m.end() - 1]
        return _fstring(text, m.end(), quote, m.group().endswith(quote * 3), "r" in m.group().lower(), out)
    return m.end()


def _fstring(text: str, i: int, quote: str, triple: bool, raw: bool, out: list[Word]) -> int:
    """Scan an f-string body from just after its opening quote; return the index after it."""
    n = len(text)
    closing = quote * 3 if triple else quote
    while i < n:
        c = text[i]
        if c == "\\":
            if not raw and text.startswith("N{", i + 1):  # \N{NAME} is an escape, not a field
                close = text.find("}", i)
                i = n if close < 0 else close + 1
            else:
                i += 2
        elif text.startswith(closing, i):
            return i + len(closing)
        elif c == "\n" and not triple:
            return i
        elif c == "{":
            if text.startswith("{{", i):
                i += 2
            else:
                i = _field(text, i + 1, out)
        else:
            i += 1
    return n


def _field(text: str, i: int, out: list[Word]) -> int:
    """Scan a replacement field `{expr[!conv][:spec]}` from just after `{`."""
    n = len(text)
    i = _expression(text, i, out)
    if i < n and text[i] == "!":
        i = _CONVERSION.match(text, i + 1).end()
    if i < n and text[i] == ":":
        i += 1
        while i < n and text[i] != "}":
            if text[i] == "{":
                i = _field(text, i + 1, out)
            elif text[i] in "\n\"'":
                # a format spec never holds these; bail out rather than misread the file
                return i
            else:
                i += 1
    return i + 1 if i < n and text[i] == "}" else i


def _expression(text: str, i: int, out: list[Word]) -> int:
    """Scan code inside braces; stop at a depth-0 `}`, `!` (conversion) or `:` (format spec)."""
    depth, n = 0, len(text)
    while i < n:
        m = _EXPR.search(text, i)
        if m is None:
            return n
        group = m.lastgroup
        if group == "o":
            depth += 1
        elif group == "x":
            if depth == 0:
                return m.start()
            depth -= 1
        elif group == "b":
            if depth == 0 and m.group() == "!":
                return m.start()
        elif group == "k":
            if depth == 0:
                return m.start()
        else:
            i = _consume(m, text, out)
            continue
        i = m.end()
    return n
