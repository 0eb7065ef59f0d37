"""The study's two extractors as registered steps, reading their tables from
experiments/extractor_terms/study.yaml.

`strict_*` behave as the inference-time extractor in the study's evaluate.ipynb and
`refined_*` as its reparse_results.py; `study_choice` is the letter rule both share.
Each step takes the raw model output and returns a label or None. Behaviour that looks
odd is the study's and deliberate here: plain substring matching of native words,
first match in table order, a compound naming two categories left unanswered.
"""

from __future__ import annotations

import functools
import re

import yaml

from langdec.core.errors import LangdecError
from langdec.core.paths import experiments_dir
from langdec.evaluation.extract_steps import Context, Label, step

TERMS_FILE = "extractor_terms/study.yaml"


@functools.lru_cache(maxsize=1)
def terms() -> dict:
    path = experiments_dir() / TERMS_FILE
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise LangdecError(f"{path}: cannot read the study's extractor tables ({exc})") from None
    for kind in ("strict", "refined"):
        for bench in ("xnli", "sib200"):
            if not isinstance((data or {}).get(kind, {}).get(bench), dict):
                raise LangdecError(f"{path}: missing table {kind}.{bench}")
    return data


def _first_line(text: str) -> str:
    # The study splits on "\n" only, after stripping the whole answer.
    return text.strip().split("\n")[0].strip()


@functools.lru_cache(maxsize=None)
def _word_patterns(labels: tuple[str, ...]) -> tuple[tuple[str, re.Pattern], ...]:
    return tuple((label, re.compile(rf"\b{re.escape(label)}\b")) for label in labels)


def _english_label(lowered: str, labels: list[str]) -> str | None:
    for label, pattern in _word_patterns(tuple(labels)):
        if pattern.search(lowered):
            return label
    return None


def _native_label(lowered: str, native: dict[str, str]) -> str | None:
    for word, label in native.items():
        if word.lower() in lowered:
            return label
    return None


@step
def strict_xnli(text: str, ctx: Context) -> str | None:
    table = terms()["strict"]["xnli"]
    lowered = _first_line(text).lower()
    return _english_label(lowered, table["labels"]) or _native_label(lowered, table["native"])


@step
def strict_sib200(text: str, ctx: Context) -> str | None:
    table = terms()["strict"]["sib200"]
    lowered = _first_line(text).strip(table["strip"]).lower()
    science = table["science_label"]
    if lowered.startswith(tuple(table["science_prefixes"])):
        return science
    if any(phrase.lower() in lowered for phrase in table["native_science"]):
        return science
    if lowered in table["bare_subtopics"]:
        return science
    for category in table["categories"]:
        if category in lowered:
            return category
    return table["aliases"].get(lowered)


def _choice(text: str, labels: tuple[str, ...]) -> tuple[str | None, str]:
    line = _first_line(text.strip().upper())
    letters = re.escape("".join(labels))
    found = re.search(rf"\b([{letters}])\b", line)
    if found:
        return found.group(1), "letter"
    found = re.search(rf"ANSWER\s*[:\-]?\s*([{letters}])", line)
    return (found.group(1), "answer_prefix") if found else (None, NOTHING)


@step
def study_choice(text: str, ctx: Context) -> str | None:
    label, rule = _choice(text, ctx.labels)
    return Label(label, rule) if label else None


# What the refined rules decided when they give no label: NOTHING (no rule saw an answer) or a deliberate
# refusal the study documented (refined-decision-ledger.md): a compound naming two categories, or a label the
# line negates ("没有entailment").
NOTHING = "nothing"
HEDGE = "hedge"
NEGATED = "negated"
XNLI_TIERS = ("tier1a_english", "tier1b_native", "tier2_glued", "tier3_paraphrase")


def _refined_xnli(text: str) -> tuple[str | None, str]:
    table = terms()["refined"]["xnli"]
    line = _first_line(text)
    lowered = line.lower()
    found = _english_label(lowered, table["labels"])
    if found:
        return found, XNLI_TIERS[0]
    found = _native_label(lowered, table["native"])
    if found:
        return found, XNLI_TIERS[1]
    negated = any(neg in line for neg in table["glued_negations"])
    # An English label glued to a CJK frame, unless the line negates it.
    glued = next((label for label in table["labels"] if label in lowered), None)
    if glued and not negated:
        return glued, XNLI_TIERS[2]
    for pattern, label in _paraphrases():
        if pattern.search(line):
            return label, XNLI_TIERS[3]
    return None, NEGATED if glued else NOTHING


@step
def refined_xnli(text: str, ctx: Context) -> str | None:
    label, rule = _refined_xnli(text)
    return Label(label, rule) if label else None


@functools.lru_cache(maxsize=1)
def _paraphrases() -> tuple[tuple[re.Pattern, str], ...]:
    return tuple((re.compile(p), label) for p, label in terms()["refined"]["xnli"]["paraphrases"])


def _pieces(line: str, table: dict) -> list[str]:
    for conjunction in table["conjunctions"]:
        line = line.replace(conjunction, "/")
    parts = re.split(f"[{re.escape(table['separators'])}]", line)
    strip = table["strip"]
    return [p.strip().strip(strip).strip() for p in parts if p.strip()]


def _refined_sib200(text: str) -> tuple[str | None, str]:
    table = terms()["refined"]["sib200"]
    line = _first_line(text).strip(table["strip"])
    if not line:
        return None, NOTHING
    found = {table["terms"][p.lower()] for p in _pieces(line, table) if p.lower() in table["terms"]}
    rule = "term"
    if not found:
        # a category name inside a longer answer, also glued to CJK text ("答案是travel")
        lowered = line.lower()
        found = {c for c in table["categories"] if c in lowered}
        rule = "substring"
    if len(found) == 1:
        return found.pop(), rule
    return None, HEDGE if found else NOTHING  # two or more categories is a hedge


@step
def refined_sib200(text: str, ctx: Context) -> str | None:
    label, rule = _refined_sib200(text)
    return Label(label, rule) if label else None


@step
def study_refined(text: str, ctx: Context) -> str | None:
    """The refined extractor's decision first: its label (final), its deliberate refusals (a hedge, a negated
    label: no answer), and where it saw nothing the text goes on to the next step of the chain."""
    if ctx.benchmark == "xnli":
        label, rule = _refined_xnli(text)
    elif ctx.benchmark == "sib200":
        label, rule = _refined_sib200(text)
    elif ctx.task == "multiple_choice":
        label, rule = _choice(text, ctx.labels)
    else:
        return text
    if label:
        return Label(label, f"refined:{rule}")
    return None if rule in (HEDGE, NEGATED) else text
