"""The smoke ladder end to end through the CLI, into a real MLflow store; then reuse,
reparse, promotion, report and the MLproject entry points."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient

from langdec import cli
from langdec.core import config
from langdec.evaluation import backends, matrix, stage
from langdec.evaluation import records as items
from langdec.tracking import registry
from langdec.tracking import runs as tracking

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENT = "phase-3-smoke"

# every test here reads the `ladder` fixture, which trains and evaluates the smoke ladder
pytestmark = pytest.mark.slow


def _runs(stage_name: str):
    return MlflowClient().search_runs(
        [tracking.experiment_id(EXPERIMENT)], f"tags.`langdec.stage` = '{stage_name}'", max_results=500
    )


@pytest.fixture(scope="module")
def ladder(module_store, smoke_profile, capsys_module=None):
    import io
    from contextlib import redirect_stdout

    out = io.StringIO()
    with redirect_stdout(out):
        code = cli.main(["--quiet", "ladder", str(ROOT / "experiments/ladders/smoke.yaml")])
    return code, out.getvalue()


@pytest.mark.slow
def test_ladder_runs_every_stage(ladder):
    code, output = ladder
    assert code == 0, output
    assert "9 of 9 jobs ok" in output
    assert "browse the runs: langdec ui" in output
    assert "gen.refined accuracy" in output and "ll accuracy" in output
    for group in (
        "baseline",
        "cond1",
        "cond2-zh",
        "cond2-es",
        "cond2-ur",
        "cond3-zh",
        "cond5-zh",
        "cond5-es",
        "cond5-ur",
    ):
        assert group in output
    counts = {s: len(_runs(s)) for s in ("transpile", "check", "train", "evaluate", "ladder", "report")}
    assert counts == {"transpile": 8, "check": 8, "train": 8, "evaluate": 9, "ladder": 1, "report": 1}
    parent = _runs("ladder")[0].info.run_id
    assert all(r.data.tags.get("mlflow.parentRunId") == parent for r in _runs("train") + _runs("evaluate"))
    names = sorted(r.info.run_name for r in _runs("train"))
    assert names == [
        "cond1-5k-s42",
        "cond2-es-5k-s42",
        "cond2-ur-5k-s42",
        "cond2-zh-5k-s42",
        "cond3-zh-5k-s42",
        "cond5-es-5k-s42",
        "cond5-ur-5k-s42",
        "cond5-zh-5k-s42",
    ]
    # condition 5's data stage logged what the translation cost; condition 3's, its blend
    data_runs = {r.info.run_name: r for r in _runs("transpile")}
    cond5 = data_runs["cond5-zh-5k-s42-data"].data
    assert cond5.params["translation.backend"] == "openai" and cond5.metrics["translation.translated"] > 0
    assert cond5.metrics["translation.aligned_files"] <= cond5.metrics["translation.input_files"]
    assert data_runs["cond3-zh-5k-s42-data"].data.metrics["blend.native_files"] == 8


@pytest.mark.slow
def test_every_matrix_cell_is_logged(ladder):
    langs = ["en", "zh", "es", "ur"]
    profile = config.load_profile("smoke")
    for run in _runs("evaluate"):
        tags = run.data.tags
        cond = config.condition(tags["condition"])
        expected = matrix.cells(
            cond, tags["lang"] or None, langs, profile.evaluation.benchmarks, profile.evaluation.templates
        )
        for extractor in ("strict", "refined"):
            logged = {k for k in run.data.metrics if k.startswith(f"gen.{extractor}.") and k.endswith(".acc")}
            assert logged == {matrix.gen_key(extractor, c) for c in expected}
        assert len(expected) == (152 if tags["condition"] in ("baseline", "1") else 76)
        assert {k for k in run.data.metrics if k.startswith("ll.") and k.endswith(".acc")} == {
            matrix.ll_key(b, d) for b in ("xnli", "sib200", "belebele", "xcsqa") for d in langs
        }
        stored = items.read(run.info.run_id)
        assert stored.num_rows == run.data.metrics["eval.items"]
        assert {
            "cell",
            "item_id",
            "prompt_hash",
            "output",
            "gold",
            "pred.refined",
            "correct.refined",
            "rule.refined",
        } <= set(stored.column_names)
        assert tags["langdec.extractor.refined"] and tags["langdec.extractor.strict"]
        assert items.versions_of(stored)["refined"] == tags["langdec.extractor.refined"]


def test_versions_registered_and_marked_evaluated(ladder):
    versions = MlflowClient().search_model_versions("name = 'langdec-smoke-adapters'")
    assert len(versions) == 8
    assert {v.tags["evaluation_status"] for v in versions} == {"evaluated"}
    assert {(v.tags["condition"], v.tags["lang"]) for v in versions} == {
        ("1", "en"),
        ("2", "zh"),
        ("2", "es"),
        ("2", "ur"),
        ("3", "zh"),
        ("5", "zh"),
        ("5", "es"),
        ("5", "ur"),
    }


@pytest.mark.slow
def test_rerun_reuses_finished_work(ladder):
    import io
    from contextlib import redirect_stdout

    before = {s: len(_runs(s)) for s in ("transpile", "check", "train", "evaluate")}
    out = io.StringIO()
    with redirect_stdout(out):
        assert cli.main(["--quiet", "ladder", str(ROOT / "experiments/ladders/smoke.yaml")]) == 0
    assert {s: len(_runs(s)) for s in before} == before
    assert out.getvalue().count("reused in") == 9


def test_reparse_rescoring_without_the_model(ladder, monkeypatch):
    """Store realistic generations in an evaluation run as an older langdec did (generations.jsonl), then re-score
    them with each extractor: the run is labelled once into items.parquet and re-scored without a model."""
    base = [r for r in _runs("evaluate") if r.data.tags["condition"] == "baseline"][0]
    keep = ["cell", "template", "benchmark", "data", "instr", "tier", "item_id", "prompt_hash", "gold", "output"]
    records = items.read(base.info.run_id, keep).to_pylist()
    sib = [r for r in records if r["benchmark"] == "sib200"]
    answers = {
        "science/technology": "science and technology",
        "sports": "体育",
        "politics": "Politics.",
        "travel": "It is about travel",
        "health": "صحت",
        "entertainment": "entertainment",
        "geography": "geography / travel",
    }
    for r in sib:
        r["output"] = answers[r["gold"]]
    mlflow.set_experiment(EXPERIMENT)
    with mlflow.start_run(
        run_name="stored-generations", tags={"langdec.stage": "evaluate", "condition": "baseline"}
    ) as run:
        mlflow.log_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in sib), items.LEGACY)

    def no_model(*a, **k):
        raise AssertionError("reparse must not load a model")

    monkeypatch.setattr(backends, "load", no_model)
    strict = stage.reparse(run.info.run_id, "strict")
    refined = stage.reparse(run.info.run_id, "refined")
    key = "template1.sib200.data:en.instr:en.acc"
    gold = [r["gold"] for r in sib if r["cell"] == "template1.sib200.data:en.instr:en"]
    # the study's strict: English names by substring, first in its category order ("geography / travel" -> travel),
    # no native words here; refined: also native words (体育, صحت), and "geography / travel" is a hedge
    strict_ok = {"science/technology", "politics", "travel", "entertainment"}
    refined_ok = {"science/technology", "sports", "politics", "travel", "health", "entertainment"}
    expect_strict = sum(g in strict_ok for g in gold) / len(gold)
    expect_refined = sum(g in refined_ok for g in gold) / len(gold)
    assert expect_strict != expect_refined
    assert strict[f"gen.strict.{key}"] == pytest.approx(expect_strict)
    assert refined[f"gen.refined.{key}"] == pytest.approx(expect_refined)
    metrics = mlflow.get_run(run.info.run_id).data.metrics
    assert metrics[f"gen.strict.{key}"] == pytest.approx(expect_strict)
    assert metrics[f"gen.refined.{key}"] == pytest.approx(expect_refined)
    stored = items.read(run.info.run_id).to_pandas()
    assert len(stored) == len(sib) and stored["correct.refined"].mean() == pytest.approx(
        sum(r["gold"] in refined_ok for r in sib) / len(sib)
    )


def test_promotion_by_policy(ladder):
    client = MlflowClient()
    versions = sorted(client.search_model_versions("name = 'langdec-smoke-adapters'"), key=lambda v: int(v.version))
    client.set_model_version_tag("langdec-smoke-adapters", versions[0].version, "data_check_status", "failed")
    result = registry.promote("langdec-smoke-adapters", "paper")
    assert list(result.refused) == [versions[0].version]
    assert "data checks are 'failed'" in result.refused[versions[0].version][0]
    assert result.promoted == {v.version: f"paper-{v.tags['run_name']}" for v in versions[1:]}
    model = client.get_registered_model("langdec-smoke-adapters")
    assert set(model.aliases) == {f"paper-{v.tags['run_name']}" for v in versions[1:]}
    assert client.get_model_version("langdec-smoke-adapters", versions[1].version).tags["paper"] == "true"


def test_report_written_with_plot(ladder, module_store):
    from langdec.core.paths import work_dir

    folder = work_dir() / "reports" / EXPERIMENT
    text = (folder / "report.md").read_text()
    assert "| condition |" in text and "cond2-ur" in text
    for figure in ("delta_heatmap.png", "delta_by_instruction.png", "seed_spread.png"):
        assert (folder / figure).stat().st_size > 1000
    cells = json.loads((folder / "report.json").read_text())["cells"]
    groups = {c["group"] for c in cells}
    assert groups == {
        "baseline",
        "cond1",
        "cond2-zh",
        "cond2-es",
        "cond2-ur",
        "cond3-zh",
        "cond5-zh",
        "cond5-es",
        "cond5-ur",
    }
    # each (group, benchmark, data language, kind) is counted once, whatever the templates and instruction languages
    keys = [(c["group"], c["benchmark"], c["data"], c["kind"]) for c in cells]
    assert len(keys) == len(set(keys))


def _mlflow_run(*args: str, uri: str) -> subprocess.CompletedProcess:
    # `mlflow run` calls `langdec` by name, as a user with the venv activated would
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_DISABLE_TELEMETRY": "true", "PATH": path}
    return subprocess.run(
        [sys.executable, "-m", "mlflow", "run", str(ROOT), "--env-manager", "local", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=600,
    )


@pytest.mark.slow
def test_mlflow_run_entry_points(ladder, module_store):
    cond4 = _mlflow_run("-e", "train", "-P", "condition=4", "-P", "lang=ur", uri=module_store)
    assert cond4.returncode != 0
    assert "the study has no condition-4 data yet" in cond4.stderr + cond4.stdout
    check = _mlflow_run("-e", "check", "-P", "condition=2", "-P", "lang=zh", uri=module_store)
    assert check.returncode == 0, check.stderr[-2000:]
    assert '"status": "passed"' in check.stdout
    # the runs `mlflow run` made for both entry points (in whatever experiment it was given: here the one this
    # process last set, through MLFLOW_EXPERIMENT_ID) are deleted once MLflow has terminated them, and `mlflow run`
    # itself reported no error doing so
    assert "Traceback" not in check.stderr and "Traceback" not in cond4.stderr
    client = MlflowClient(module_store)
    every = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)]
    entry = "tags.`langdec.stage` = 'mlflow-run'"
    deadline = time.monotonic() + 60
    while client.search_runs(every, entry) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert client.search_runs(every, entry) == []
    removed = client.search_runs(every, entry, run_view_type=ViewType.DELETED_ONLY)
    assert sorted(r.info.status for r in removed) == ["FAILED", "FINISHED"]
    assert sorted(r.info.run_name for r in removed) == [
        "mlflow run: langdec check --condition 2 --lang",
        "mlflow run: langdec train --condition 4 --lang",
    ]


def test_manifest_and_export_in_the_published_layout(ladder, tmp_path):
    from peft import PeftModel

    from langdec.models.loading import load_base_model

    client = MlflowClient()
    for v in client.search_model_versions("name = 'langdec-smoke-adapters'"):
        client.set_model_version_tag("langdec-smoke-adapters", v.version, "data_check_status", "passed")
    registry.promote("langdec-smoke-adapters", "paper")
    dest = tmp_path / "published"
    manifest = registry.export("langdec-smoke-adapters", "paper", dest)
    # the study's names: condition 1 keeps "en", condition 3 says native-code, condition 5 names its translation model
    assert sorted(manifest) == [
        "smoke/condition-1-en-5k-seed42/",
        "smoke/condition-2-es-5k-seed42/",
        "smoke/condition-2-ur-5k-seed42/",
        "smoke/condition-2-zh-5k-seed42/",
        "smoke/condition-3-zh-5k-native-code-seed42/",
        "smoke/condition-5-es-5k-langdec-local-glossary-seed42/",
        "smoke/condition-5-ur-5k-langdec-local-glossary-seed42/",
        "smoke/condition-5-zh-5k-langdec-local-glossary-seed42/",
    ]
    entry = manifest["smoke/condition-2-zh-5k-seed42/"]
    assert entry["phase"] == "phase-3" and entry["condition"] == "2" and len(entry["digests"]["adapter_sha256"]) == 64
    assert json.loads((dest / "manifest.json").read_text()) == manifest
    assert "`smoke/condition-2-ur-5k-seed42/`" in (dest / "MANIFEST.md").read_text()
    # the weights follow the umask like every other file, in the export and in the store (safetensors writes 0600)
    umask = os.umask(0)
    os.umask(umask)
    exported = [p for p in dest.rglob("*") if p.is_file()]
    assert exported and {p.stat().st_mode & 0o777 for p in exported} == {0o666 & ~umask}
    source = client.get_model_version("langdec-smoke-adapters", "1").source  # the version's logged model
    stored = Path(client.get_logged_model(source.removeprefix("models:/")).artifact_location.removeprefix("file://"))
    assert (stored / "adapter_model.safetensors").stat().st_mode & 0o777 == 0o666 & ~umask
    # every exported LoRA is one vLLM's loader takes, and SERVING.md names each as a LoRA module
    assert all(m["vllm"] == {"loads": True, "problems": []} for m in manifest.values())
    serve = (dest / "SERVING.md").read_text()
    assert "vllm serve" in serve and "--enable-lora --max-lora-rank 8" in serve
    assert f"condition-2-zh-5k-seed42={dest.resolve()}/smoke/condition-2-zh-5k-seed42" in serve
    base = load_base_model(config.load_profile("smoke").model, quantization="none")
    model = PeftModel.from_pretrained(base, str(dest), subfolder="smoke/condition-2-zh-5k-seed42")
    assert sum(p.numel() for n, p in model.named_parameters() if "lora_" in n) > 0
    assert (
        registry.published_path({"phase": "phase-2", "condition": "2", "lang": "zh", "tier": "32k", "seed": "42"})
        == "condition-2-zh-32k/"
    )
    assert (
        registry.published_path(
            {
                "phase": "phase-3",
                "condition": "2",
                "lang": "zh",
                "tier": "5k",
                "seed": "42",
                "base_model": "CohereLabs/tiny-aya-base",
            }
        )
        == "tiny-aya-base/condition-2-zh-5k-seed42/"
    )


@pytest.mark.slow
def test_study_tables_from_langdecs_own_runs(ladder, tmp_path):
    """The smoke ladder's evaluation runs, as the study's sessions: its condition names, seeds, templates,
    benchmark names and matrix, every value the run's own refined score."""
    import pandas as pd

    out = tmp_path / "study"
    assert cli.main(["--quiet", "study-tables", "--experiment", EXPERIMENT, "--out", str(out)]) == 0
    manifest = json.loads((out / "MANIFEST.json").read_text())
    assert {(s["condition"], s["seed"], s["origin"]) for s in manifest["sessions"]} == {
        ("baseline", "none", "trained"),
        ("condition-1-en-5k", "42", "trained"),
        ("condition-3-zh-5k", "42", "trained"),
        *((f"condition-{c}-{lang}-5k", "42", "trained") for c in (2, 5) for lang in ("zh", "es", "ur")),
    }
    cells = pd.read_csv(out / "refined-tables" / "cells.tsv", sep="\t", dtype={"seed": str})
    assert (
        set(cells["template"]) == {1, 2}
        and set(cells["benchmark"]) <= {"xnli", "csqa", "sib200", "belebele"}
        and "csqa" in set(cells["benchmark"])
    )
    assert set(cells[cells["condition"] == "condition-2-ur-5k"]["instr"]) == {"en", "ur"}
    assert set(cells[cells["condition"] == "condition-1-en-5k"]["instr"]) == {"en", "zh", "es", "ur"}
    run = next(r for r in _runs("evaluate") if r.data.tags["condition"] == "2" and r.data.tags["lang"] == "zh")
    row = cells[
        (cells["condition"] == "condition-2-zh-5k")
        & (cells["template"] == 2)
        & (cells["benchmark"] == "csqa")
        & (cells["data"] == "es")
        & (cells["instr"] == "zh")
    ].iloc[0]
    assert row["repar_acc"] == pytest.approx(
        run.data.metrics["gen.refined.template2.xcsqa.data:es.instr:zh.acc"], abs=5e-5
    )
    assert row["orig_acc"] == pytest.approx(
        run.data.metrics["gen.strict.template2.xcsqa.data:es.instr:zh.acc"], abs=5e-5
    )
    assert (out / "phase-3" / "tables.tex").read_text().count("\\begin{tabular}") == 22
    # within a template the cells follow the study's run order: data en, zh, es, ur; then instruction; then benchmark
    # a condition cell is compared where the baseline has the same (template, benchmark, data, instr)
    vs = pd.read_csv(out / "refined-tables" / "vs_baseline_cells.tsv", sep="\t")
    at = ["template", "benchmark", "data", "instr"]
    base = set(map(tuple, cells[cells["condition"] == "baseline"][at].values.tolist()))
    assert len(vs) == sum(tuple(r) in base for r in cells[cells["condition"] != "baseline"][at].values.tolist()) > 0
