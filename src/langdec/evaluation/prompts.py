"""Instruction templates and answer words, read from the per-language tables in languages/."""

from __future__ import annotations

import functools
import hashlib

from .. import languages
from ..errors import LangdecError
from .benchmarks import Item


def instruction_languages() -> list[str]:
    """Languages whose table has prompts, i.e. that can be instruction languages."""
    return sorted(code for code, lang in languages.all_languages().items() if "prompts" in lang.table)


def template(template_name: str, benchmark: str, instr: str) -> str:
    lang = languages.get(instr)
    prompts = lang.table.get("prompts")
    if not prompts:
        raise LangdecError(f"{lang.path}: no prompts; instruction languages with prompts: {', '.join(instruction_languages())}")
    if template_name not in prompts:
        raise LangdecError(f"{lang.path}: no template {template_name!r}; it has {', '.join(sorted(prompts))}")
    text = prompts[template_name].get(benchmark)
    if not isinstance(text, str):
        raise LangdecError(f"{lang.path}: prompts.{template_name} has no {benchmark!r} entry")
    return text


def render(template_name: str, benchmark: str, instr: str, item: Item) -> str:
    try:
        return template(template_name, benchmark, instr).format(**item.fields)
    except KeyError as exc:
        raise LangdecError(f"languages/{instr}.yaml: prompts.{template_name}.{benchmark} uses {{{exc.args[0]}}}, which {benchmark} items do not have ({', '.join(item.fields)})") from None


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
