"""Condition data kinds: one registry; every condition names a registered kind and every kind has its
data-check suite."""

from __future__ import annotations

import pytest

from langdec.core import config
from langdec.core.errors import LangdecError
from langdec.data import checks, kinds


def test_every_available_condition_names_a_registered_kind_with_a_suite():
    for cond in config.conditions().values():
        if not cond.data or not cond.available:
            continue
        kind = kinds.get(cond.data)
        assert kind.name == cond.data
        suite, spec = checks.suite_for(cond)
        assert cond.data in spec["applies_to"]


def test_unknown_kind_lists_the_registered_ones():
    with pytest.raises(
        LangdecError,
        match="unknown condition data kind 'community'; valid condition data kinds: "
        "code-benchmark, english, llm-translated, native, transpiled",
    ):
        kinds.get("community")


def test_what_each_kind_declares():
    assert [k for k in kinds.names() if kinds.get(k).needs_language] == ["llm-translated", "native", "transpiled"]
    assert kinds.outside_tier() == {"native", "condition-2-pool", "benchmark"}  # rows not from the English tier
    assert kinds.get("llm-translated").registry_tags(config.load_profile("smoke")) == {
        "translation_model": "langdec-local-glossary"
    }
    assert kinds.get("english").registry_tags(config.load_profile("smoke")) == {}
