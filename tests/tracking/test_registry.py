"""registry: the cell key of a version, the study's folder names, alias names, and policy files checked on load."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest
from conftest import cli_exit, one_error_line

from langdec.core import config
from langdec.core.errors import LangdecError
from langdec.tracking import registry


def test_a_cells_key_and_its_arm():
    assert registry.version_key("phase-3", config.Job("2", "zh", "5k", 42)) == {
        "phase": "phase-3",
        "condition": "2",
        "lang": "zh",
        "tier": "5k",
        "seed": "42",
    }
    assert registry.version_key("phase-3", config.Job("1", None, "5k", 7, "ln"))["arm"] == "ln"


def test_published_folder_names():
    tags = {
        "phase": "phase-3",
        "condition": "5",
        "lang": "ur",
        "tier": "5k",
        "seed": "42",
        "base_model": "CohereLabs/tiny-aya-base",
        "translation_model": "c4ai-aya-expanse-32b",
    }
    assert registry.published_path(tags) == "tiny-aya-base/condition-5-ur-5k-c4ai-aya-expanse-32b-seed42/"
    assert (
        registry.published_path({**tags, "condition": "3", "lang": "zh"})
        == "tiny-aya-base/condition-3-zh-5k-native-code-seed42/"
    )
    assert (
        registry.published_path({**tags, "condition": "1", "lang": "en", "arm": "ln"})
        == "tiny-aya-base/condition-1-en-5k-seed42-ln/"
    )
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


# ---------------------------------------------------------------------- hostile cases: policy schemas, promotion
ROOT = Path(__file__).resolve().parents[2]


_main = cli_exit


_one_error_line = one_error_line


def _policy(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "text,expected",
    [
        (
            "alias: paper\nrules:\n  benchmarkz: [xnli]\n",
            "unknown rule 'benchmarkz'; valid rules: phase, data_checks_passed",
        ),
        ("", "empty or not a mapping"),
        ("alias: paper\nrules: [phase]\n", "`rules` must be a non-empty mapping"),
        ("alias: paper\nrules:\n  min_seeds: three\n", "rules.min_seeds must be a int"),
        ("alias: paper\nrules:\n  benchmarks: [xnli, sib201]\n", "unknown benchmark 'sib201'"),
        ("alias: paper\nrules:\n  current_extractor: strictest\n", "'strictest' is not an extractor"),
        ("alias: [paper\n", "not valid YAML"),
    ],
)
def test_a_policy_is_validated_against_its_schema(tmp_path, text, expected):
    with pytest.raises(LangdecError, match="policy.yaml: .*" if text else "policy.yaml"):
        registry._read_policy(_policy(tmp_path, text))
    with pytest.raises(LangdecError) as info:
        registry._read_policy(_policy(tmp_path, text))
    assert expected in str(info.value)


def test_the_shipped_policies_are_valid():
    for path in (ROOT / "registry").glob("*.yaml"):
        assert registry._read_policy(path)["rules"]


def test_promoting_a_version_that_does_not_exist_is_an_error(capsys, store):
    code, err = _main(capsys, "promote", "--version", "99")
    assert code == 2 and "has no version 99" in _one_error_line(err)


@pytest.mark.slow
def test_promotion_waits_for_the_registered_models_lock(module_store, tmp_path):
    import threading

    lines: list[str] = []
    with registry.model_lock("langdec-smoke-adapters", "a registration in another process"):
        proc = subprocess.Popen(
            [sys.executable, "-m", "langdec.cli", "--quiet", "promote", "--alias", "paper"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
        reader.start()
        deadline = time.monotonic() + 120
        while not any("waiting for" in line for line in lines) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        time.sleep(1)
        # blocked: it would otherwise promote from a registry that a supersede is changing
        assert proc.poll() is None and any("promoting langdec-smoke-adapters to paper" in line for line in lines)
    out = proc.stdout.read()
    assert proc.wait(timeout=120) == 0 and json.loads(out)["registered_model"] == "langdec-smoke-adapters"


def test_a_version_removed_again_leaves_its_logged_models_version_list(store, tmp_path):
    """_converge removes a redundant version it created; the logged model stops naming it (the model's page would
    otherwise link a version that is gone)."""
    from mlflow.tracking import MlflowClient

    from langdec.tracking import logged_models

    client = MlflowClient()
    run = client.create_run(client.create_experiment("linked"))
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text("{}")
    model_id = logged_models.begin(run.info.run_id, name="adapter", params={}, tags={})
    logged_models.finish(model_id, tmp_path / "adapter")
    client.create_registered_model("linked")
    kept, removed = (client.create_model_version("linked", f"models:/{model_id}", run.info.run_id) for _ in range(2))
    for v in (kept, removed):
        logged_models.link_version(model_id, "linked", v.version)
    registry._delete("linked", removed)
    listed = json.loads(client.get_logged_model(model_id).tags["mlflow.modelVersions"])
    assert listed == [{"name": "linked", "version": str(kept.version)}]
    assert [v.version for v in client.search_model_versions("name = 'linked'")] == [kept.version]
    assert logged_models.model_of_run(run.info.run_id) == model_id
    assert logged_models.adapter_uri(run.info.run_id) == f"models:/{model_id}"
