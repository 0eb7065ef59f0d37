"""What condition 5 translates in an English Python file, and how a translation is applied.

A file's translatable text is a list of units: the identifiers the file itself
defines (one symbol table per file, so a name is renamed the same way
everywhere), its comments, its docstrings and its prose string literals.
Renaming goes through Python's tokenizer, never a regex over text, and each NAME
token is classified by its context:

* after `.`: an attribute. Renamed only when the file's own classes define it
  and every access in the file is through `self`, `cls` or a class of the file;
  otherwise it may belong to an external object and stays English.
* `name=` inside a call: a keyword argument. Renamed only when the callee is a
  function or class of this file (an external API's keywords stay English).
* inside an import statement: never.
* otherwise a bare name: renamed when the file defines it and never imports it.

Methods of a class with an external base stay English (they may override the
library's API: `run`, `setUp`, `visit_Name`), as do dunders, `self`/`cls`, and
names that are also builtins. Raw, byte and f-strings, and strings that look like
keys or identifiers rather than prose, are not translated: they are often
behaviour, not text.
"""

from __future__ import annotations

import ast
import builtins
import io
import keyword
import re
import token
import tokenize
from collections.abc import Callable
from dataclasses import dataclass, field

from langdec.core import syntax
from langdec.core.errors import LangdecError

_BUILTINS = frozenset(dir(builtins))
_KEEP = frozenset({"self", "cls", "_"})
_PROSE = re.compile(r"[^\W\d_]{2,}\s+[^\W\d_]{2,}")  # two words: text for people, not a key
_SKIP_COMMENT = re.compile(r"^#(!|\s*(-\*-|type:|noqa|pragma|pylint:|fmt:|isort:|mypy:)|\s*$)")
_PLACEHOLDER = re.compile(r"\{[^{}]*\}|%(\([^)]*\))?[-#0 +]*\d*(\.\d+)?[diouxXeEfFgGcrsa%]")


@dataclass(frozen=True)
class Unit:
    key: str  # i<n> identifier, c<n> comment, s<n> string/docstring
    kind: str  # identifier | comment | docstring | string
    text: str
    start: tuple[int, int] | None = None  # token position of a comment or string; not part of the request


@dataclass
class FileUnits:
    units: list[Unit]
    names: set[str] = field(default_factory=set)  # bare names the file defines (renamable)
    attributes: set[str] = field(default_factory=set)  # attributes of the file's own classes
    local_callables: set[str] = field(default_factory=set)  # functions/classes whose keywords may be renamed
    frozen: set[str] = field(default_factory=set)  # names that must stay as they are

    @property
    def identifiers(self) -> list[Unit]:
        return [u for u in self.units if u.kind == "identifier"]


def placeholders(text: str) -> list[str]:
    """Format fields the program fills in; a translation must keep every one."""
    return sorted(m.group(0) for m in _PLACEHOLDER.finditer(text))


def _tokens(code: str) -> list[tokenize.TokenInfo]:
    return list(tokenize.generate_tokens(io.StringIO(code).readline))


def _docstring_positions(tree: ast.Module) -> set[tuple[int, int]]:
    spots = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                spots.add((first.value.lineno, first.value.col_offset))
    return spots


def _definitions(tree: ast.Module) -> tuple[set[str], set[str], dict[str, ast.ClassDef], set[str]]:
    """What the file imports, every name it binds, its classes by name, and its functions."""
    imported: set[str] = set()
    defined: set[str] = set()
    classes: dict[str, ast.ClassDef] = {}
    functions: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            imported.update(a.asname or a.name for a in node.names)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            defined.add(node.name)
            functions.add(node.name)
        elif isinstance(node, ast.ClassDef):
            defined.add(node.name)
            classes[node.name] = node
        elif isinstance(node, ast.arg):
            defined.add(node.arg)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            defined.add(node.id)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            defined.add(node.name)
        elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
            defined.add(node.name)
    return imported, defined, classes, functions


def _own_base(cls: ast.ClassDef, local_classes: set[str]) -> bool:
    """Whether every base of the class is the file's own (or `object`): only then are its members the file's."""
    return (
        all(isinstance(b, ast.Name) and (b.id in local_classes or b.id == "object") for b in cls.bases)
        and not cls.keywords
    )


def _members(classes: dict[str, ast.ClassDef], local_classes: set[str]) -> set[str]:
    """The methods, class attributes and `self.`/`cls.` attributes of the file's own-based classes."""
    members: set[str] = set()
    for cls in classes.values():
        if not _own_base(cls, local_classes):
            continue
        for item in cls.body:
            if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                members.add(item.name)
            elif isinstance(item, (ast.Assign, ast.AnnAssign)):
                targets = item.targets if isinstance(item, ast.Assign) else [item.target]
                members.update(t.id for t in targets if isinstance(t, ast.Name))
        for node in ast.walk(cls):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.ctx, ast.Store)
                and isinstance(node.value, ast.Name)
                and node.value.id in ("self", "cls")
            ):
                members.add(node.attr)
    return members


def _renamable(name: str, imported: set[str]) -> bool:
    return not (
        name in imported
        or name in _BUILTINS
        or name in _KEEP
        or keyword.iskeyword(name)
        or (name.startswith("__") and name.endswith("__"))
        or len(name) < 2
    )


def _symbols(tree: ast.Module) -> tuple[set[str], set[str], set[str], set[str]]:
    imported, defined, classes, functions = _definitions(tree)
    local_classes = set(classes)
    members = _members(classes, local_classes)
    internal_receivers = {"self", "cls"} | local_classes
    external_access = {
        n.attr
        for n in ast.walk(tree)
        if isinstance(n, ast.Attribute) and not (isinstance(n.value, ast.Name) and n.value.id in internal_receivers)
    }
    # a method of an externally-based class stays English; so must the same name as a bare function
    inherited = {
        item.name
        for cls in classes.values()
        if not _own_base(cls, local_classes)
        for item in cls.body
        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef))
    }
    attributes = {m for m in members if _renamable(m, imported) and m not in external_access}
    names = {
        n
        for n in defined
        if _renamable(n, imported) and n not in inherited and n not in external_access | (members - attributes)
    }
    # a name both bare and an attribute shares one translation; if either must stay, both stay
    attributes -= {m for m in attributes if m in defined and m not in names}
    callables = {f for f in functions | local_classes if f in names} | {m for m in attributes}
    return names, attributes, callables, imported


def extract(code: str) -> FileUnits:
    """The units of an English file. Raises LangdecError if it does not parse."""
    try:
        tree = syntax.parse(code)
    except (SyntaxError, ValueError) as exc:
        raise LangdecError(f"does not parse as Python ({exc}); condition 5 translates English source only") from None
    names, attributes, callables, imported = _symbols(tree)
    docstrings = _docstring_positions(tree)
    units: list[Unit] = [Unit(f"i{n}", "identifier", name) for n, name in enumerate(sorted(names | attributes))]
    comments = strings = 0
    for tok in _tokens(code):
        if (
            tok.type == tokenize.COMMENT
            and not _SKIP_COMMENT.match(tok.string)
            and re.search(r"[^\W\d_]{2,}", tok.string)
        ):
            units.append(Unit(f"c{comments}", "comment", tok.string[1:].strip(), tok.start))
            comments += 1
        elif tok.type == tokenize.STRING:
            value = _string_value(tok.string)
            if value is None:
                continue
            kind = "docstring" if tok.start in docstrings else "string"
            if kind == "docstring" or _PROSE.search(value):
                units.append(Unit(f"s{strings}", kind, value, tok.start))
                strings += 1
    return FileUnits(units, names, attributes, callables, imported)


def _string_value(literal: str) -> str | None:
    prefix = re.match(r"^[A-Za-z]*", literal).group(0).lower()
    if any(p in prefix for p in "rbf"):
        return None
    try:
        value = ast.literal_eval(literal)
    except (SyntaxError, ValueError):
        return None
    return value if isinstance(value, str) and value.strip() else None


def _string_literal(original: str, value: str) -> str:
    prefix = re.match(r"^[A-Za-z]*", original).group(0)
    body = original[len(prefix) :]
    quote = body[:3] if body[:3] in ('"""', "'''") else body[0]
    text = value.replace("\\", "\\\\")
    if len(quote) == 3:
        text = text.replace(quote, "\\" + quote[0] * 3)
        if text.endswith(quote[0]):
            text = text[:-1] + "\\" + quote[0]
    else:
        text = text.replace(quote, "\\" + quote).replace("\r", "\\r").replace("\n", "\\n")
    return f"{prefix}{quote}{text}{quote}"


def _callee(tokens: list[tokenize.TokenInfo], open_at: int) -> tuple[str | None, bool]:
    """The name right before an opening parenthesis, and whether it is `def NAME(`."""
    j = open_at - 1
    if j >= 0 and tokens[j].type == token.NAME:
        is_def = j >= 1 and tokens[j - 1].string in ("def", "class")
        return tokens[j].string, is_def
    return None, False


def apply(code: str, file_units: FileUnits, translations: dict[str, str]) -> str:
    """Rewrite the file with the unit translations (keys as in `extract`), through the tokenizer."""
    by_name = {u.text: translations[u.key] for u in file_units.identifiers if u.key in translations}
    toks = _tokens(code)
    at = _offset(code)
    edits = _name_edits(toks, at, by_name, file_units) + _text_edits(toks, at, file_units, translations)
    out = code
    for start, end, new in sorted(edits, reverse=True):
        out = out[:start] + new + out[end:]
    return out


def _offset(code: str) -> Callable[[tuple[int, int]], int]:
    """A tokenizer position (line, column) as an offset into `code`."""
    offsets = [0]
    for line in code.splitlines(keepends=True):
        offsets.append(offsets[-1] + len(line))
    return lambda pos: offsets[pos[0] - 1] + pos[1]


Edit = tuple[int, int, str]  # (start, end, replacement) in the file's text


def _name_edits(
    toks: list[tokenize.TokenInfo], at: Callable[[tuple[int, int]], int], by_name: dict[str, str], file_units: FileUnits
) -> list[Edit]:
    """The renames of identifiers, walking the code's tokens with the open brackets and import statements."""
    edits: list[Edit] = []
    brackets: list[tuple[str, str | None, bool]] = []  # (bracket, callee, is_def)
    in_import = False
    significant = [t for t in toks if t.type not in (tokenize.NL, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT)]
    for i, tok in enumerate(significant):
        if tok.type == tokenize.NEWLINE:
            in_import = False
            continue
        if tok.type == token.OP and tok.string in "([{":
            name, is_def = _callee(significant, i) if tok.string == "(" else (None, False)
            brackets.append((tok.string, name, is_def))
            continue
        if tok.type == token.OP and tok.string in ")]}":
            if brackets:
                brackets.pop()
            continue
        if tok.type == token.STRING and re.match(r"^[A-Za-z]*[fF]", tok.string):
            edits.extend(_fstring_edits(tok, at(tok.start), by_name, file_units))
            continue
        if tok.type != token.NAME:
            continue
        prev = significant[i - 1].string if i else ""
        if (
            tok.string in ("import", "from")
            and (i == 0 or significant[i - 1].type == tokenize.NEWLINE or prev in (";", ":"))
            and not brackets
        ):
            in_import = True
            continue
        if not in_import and tok.string in by_name and _renamed(significant, i, brackets, file_units):
            edits.append((at(tok.start), at(tok.end), by_name[tok.string]))
    return edits


def _renamed(
    significant: list[tokenize.TokenInfo], i: int, brackets: list[tuple[str, str | None, bool]], file_units: FileUnits
) -> bool:
    """Whether the name at `i` is one of the file's own: an attribute it defines, a keyword argument of its own
    callable, or a bare name it defines."""
    tok = significant[i]
    prev = significant[i - 1].string if i else ""
    nxt = significant[i + 1] if i + 1 < len(significant) else None
    if prev == ".":
        return tok.string in file_units.attributes
    if nxt is not None and nxt.string == "=" and brackets and brackets[-1][0] == "(":
        _, callee, is_def = brackets[-1]
        if not is_def and callee not in file_units.local_callables:
            return False  # a keyword argument of an external call
        return tok.string in file_units.names or tok.string in file_units.attributes
    return tok.string in file_units.names


def _text_edits(
    toks: list[tokenize.TokenInfo],
    at: Callable[[tuple[int, int]], int],
    file_units: FileUnits,
    translations: dict[str, str],
) -> list[Edit]:
    """The comments and string literals replaced by their translations."""
    texts = {u.start: u for u in file_units.units if u.start is not None}
    edits: list[Edit] = []
    for tok in toks:
        unit = texts.get(tok.start)
        if unit is None or unit.key not in translations:
            continue
        new = translations[unit.key]
        if tok.type == tokenize.COMMENT:
            edits.append((at(tok.start), at(tok.end), "# " + " ".join(new.split())))
        elif tok.type == tokenize.STRING:
            edits.append((at(tok.start), at(tok.end), _string_literal(tok.string, new)))
    return edits


def _fstring_edits(
    tok: tokenize.TokenInfo, base: int, by_name: dict[str, str], file_units: FileUnits
) -> list[tuple[int, int, str]]:
    """Names inside an f-string's expressions (3.11 tokenizes the whole f-string as one STRING)."""
    from langdec.data.transpiler.lexer import IDENT, code_words

    edits = []
    text = tok.string
    for word in code_words(text):
        name = text[word.start : word.end]
        if word.kind != IDENT or name not in by_name:
            continue
        attribute = text[: word.start].rstrip().endswith(".")
        if (attribute and name in file_units.attributes) or (not attribute and name in file_units.names):
            edits.append((base + word.start, base + word.end, by_name[name]))
    return edits


def check(units: FileUnits, translations: dict[str, str], lang_words: frozenset[str] = frozenset()) -> str | None:
    """Why a translation cannot be used, or None. Identifiers must stay valid, distinct names."""
    missing = [u.key for u in units.units if u.key not in translations]
    if missing:
        return f"missing units {missing[:5]}"
    seen: dict[str, str] = {}
    taken = units.frozen | _BUILTINS | lang_words
    for u in units.identifiers:
        new = translations[u.key]
        if not isinstance(new, str) or not new.isidentifier() or keyword.iskeyword(new) or keyword.issoftkeyword(new):
            return f"identifier {u.text!r} -> {new!r} is not a valid Python name"
        if new != u.text and new in taken:
            return f"identifier {u.text!r} -> {new!r} collides with a builtin, import or keyword word"
        if new in seen and seen[new] != u.text:
            return f"identifiers {seen[new]!r} and {u.text!r} both became {new!r}"
        seen[new] = u.text
    untouched = {u.text for u in units.identifiers}
    for new, old in seen.items():
        if new in untouched and new != old:
            return f"identifier {old!r} -> {new!r} is the name of another identifier of the file"
    for u in units.units:
        if u.kind == "identifier":
            continue
        new = translations[u.key]
        if not isinstance(new, str) or not new.strip():
            return f"{u.kind} {u.key} came back empty"
        if placeholders(new) != placeholders(u.text):
            return f"{u.kind} {u.key} lost or changed its placeholders {placeholders(u.text)} -> {placeholders(new)}"
    return None
