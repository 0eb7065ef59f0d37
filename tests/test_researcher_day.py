"""A researcher's day on the smoke profile: try a setting beside the registered adapter, evaluate exactly the
adapter named, supersede on purpose, promote, load by alias."""

from __future__ import annotations

import json
import time

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from langdec import cli
from langdec.commands import process
from langdec.core.config import variant_name
from langdec.tracking import runs as tracking

MODEL = "langdec-smoke-adapters"
CELL = ["--condition", "2", "--lang", "es"]
EVAL = ["--data-languages", "en"]  # every benchmark (the paper policy asks for all four), one data language


def _run(capsys, *argv: str) -> dict:
    assert cli.main(["--quiet", *argv]) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


def test_variant_names_come_from_what_changes_the_adapter():
    assert variant_name(["training.lr=1e-4"]) == "lr1e-4"
    assert variant_name(["evaluation.batch_size=4"]) is None  # scoring settings leave the adapter alone
    assert variant_name(["training.warmup_ratio=0.1", "training.lora_r=8"]) == "warmup_ratio0p1-lora_r8"
    assert len(variant_name([f"training.optimizer_args={{rho: {i}}}" for i in range(20)])) <= 40


@pytest.mark.slow
def test_a_day_of_variants_evaluation_promotion_and_aliases(module_store, smoke_profile, capsys):
    client = MlflowClient()
    main = _run(capsys, "train", *CELL)
    # trying a setting makes a variant beside the cell, no --supersede needed
    variant = _run(capsys, "train", *CELL, "--set", "training.lr=1e-4")
    assert variant["registered_version"] != main["registered_version"]
    assert client.get_model_version(MODEL, variant["registered_version"]).tags["arm"] == "lr1e-4"
    # evaluate scores exactly the adapter its arguments name, and says which
    plain = _run(capsys, "evaluate", *CELL, *EVAL)
    tried = _run(capsys, "evaluate", *CELL, *EVAL, "--set", "training.lr=1e-4")
    assert (plain["registered_version"], plain["adapter_run"]) == (main["registered_version"], main["run_id"])
    assert (tried["registered_version"], tried["adapter_run"], tried["scored"]) == (
        variant["registered_version"],
        variant["run_id"],
        "cond2-es-5k-s42-lr1e-4",
    )
    assert cli.main(["--quiet", "evaluate", *CELL, *EVAL, "--arm", "never-trained"]) == 2
    assert "no adapter for cond2-es-5k-s42-never-trained" in capsys.readouterr().err
    # promotion prints what it promoted and under which alias
    for v in client.search_model_versions(f"name = '{MODEL}'"):
        client.set_model_version_tag(MODEL, v.version, "data_check_status", "passed")
    promoted = _run(capsys, "promote", "--alias", "paper")
    old_alias = "paper-cond2-es-5k-s42"
    assert promoted["promoted"][main["registered_version"]] == old_alias
    # superseding on purpose replaces the cell and takes its promotion away in the same operation
    replaced = _run(capsys, "train", *CELL, "--set", "training.lr=3e-4", "--supersede")
    old = client.get_model_version(MODEL, main["registered_version"])
    assert old.tags["superseded_by"] == replaced["registered_version"] and "paper" not in old.tags
    assert old_alias not in client.get_registered_model(MODEL).aliases
    again = _run(capsys, "evaluate", *CELL, *EVAL)
    assert not again["reused"] and again["registered_version"] == replaced["registered_version"]
    promoted = _run(capsys, "promote", "--alias", "paper")
    assert promoted["promoted"][replaced["registered_version"]] == old_alias
    assert "superseded by version" in promoted["refused"][main["registered_version"]][0]
    # loading by alias gives the new adapter
    by_alias = client.get_model_version_by_alias(MODEL, old_alias)
    assert str(by_alias.version) == replaced["registered_version"]
    assert mlflow.artifacts.download_artifacts(f"models:/{MODEL}@{old_alias}")


def test_an_mlflow_run_entry_point_leaves_no_anonymous_run_and_no_cross_experiment_parent(
    module_store, monkeypatch, tmp_path
):
    client = MlflowClient()
    shell = client.create_run(client.get_experiment_by_name("Default").experiment_id)  # what `mlflow run` makes
    monkeypatch.setenv("MLFLOW_RUN_ID", shell.info.run_id)
    tracking.experiment_id(
        "day-report"
    )  # an experiment with no evaluation yet (a report refuses one that does not exist)
    assert cli.main(["--quiet", "report", "--experiment", "day-report", "--out", str(tmp_path / "r")]) == 0
    # named for what it launched, and still there until MLflow terminates it (which it does after the command)
    assert client.get_run(shell.info.run_id).info.lifecycle_stage == "active"
    client.set_terminated(shell.info.run_id, "FINISHED")
    deadline = time.monotonic() + 60
    while client.get_run(shell.info.run_id).info.lifecycle_stage != "deleted" and time.monotonic() < deadline:
        time.sleep(0.2)
    shell = client.get_run(shell.info.run_id)
    assert shell.info.lifecycle_stage == "deleted" and shell.info.status == "FINISHED"
    assert (
        shell.data.tags["mlflow.runName"].startswith("mlflow run: langdec report")
        and "phase experiment" in shell.data.tags["mlflow.note.content"]
    )
    assert client.search_runs([client.get_experiment_by_name("Default").experiment_id]) == []  # nothing left in Default
    exp = client.get_experiment_by_name("day-report")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"  # the run list, not the GenAI view
    (run,) = client.search_runs([exp.experiment_id])
    assert "mlflow.parentRunId" not in run.data.tags


def test_loading_an_adapter_under_the_cli_prints_no_library_warning(smoke_profile, tmp_path):
    """The demo once printed transformers' `is_gradient_checkpointing` FutureWarning on every evaluation
    (peft asks for the renamed attribute); the CLI's library setup silences exactly that one."""
    import warnings

    from peft import LoraConfig, get_peft_model

    from langdec.evaluation.loading import load_local
    from langdec.models.loading import load_base_model

    get_peft_model(load_base_model(smoke_profile.model), LoraConfig(r=4, target_modules=["q_proj"])).save_pretrained(
        tmp_path
    )
    with warnings.catch_warnings(record=True) as loud:
        warnings.simplefilter("default")
        load_local(smoke_profile.model, str(tmp_path))
    if not any("is_gradient_checkpointing" in str(w.message) for w in loud):
        pytest.skip("this transformers/peft pair no longer warns; the filter in process.quiet_libraries can go")
    with warnings.catch_warnings(record=True) as quiet:
        warnings.simplefilter("default")
        process.quiet_libraries()
        load_local(smoke_profile.model, str(tmp_path))
    assert not any("is_gradient_checkpointing" in str(w.message) for w in quiet)
