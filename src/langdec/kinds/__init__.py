"""Condition data kinds, by name: how a condition's training rows are made from the English tier.

`experiments/conditions.yaml` names a kind per condition (`data:`). A kind is one module here that
defines `KIND` (its rows, the version that keys its processing, the columns its data-check suite
measures); adding one is that module, its line in KINDS, and a suite in `data_checks/` whose
`applies_to` names it."""

from __future__ import annotations

from ..errors import did_you_mean
from . import code_benchmark, english, llm_translated, native, transpiled
from .base import Build, DataKind, Rows

KINDS: dict[str, DataKind] = {k.name: k for k in (english.KIND, transpiled.KIND, llm_translated.KIND, native.KIND,
                                                  code_benchmark.KIND)}

__all__ = ["Build", "DataKind", "KINDS", "Rows", "get", "names", "outside_tier"]


def get(name: str | None) -> DataKind:
    if name not in KINDS:
        raise did_you_mean("condition data kind", str(name), KINDS)
    return KINDS[name]


def names() -> list[str]:
    return sorted(KINDS)


def outside_tier() -> set[str]:
    """`origin` values of rows that do not come from the English tier."""
    return {origin for k in KINDS.values() for origin in k.outside_tier}
