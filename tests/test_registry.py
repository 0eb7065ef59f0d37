"""registry: the cell key of a version, the study's folder names, alias names, and policy files checked on load."""

from __future__ import annotations

import types

import pytest

from langdec import config, registry
from langdec.errors import LangdecError


def test_a_cells_key_and_its_arm():
    assert registry.version_key("phase-3", config.Job("2", "zh", "5k", 42)) == \
        {"phase": "phase-3", "condition": "2", "lang": "zh", "tier": "5k", "seed": "42"}
    assert registry.version_key("phase-3", config.Job("1", None, "5k", 7, "ln"))["arm"] == "ln"


def test_published_folder_names():
    tags = {"phase": "phase-3", "condition": "5", "lang": "ur", "tier": "5k", "seed": "42", "base_model": "CohereLabs/tiny-aya-base",
            "translation_model": "c4ai-aya-expanse-32b"}
    assert registry.published_path(tags) == "tiny-aya-base/condition-5-ur-5k-c4ai-aya-expanse-32b-seed42/"
    assert registry.published_path({**tags, "condition": "3", "lang": "zh"}) == "tiny-aya-base/condition-3-zh-5k-native-code-seed42/"
    assert registry.published_path({**tags, "condition": "1", "lang": "en", "arm": "ln"}) == "tiny-aya-base/condition-1-en-5k-seed42-ln/"
    assert registry.published_path({**tags, "phase": "phase-2", "condition": "2"}) == "condition-2-ur-5k/"


def test_alias_names_one_per_cell():
    version = types.SimpleNamespace(version="7", tags={"run_name": "cond2-zh-5k-s42"})
    assert registry.alias_for("paper", version) == "paper-cond2-zh-5k-s42"


def test_a_policy_with_an_unknown_rule_is_refused(tmp_path):
    bad = tmp_path / "paper.yaml"
    bad.write_text("alias: paper\nrules:\n  phase: phase-3\n  min_seed: 1\n")
    with pytest.raises(LangdecError, match="min_seed"):
        registry._read_policy(bad)
    assert registry.load_policy("paper").alias == "paper"
