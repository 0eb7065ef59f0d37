"""Language packs: the reviewed Python vocabulary of one human language, and its validator."""

from __future__ import annotations

import builtins
import functools
import hashlib
import json
import keyword
import unicodedata
from dataclasses import dataclass
from typing import Any

from langdec.core import languages
from langdec.core.errors import LangdecError

CATEGORIES = ("keywords", "soft_keywords", "builtins", "exceptions")
ASCII_DIGITS = "0123456789"
# Soft keywords we translate only where the parser uses them as keywords.
SOFT_KEYWORDS = frozenset({"match", "case"})
_BUILTIN_NAMES = frozenset(dir(builtins))
_STRING_PREFIXES = frozenset(p for p in ("r", "u", "f", "b", "br", "rb", "fr", "rf"))


@dataclass(frozen=True)
class LanguagePack:
    code: str
    categories: dict[str, dict[str, str]]
    digits: str | None
    digest: str

    @functools.cached_property
    def forward(self) -> dict[str, str]:
        return {en: word for table in self.categories.values() for en, word in table.items()}

    @functools.cached_property
    def reverse(self) -> dict[str, str]:
        return {word: en for en, word in self.forward.items()}

    @functools.cached_property
    def keywords(self) -> frozenset[str]:
        return frozenset(self.categories.get("keywords", {}))

    @functools.cached_property
    def soft_keywords(self) -> frozenset[str]:
        return frozenset(self.categories.get("soft_keywords", {}))

    @functools.cached_property
    def names(self) -> frozenset[str]:
        """Built-in names (functions, types, constants, exceptions) that need scope analysis."""
        return frozenset(self.categories.get("builtins", {})) | frozenset(self.categories.get("exceptions", {}))

    @functools.cached_property
    def targets(self) -> frozenset[str]:
        return frozenset(self.reverse)

    @functools.cached_property
    def digit_forward(self) -> dict[int, str] | None:
        return str.maketrans(ASCII_DIGITS, self.digits) if self.digits else None

    @functools.cached_property
    def digit_reverse(self) -> dict[int, str] | None:
        return str.maketrans(self.digits, ASCII_DIGITS) if self.digits else None


def _raw_pack(code: str) -> tuple[str, dict[str, Any], str]:
    lang = languages.get(code)
    section = lang.table.get("python")
    if not isinstance(section, dict):
        valid = [c for c, l in languages.all_languages().items() if isinstance(l.table.get("python"), dict)]
        raise LangdecError(
            f"language {lang.code!r} has no Python vocabulary (no 'python:' section in {lang.path}); "
            f"languages with one: {', '.join(sorted(valid))}"
        )
    return lang.code, section, str(lang.path)


def validate(code: str) -> list[str]:
    """Every problem with a pack, each naming the entry; an empty list means valid."""
    code, section, where = _raw_pack(code)
    problems: list[str] = []
    unknown = set(section) - set(CATEGORIES) - {"digits"}
    if unknown:
        problems.append(f"{where}: unknown keys {sorted(unknown)}; valid: digits, {', '.join(CATEGORIES)}")
    digits = section.get("digits")
    if digits is not None:
        if (
            not isinstance(digits, str)
            or len(digits) != 10
            or not all(unicodedata.decimal(d, -1) == i for i, d in enumerate(digits))
        ):
            problems.append(f"{where}: python.digits must be ten decimal digits 0..9 in order, got {digits!r}")
    problems += _word_problems(section, where)
    problems += _evidence_problems(code, section, where)
    missing = sorted(set(keyword.kwlist) - set(section.get("keywords") or {}))
    if missing:
        problems.append(f"{where}: python.keywords lacks {missing}; these would stay English")
    return problems


def _word_problems(section: dict[str, Any], where: str) -> list[str]:
    """Problems of the category tables' entries, and words used twice in the pack."""
    problems: list[str] = []
    seen: dict[str, str] = {}
    for category in CATEGORIES:
        table = section.get(category) or {}
        if not isinstance(table, dict):
            problems.append(f"{where}: python.{category} must be a mapping English -> word")
            continue
        for en, word in table.items():
            entry = f"{where}: python.{category}.{en}"
            if not isinstance(en, str) or not isinstance(word, str):
                problems.append(
                    f"{entry}: keys and words must be strings (quote YAML words like no/yes/on), got {word!r}"
                )
                continue
            problems += [f"{entry}: {problem}" for problem in _entry_problems(category, en, word)]
            key = unicodedata.normalize("NFKC", word)
            if key in seen:
                problems.append(f"{entry}: {word!r} collides with {seen[key]} (words must be unique in a pack)")
            else:
                seen[key] = f"python.{category}.{en}"
    return problems


def _entry_problems(category: str, en: str, word: str) -> list[str]:
    """What is wrong with translating the English name `en` of `category` as `word`."""
    problems = []
    if category == "keywords" and not keyword.iskeyword(en):
        problems.append(f"{en!r} is not a Python keyword")
    if category == "soft_keywords" and en not in SOFT_KEYWORDS:
        problems.append(f"only {sorted(SOFT_KEYWORDS)} are translated as soft keywords")
    if category in ("builtins", "exceptions") and en not in _BUILTIN_NAMES:
        problems.append(f"{en!r} is not a built-in name")
    if not word.isidentifier():
        problems.append(f"{word!r} is not a valid Python identifier")
    if keyword.iskeyword(word) or keyword.issoftkeyword(word):
        problems.append(f"{word!r} is a Python keyword")
    if word == en:
        problems.append("the word equals the English name; drop the entry instead")
    if word.endswith("_"):
        problems.append(f"{word!r} ends with '_', which is reserved for collision escapes")
    if word.lower() in _STRING_PREFIXES:
        problems.append(f"{word!r} would read as a string prefix before a quote")
    if unicodedata.normalize("NFKC", word) != word:
        problems.append(
            f"{word!r} is not NFKC-normalised (Python would read it as "
            f"{unicodedata.normalize('NFKC', word)!r}); write the normalised form"
        )
    return problems


def _evidence_problems(code: str, section: dict[str, Any], where: str) -> list[str]:
    """Entries that disagree with the words the study's outputs show (the language table's study_evidence)."""
    problems = []
    evidence = languages.get(code).table.get("study_evidence") or {}
    for category, words in evidence.items():
        if category == "source":
            continue
        if category not in CATEGORIES or not isinstance(words, dict):
            problems.append(
                f"{where}: study_evidence.{category} must be one of {', '.join(CATEGORIES)}, a mapping English -> word"
            )
            continue
        for en, word in words.items():
            ours = (section.get(category) or {}).get(en)
            if ours != word:
                problems.append(
                    f"{where}: python.{category}.{en} is {ours!r}, but the study's outputs show {word!r} "
                    f"(study_evidence: {evidence.get('source', 'no source given')}); use the study's word"
                )
    return problems


@functools.lru_cache(maxsize=None)
def load(code: str) -> LanguagePack:
    """The validated pack of a language; invalid packs fail listing every problem."""
    problems = validate(code)
    code, section, _ = _raw_pack(code)
    if problems:
        raise LangdecError(f"language pack {code!r} is invalid:\n  " + "\n  ".join(problems))
    categories = {c: dict(section.get(c) or {}) for c in CATEGORIES if section.get(c)}
    digits = section.get("digits")
    canonical = json.dumps({"categories": categories, "digits": digits}, sort_keys=True, ensure_ascii=False)
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]
    return LanguagePack(code=code, categories=categories, digits=digits, digest=digest)


def available() -> list[str]:
    return sorted(c for c, l in languages.all_languages().items() if isinstance(l.table.get("python"), dict))
