"""Extraction steps, registered by name: the pieces extractor chains are built from.

A step takes the previous value (text) and returns new text, or the final label
(None = no answer). This module holds langdec's own steps; the study's two
extractors are steps in `study_steps`. Chains are declared per benchmark (`extractors:` in its file).
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from langdec.core.registry import Registry
from langdec.evaluation.prompts import and_words, answer_words

Step = Callable[[str, "Context"], "str | None"]
STEPS: Registry[Step] = Registry("extractor step")


@dataclass(frozen=True)
class Context:
    benchmark: str
    labels: tuple[str, ...]
    task: str = ""


step = STEPS.register  # @step: a step under its function's name


class Label(str):
    """A step's final answer, with the name of the rule that read it: the chain stops here (a plain string
    goes on to the next step as text) and the rule is stored beside the label (`Extractor.trace`)."""

    rule: str

    def __new__(cls, value: str, rule: str) -> "Label":
        made = super().__new__(cls, value)
        made.rule = rule
        return made


_LEADING = set("\"'`*_([")
_TRAILING = set("\"'`*_)].。:：!！?？،۔")


def _norm(text: str) -> str:
    """NFKC, lower case, quotes/brackets/punctuation and whitespace off both ends, whitespace runs as one space.

    Linear in the answer's length: a regex anchored at the end ([...]+$) retries from every position, which
    took minutes on a long blank answer."""
    text = " ".join(unicodedata.normalize("NFKC", text).lower().split())
    start, end = 0, len(text)
    while start < end and (text[start].isspace() or text[start] in _LEADING):
        start += 1
    while end > start and (text[end - 1].isspace() or text[end - 1] in _TRAILING):
        end -= 1
    return text[start:end]


@step
def first_line(text: str, ctx: Context) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


@functools.lru_cache(maxsize=None)  # the report calls extractors once per stored answer
def _terms(ctx: Context, *, first_only: bool) -> dict[str, str]:
    """English label words plus native answer words (all of them, or the first per label as strict had)."""
    terms = {label.lower(): label for label in ctx.labels}
    for table in answer_words(ctx.benchmark).values():
        for label, words in table.items():
            for word in words[:1] if first_only else words:
                terms.setdefault(_norm(word), label)
    return terms


@step
def strict_label(text: str, ctx: Context) -> str | None:
    norm = _norm(text)
    terms = _terms(ctx, first_only=True)
    if norm in terms:
        return terms[norm]
    for term in sorted(terms, key=len, reverse=True):  # "neutral." / "sports news"
        if norm.startswith(term) and (len(norm) == len(term) or not norm[len(term)].isalnum()):
            return terms[term]
    return None


@functools.lru_cache(maxsize=1)
def _splitter() -> re.Pattern:
    joiners = "|".join(re.escape(w) for w in sorted(and_words(), key=len, reverse=True))
    return re.compile(rf"\s*(?:[/,&+;、，；]|\s(?:{joiners})\s)\s*")


def _split(text: str) -> list[str]:
    return [p for p in (_norm(p) for p in _splitter().split(text)) if p]


@step
def refined_label(text: str, ctx: Context) -> str | None:
    terms = _terms(ctx, first_only=False)
    norm = _norm(text)
    if norm in terms:
        return terms[norm]
    found = {terms[p] for p in _split(norm) if p in terms}
    if not found:
        # No part is a label on its own: look for label terms inside the answer (a word on its own for a
        # Latin-script term, anywhere for the rest); the substring test first, as most terms are absent.
        for term, label in terms.items():
            if term in norm and (not term.isascii() or _whole_word(term).search(norm)):
                found.add(label)
    return found.pop() if len(found) == 1 else None  # two or more labels is a hedge


@functools.lru_cache(maxsize=None)
def _whole_word(term: str) -> re.Pattern:
    return re.compile(rf"(?<![\w]){re.escape(term)}(?![\w])")


@step
def leading_letter(text: str, ctx: Context) -> str | None:
    letters = "".join(ctx.labels)
    match = re.match(rf"^\s*[(\[]?([{letters}])(?:[)\].:,\s]|$)", text)
    return match.group(1) if match else None


@step
def refined_letter(text: str, ctx: Context) -> str | None:
    text = unicodedata.normalize("NFKC", text)
    letters = "".join(ctx.labels)
    lead = leading_letter(text, ctx)
    if lead:
        return lead
    standalone = set(re.findall(rf"(?<![A-Za-z])([{letters}])(?![A-Za-z])", text))
    return standalone.pop() if len(standalone) == 1 else None


def _numbers(text: str) -> list[str]:
    digits = "".join(
        str(unicodedata.decimal(c)) if unicodedata.decimal(c, None) is not None else c
        for c in unicodedata.normalize("NFKC", text)
    )
    found = re.findall(r"-?\d[\d,]*(?:\.\d+)?", digits)
    out = []
    for number in found:
        number = number.replace(",", "").rstrip(".")
        if number.endswith(".0"):
            number = number[:-2]
        out.append(number)
    return out


@step
def first_number(text: str, ctx: Context) -> str | None:
    numbers = _numbers(text)
    return numbers[0] if numbers else None


@step
def last_number(text: str, ctx: Context) -> str | None:
    numbers = _numbers(text)
    return numbers[-1] if numbers else None
