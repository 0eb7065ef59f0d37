"""The translation request and its answer: one JSON object of units in, one JSON object out.

PROMPT_VERSION is part of every cache key: change the wording and old answers
are no longer reused. The request embeds the units as JSON after a fixed marker,
so any chat model (and the local stand-in server) reads the same thing.
"""

from __future__ import annotations

import json
import re

from langdec.data.translation.units import Unit

PROMPT_VERSION = "cond5-v1"
MARKER = "UNITS:"

SYSTEM = "You translate the human-language text of Python programs. You answer with one JSON object and nothing else."

RULES = """Translate every unit below from English into {name} ({code}).
- identifier: a Python name. Answer a valid Python identifier in {name} (letters of its script, digits, underscores; no spaces, no hyphens), snake_case words joined with _, keeping CamelCase for class names. Never answer a Python keyword or a built-in name.
- comment, docstring, string: translate the text. Keep every placeholder ({{name}}, {{0}}, %s, %(key)s, %d) exactly as written, keep line breaks, do not add quotes.
Answer with one JSON object mapping every unit key (i0, c0, s0, ...) to its translation as a string, and nothing else."""


class MalformedOutput(ValueError):
    """The model's answer is not the JSON object the request asked for."""


def messages(units: list[Unit], lang_code: str, lang_name: str, *, rejected: str | None = None) -> list[dict[str, str]]:
    payload = {"language": lang_code, "units": {u.key: {"kind": u.kind, "text": u.text} for u in units}}
    user = RULES.format(name=lang_name, code=lang_code)
    if rejected:
        # the retry differs from the first request, so it is its own cache entry
        user += f"\nYour previous answer was rejected: {rejected}. Follow the rules exactly."
    user += f"\n{MARKER}\n" + json.dumps(payload, ensure_ascii=False)
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def read_request(content: str) -> tuple[str, dict[str, dict[str, str]]]:
    """(language, units) from a request's user message; used by the local server."""
    _, marker, rest = content.rpartition(MARKER)
    if not marker:
        raise ValueError(f"no {MARKER} block in the request")
    payload = json.loads(rest)
    return payload["language"], payload["units"]


def parse_answer(text: str) -> dict[str, str]:
    """The unit map from a model's answer; tolerates a ```json fence and prose around the object."""
    fenced = re.search(r"```(?:json)?\s*(\{.*\})\s*```", text, re.DOTALL)
    body = fenced.group(1) if fenced else text[text.find("{") : text.rfind("}") + 1]
    if not body:
        raise MalformedOutput(f"no JSON object in the answer (starts {text[:60]!r})")
    try:
        value = json.loads(body)
    except json.JSONDecodeError as exc:
        raise MalformedOutput(f"answer is not valid JSON ({exc.msg} at char {exc.pos})") from None
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise MalformedOutput("answer is not a JSON object of strings")
    return value
