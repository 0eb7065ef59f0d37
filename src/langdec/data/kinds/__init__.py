"""Condition data kinds, by name: how a condition's training rows are made from the English tier.

`experiments/conditions.yaml` names a kind per condition (`data:`). A kind is one module here that
defines `KIND` (its rows, the version that keys its processing, the columns its data-check suite
measures); adding one is that module, its line in KINDS, and a suite in `data_checks/` whose
`applies_to` names it."""

from __future__ import annotations

from langdec.core.registry import Registry
from langdec.data.kinds import code_benchmark, english, llm_translated, native, transpiled
from langdec.data.kinds.base import Build, DataKind, Rows

KINDS: Registry[DataKind] = Registry(
    "condition data kind",
    {k.name: k for k in (english.KIND, transpiled.KIND, llm_translated.KIND, native.KIND, code_benchmark.KIND)},
)

__all__ = ["Build", "DataKind", "KINDS", "Rows", "get", "names", "outside_tier"]


get = KINDS.get  # a condition's `data:` (None for the baseline fails, listing the kinds)
names = KINDS.names


def outside_tier() -> set[str]:
    """`origin` values of rows that do not come from the English tier."""
    return {origin for k in KINDS.values() for origin in k.outside_tier}
