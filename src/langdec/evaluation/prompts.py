"""Instruction templates, grouped in named template sets (experiments/prompts/<set>.yaml).

A set maps template -> benchmark -> instruction language -> text, formatted with an
item's fields. `study` (the study's own wording, preprocess.ipynb) is the default;
`langdec` keeps langdec's earlier wording. A set may name a `fallback` set for
benchmarks it lacks (the study published no MGSM prompts), and `resolve` says which
set a prompt really came from, so a run can record it.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

import yaml

from .. import languages
from ..paths import experiments_dir
from ..errors import LangdecError, did_you_mean
from .benchmarks import Item

DEFAULT_SET = "study"


@dataclass(frozen=True)
class PromptSet:
    name: str
    description: str
    fallback: str | None
    templates: dict[str, dict[str, dict[str, str]]]  # template -> benchmark -> instr -> text
    path: Path


def prompts_dir() -> Path:
    return experiments_dir() / "prompts"


@functools.lru_cache(maxsize=1)
def prompt_sets() -> dict[str, PromptSet]:
    out: dict[str, PromptSet] = {}
    for path in sorted(prompts_dir().glob("*.yaml")):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise LangdecError(f"{path}: not valid YAML ({exc}); fix the file") from None
        templates = data.get("templates")
        if not isinstance(templates, dict) or not templates:
            raise LangdecError(f"{path}: needs a `templates:` mapping template -> benchmark -> language -> text")
        for tmpl, benches in templates.items():
            for bench, langs in (benches or {}).items():
                for lang, text in (langs or {}).items():
                    if not isinstance(text, str):
                        raise LangdecError(f"{path}: templates.{tmpl}.{bench}.{lang} must be a string")
                    languages.normalise(lang)
        out[path.stem] = PromptSet(path.stem, str(data.get("description", "")), data.get("fallback"), templates, path)
    for s in out.values():
        if s.fallback is not None and s.fallback not in out:
            raise LangdecError(f"{s.path}: fallback {s.fallback!r} is not a template set; sets: {', '.join(sorted(out))}")
    return out


def get_set(name: str) -> PromptSet:
    found = prompt_sets().get(name)
    if found is None:
        raise did_you_mean("prompt template set", name, prompt_sets())
    return found


def resolve(set_name: str, template_name: str, benchmark: str, instr: str) -> tuple[str, str]:
    """(text, name of the set that supplied it), following `fallback` for a missing benchmark; a variant
    benchmark (`like:`) takes its family's wording."""
    from .benchmarks import family

    benchmark = family(benchmark)
    seen: list[str] = []
    name: str | None = set_name
    while name is not None and name not in seen:
        seen.append(name)
        s = get_set(name)
        if template_name not in s.templates:
            raise LangdecError(f"{s.path}: no template {template_name!r}; it has {', '.join(s.templates)}")
        by_lang = s.templates[template_name].get(benchmark)
        if by_lang:
            lang = languages.normalise(instr)
            if lang not in by_lang:
                raise LangdecError(f"{s.path}: {template_name}.{benchmark} has no instruction language {lang!r}; "
                                   f"it has {', '.join(by_lang)}")
            return by_lang[lang], name
        name = s.fallback
    raise LangdecError(f"{get_set(set_name).path}: no {benchmark!r} prompts in template set(s) {', '.join(seen)}")


def instruction_languages(set_name: str = DEFAULT_SET) -> list[str]:
    """Languages every template of the set is written in, i.e. the possible instruction languages."""
    s = get_set(set_name)
    common: set[str] | None = None
    for benches in s.templates.values():
        for langs in benches.values():
            common = set(langs) if common is None else common & set(langs)
    return sorted(common or ())


def template(template_name: str, benchmark: str, instr: str, set_name: str = DEFAULT_SET) -> str:
    return resolve(set_name, template_name, benchmark, instr)[0]


def render(template_name: str, benchmark: str, instr: str, item: Item, set_name: str = DEFAULT_SET) -> str:
    text, source = resolve(set_name, template_name, benchmark, instr)
    try:
        return text.format(**item.fields)
    except KeyError as exc:
        raise LangdecError(f"{get_set(source).path}: {template_name}.{benchmark}.{instr} uses {{{exc.args[0]}}}, which "
                           f"{benchmark} items do not have ({', '.join(item.fields)})") from None


def prompt_hash(prompt: str) -> str:
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:16]


@functools.lru_cache(maxsize=None)
def answer_words(benchmark: str) -> dict[str, dict[str, tuple[str, ...]]]:
    """{language: {label: words}} for a classification benchmark, validated."""
    out: dict[str, dict[str, tuple[str, ...]]] = {}
    for code, lang in languages.all_languages().items():
        table = (lang.table.get("answers") or {}).get(benchmark)
        if not table:
            continue
        labels: dict[str, tuple[str, ...]] = {}
        for label, words in table.items():
            if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
                raise LangdecError(f"{lang.path}: answers.{benchmark}.{label} must be a list of strings (quote yes/no/true/false)")
            labels[str(label)] = tuple(words)
        out[code] = labels
    return out


@functools.lru_cache(maxsize=1)
def and_words() -> tuple[str, ...]:
    words: list[str] = []
    for lang in languages.all_languages().values():
        for word in (lang.table.get("answers") or {}).get("and", []):
            if not isinstance(word, str):
                raise LangdecError(f"{lang.path}: answers.and entries must be strings, got {word!r}")
            words.append(word)
    return tuple(words)
