"""Instruction templates, grouped in named template sets (experiments/prompts/<set>.yaml).

A set file declares the set (description, source, `fallback`); each benchmark's file holds its
own wording per set (`prompts: <set>: template -> instruction language -> text`, formatted with
an item's fields). `study` (the study's own wording, preprocess.ipynb) is the default; `langdec`
keeps langdec's earlier wording. A set's `fallback` supplies benchmarks it lacks (the study
published no MGSM prompts), and `resolve` says which set a prompt really came from, so a run can
record it.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

from langdec.core import languages
from langdec.core.errors import LangdecError, did_you_mean
from langdec.core.paths import experiments_dir
from langdec.core.schema import build, read_yaml
from langdec.evaluation import benchmarks
from langdec.evaluation.benchmarks import Item

DEFAULT_SET = "study"


@dataclass(frozen=True)
class PromptSet:
    name: str
    description: str = ""
    fallback: str | None = None
    source: str = ""  # where the set's wording comes from; each benchmark's wording names its own part
    path: Path | None = None


def prompts_dir() -> Path:
    return experiments_dir() / "prompts"


@functools.lru_cache(maxsize=1)
def prompt_sets() -> dict[str, PromptSet]:
    out: dict[str, PromptSet] = {}
    for path in sorted(prompts_dir().glob("*.yaml")):
        data = read_yaml(path)
        if "templates" in data:
            raise LangdecError(
                f"{path}: `templates:` moved into the benchmark files; give each benchmark's wording as "
                f"`prompts: {path.stem}: ...` in experiments/benchmarks/<name>.yaml"
            )
        if "name" in data or "path" in data:
            raise LangdecError(f"{path}: a set is named by its file; valid keys: description, fallback, source")
        out[path.stem] = build(PromptSet, {**data, "name": path.stem, "path": str(path)}, str(path))
    for s in out.values():
        if s.fallback is not None and s.fallback not in out:
            raise LangdecError(
                f"{s.path}: fallback {s.fallback!r} is not a template set; sets: {', '.join(sorted(out))}"
            )
    for name in benchmarks.benchmark_names():
        bench = benchmarks.get(name)
        unknown = sorted(set(bench.prompts) - set(out))
        if unknown:
            raise LangdecError(
                f"{bench.path}: prompts.{unknown[0]} is not a template set (experiments/prompts/); "
                f"sets: {', '.join(sorted(out))}"
            )
    return out


def get_set(name: str) -> PromptSet:
    found = prompt_sets().get(name)
    if found is None:
        raise did_you_mean("prompt template set", name, prompt_sets())
    return found


def resolve(set_name: str, template_name: str, benchmark: str, instr: str) -> tuple[str, str]:
    """(text, name of the set that supplied it), following `fallback` for a benchmark the set lacks; a variant
    benchmark (`like:`) takes its family's wording."""
    bench = benchmarks.get(benchmarks.family(benchmark))
    seen: list[str] = []
    name: str | None = set_name
    while name is not None and name not in seen:
        seen.append(name)
        fallback = get_set(name).fallback  # an unknown set fails here, listing the valid ones
        by_template = bench.templates(name)
        if by_template:
            if template_name not in by_template:
                raise LangdecError(
                    f"{bench.path}: prompts.{name} has no template {template_name!r}; it has {', '.join(by_template)}"
                )
            by_lang = by_template[template_name]
            lang = languages.normalise(instr)
            if lang not in by_lang:
                raise LangdecError(
                    f"{bench.path}: prompts.{name}.{template_name} has no instruction language {lang!r}; "
                    f"it has {', '.join(by_lang)}"
                )
            return by_lang[lang], name
        name = fallback
    raise LangdecError(
        f"{bench.path}: no prompts in template set(s) {', '.join(seen)}; give `prompts: {set_name}: ...`"
    )


def instruction_languages(set_name: str = DEFAULT_SET) -> list[str]:
    """Languages every template of the set is written in, i.e. the possible instruction languages."""
    get_set(set_name)
    common: set[str] | None = None
    for name in benchmarks.benchmark_names():
        for by_lang in benchmarks.get(name).templates(set_name).values():
            common = set(by_lang) if common is None else common & set(by_lang)
    return sorted(common or ())


def template(template_name: str, benchmark: str, instr: str, set_name: str = DEFAULT_SET) -> str:
    return resolve(set_name, template_name, benchmark, instr)[0]


def render(template_name: str, benchmark: str, instr: str, item: Item, set_name: str = DEFAULT_SET) -> str:
    text, source = resolve(set_name, template_name, benchmark, instr)
    try:
        return text.format(**item.fields)
    except KeyError as exc:
        path = benchmarks.get(benchmarks.family(benchmark)).path
        raise LangdecError(
            f"{path}: prompts.{source}.{template_name}.{instr} uses {{{exc.args[0]}}}, which "
            f"{benchmark} items do not have ({', '.join(item.fields)})"
        ) from None


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
                raise LangdecError(
                    f"{lang.path}: answers.{benchmark}.{label} must be a list of strings (quote yes/no/true/false)"
                )
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
