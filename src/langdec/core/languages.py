"""The one place language codes are normalised and per-language tables are loaded.

Each `languages/<code>.yaml` holds everything language-specific: codes and
aliases (ISO 639-1, FLORES-200), the transpiler's Python vocabulary and the
native answer words. Adding a language is adding a file (plus its wording in the
prompt template sets under experiments/prompts/ if it is an instruction language).
"""

from __future__ import annotations

import functools
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from langdec.core.errors import LangdecError, did_you_mean
from langdec.core.paths import project_root


@dataclass(frozen=True)
class Language:
    code: str
    name: str
    flores: str
    aliases: tuple[str, ...]
    path: Path
    table: dict[str, Any] = field(repr=False, compare=False, hash=False)


def languages_dir() -> Path:
    return project_root() / "languages"


CODES_FILE = "codes.yaml"


@functools.lru_cache(maxsize=1)
def all_languages() -> dict[str, Language]:
    """Every language: full tables from languages/<code>.yaml, bare codes from codes.yaml."""
    out: dict[str, Language] = {}
    codes_path = languages_dir() / CODES_FILE
    if codes_path.exists():
        for code, flores_code in (yaml.safe_load(codes_path.read_text(encoding="utf-8")) or {}).items():
            out[str(code)] = Language(str(code), str(code), str(flores_code), (), codes_path, {})
    for path in sorted(languages_dir().glob("*.yaml")):
        if path.name == CODES_FILE:
            continue
        try:
            table = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise LangdecError(f"{path}: not valid YAML ({exc}); fix the file") from exc
        for key in ("code", "name", "flores"):
            if not isinstance(table.get(key), str):
                raise LangdecError(f"{path}: missing string key {key!r}")
        if table["code"] != path.stem:
            raise LangdecError(f"{path}: code {table['code']!r} must match the file name {path.stem!r}")
        out[table["code"]] = Language(
            code=table["code"],
            name=table["name"],
            flores=table["flores"],
            aliases=tuple(str(a) for a in table.get("aliases", [])),
            path=path,
            table=table,
        )
    return out


@functools.lru_cache(maxsize=None)
def _alias_index() -> dict[str, str]:
    index: dict[str, str] = {}
    for lang in all_languages().values():
        for alias in (lang.code, lang.flores, *lang.aliases):
            index[alias.lower().replace("-", "_")] = lang.code
    return index


def normalise(code: str) -> str:
    """'zh', 'zho_Hans', 'ZH-hans' -> 'zh'. Unknown codes fail listing the valid ones."""
    key = str(code).strip().lower().replace("-", "_")
    found = _alias_index().get(key)
    if found is None:
        raise did_you_mean("language", str(code), all_languages())
    return found


def get(code: str) -> Language:
    return all_languages()[normalise(code)]


def flores(code: str) -> str:
    return get(code).flores


_SCRIPT_NAMES = {
    "Arab": "ARABIC",
    "Hans": "CJK",
    "Hant": "CJK",
    "Latn": "LATIN",
    "Deva": "DEVANAGARI",
    "Cyrl": "CYRILLIC",
    "Grek": "GREEK",
    "Hebr": "HEBREW",
    "Beng": "BENGALI",
    "Jpan": "CJK",
    "Hang": "HANGUL",
    "Thai": "THAI",
}


def target_script_share(text: str, lang: str) -> float:
    """Share of letters written in the language's script (taken from its FLORES code)."""
    script = _SCRIPT_NAMES.get(flores(lang).split("_")[-1], "")
    letters = [c for c in text if c.isalpha()]
    if not letters or not script:
        return 0.0
    return sum(unicodedata.name(c, "").startswith(script) for c in letters) / len(letters)
