"""Forward and reverse translation of one file's text, exact by construction and checked.

Forward rewrites only code words (see `lexer`):
  * hard keywords always; soft keywords where the parser uses them as keywords;
  * built-in names only where `scope` says they resolve to the builtins module;
  * digits of number literals when the pack localises digits;
  * any other identifier whose name, stripped of trailing underscores, is a word
    of the pack gets one more trailing underscore (the collision escape), so a
    Spanish variable `si` becomes `si_` and `si_` becomes `si__`.
Reverse maps pack words back, strips one underscore from escaped names and
restores ASCII digits. Both directions lex with the same function, so
`reverse(forward(src)) == src`; `translate` verifies it for every file anyway.
"""

from __future__ import annotations

import ast
import bisect
import warnings
from dataclasses import dataclass, field

from langdec.core import syntax
from langdec.data.transpiler.lexer import IDENT, NUMBER, code_words
from langdec.data.transpiler.packs import LanguagePack
from langdec.data.transpiler.scope import analyse

BOM = "\ufeff"


class TranspileError(Exception):
    """A file the transpiler refuses; `reason` is a short machine-readable tag."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass
class Stats:
    keywords: int = 0
    soft_keywords: int = 0
    names: int = 0
    numbers: int = 0
    escaped: int = 0
    kept_builtins: int = 0  # built-in names left as written because the file binds them

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class Result:
    text: str
    stats: Stats = field(default_factory=Stats)


class _Positions:
    """Char offset -> (lineno, utf-8 column), the coordinates `ast` reports."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.starts = [0]
        index = text.find("\n")
        while index >= 0:
            self.starts.append(index + 1)
            index = text.find("\n", index + 1)

    def at(self, offset: int) -> tuple[int, int]:
        line = bisect.bisect_right(self.starts, offset) - 1
        start = self.starts[line]
        return line + 1, len(self.text[start:offset].encode("utf-8"))

    def offset(self, lineno: int, byte_col: int) -> int:
        start = self.starts[lineno - 1]
        end = self.starts[lineno] if lineno < len(self.starts) else len(self.text)
        return start + len(self.text[start:end].encode("utf-8")[:byte_col].decode("utf-8", "ignore"))


def _split_bom(text: str) -> tuple[str, str]:
    return (BOM, text[1:]) if text.startswith(BOM) else ("", text)


def parse(text: str) -> ast.Module:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return syntax.parse(text)
    except (SyntaxError, ValueError) as exc:  # ValueError: null bytes
        raise TranspileError("syntax", str(exc).splitlines()[0]) from None
    except (RecursionError, MemoryError):
        raise TranspileError("syntax", "nesting too deep for the parser") from None


def parses(text: str) -> bool:
    try:
        parse(text)
        return True
    except TranspileError:
        return False


def forward(text: str, pack: LanguagePack) -> Result:
    bom, body = _split_bom(text)
    tree = parse(body)
    try:
        facts = analyse(tree, pack.names & _names_in(body, pack))
    except RecursionError:
        raise TranspileError("too-deep", "expressions nest too deeply for scope analysis") from None
    positions = _Positions(body)
    case_offsets = sorted(positions.offset(*p) for p in facts.case_patterns)
    stats = Stats()
    fwd, targets, keywords, soft = pack.forward, pack.targets, pack.keywords, pack.soft_keywords
    pieces: list[str] = []
    last = 0
    words = code_words(body)
    case_words = [w.start for w in words if w.kind == IDENT and body[w.start : w.end] == "case"] if case_offsets else []
    case_keywords = _case_keyword_offsets(case_words, case_offsets)
    for start, end, kind in words:
        word = body[start:end]
        if kind == IDENT and not word.isascii():
            _refuse_compatibility_form(word, pack)
        if kind == NUMBER:
            if pack.digit_forward is None:
                continue
            new = word.translate(pack.digit_forward)
            if new == word:
                continue
            stats.numbers += 1
        elif word in keywords:
            new = fwd[word]
            stats.keywords += 1
        elif word in soft and (
            start in case_keywords or (word == "match" and positions.at(start) in facts.match_keywords)
        ):
            new = fwd[word]
            stats.soft_keywords += 1
        elif word in pack.names and positions.at(start) in facts.builtin_uses:
            new = fwd[word]
            stats.names += 1
        elif word.rstrip("_") in targets:
            new = word + "_"
            stats.escaped += 1
        else:
            if word in pack.names:
                stats.kept_builtins += 1
            continue
        pieces.append(body[last:start])
        pieces.append(new)
        last = end
    pieces.append(body[last:])
    return Result(bom + "".join(pieces), stats)


def reverse(text: str, pack: LanguagePack) -> str:
    bom, body = _split_bom(text)
    back, targets = pack.reverse, pack.targets
    pieces: list[str] = []
    last = 0
    for start, end, kind in code_words(body):
        word = body[start:end]
        if kind == NUMBER:
            if pack.digit_reverse is None:
                continue
            new = word.translate(pack.digit_reverse)
            if new == word:
                continue
        elif word in back:
            new = back[word]
        elif word.endswith("_") and word.rstrip("_") in targets:
            new = word[:-1]
        else:
            continue
        pieces.append(body[last:start])
        pieces.append(new)
        last = end
    pieces.append(body[last:])
    return bom + "".join(pieces)


def translate(text: str, pack: LanguagePack, *, direction: str = "forward") -> Result:
    """Translate and prove the round trip; raise TranspileError('roundtrip') if it fails."""
    if direction == "forward":
        result = forward(text, pack)
        if reverse(result.text, pack) != text:
            raise TranspileError("roundtrip", "reverse(forward(text)) differs from the input")
        return result
    if direction == "reverse":
        back = reverse(text, pack)
        if forward(back, pack).text != text:
            raise TranspileError("roundtrip", "forward(reverse(text)) differs from the input")
        return Result(back)
    raise ValueError(f"direction must be forward or reverse, not {direction!r}")


def _refuse_compatibility_form(word: str, pack: LanguagePack) -> None:
    """Python reads identifiers in NFKC form, so `ｐｒｉｎｔ` is `print`: such a word would be Python vocabulary left
    untranslated (and translating it could not round-trip to the same bytes), so the file is refused."""
    import unicodedata

    read = unicodedata.normalize("NFKC", word)
    if read != word and (
        read in pack.keywords or read in pack.soft_keywords or read in pack.names or read.rstrip("_") in pack.targets
    ):
        raise TranspileError(
            "compatibility-form",
            f"{word!r} is Python's {read!r} written in compatibility characters; write it in ASCII",
        )


def english_keywords_left(text: str) -> int:
    """Hard keywords still written in English as code words (0 after a complete forward pass)."""
    import keyword

    _, body = _split_bom(text)
    return sum(1 for s, e, k in code_words(body) if k == IDENT and keyword.iskeyword(body[s:e]))


def _names_in(text: str, pack: LanguagePack) -> frozenset[str]:
    # Cheap pre-filter: only names that occur in the text need scope resolution.
    return frozenset(n for n in pack.names if n in text)


def _case_keyword_offsets(case_words: list[int], pattern_offsets: list[int]) -> set[int]:
    """The `case` word nearest before each case pattern is the soft keyword."""
    found: set[int] = set()
    for pattern in pattern_offsets:
        index = bisect.bisect_left(case_words, pattern) - 1
        if index >= 0:
            found.add(case_words[index])
    return found
