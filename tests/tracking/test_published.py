"""The study's published artifacts read by langdec: result files imported, re-scored and reported; its
adapter folders evaluated and registered with their origin. Fixtures: tests/fixtures/published (see SOURCE.md),
with every expected number computed by hand."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
from conftest import cli_exit, one_error_line
from mlflow.tracking import MlflowClient

from langdec import cli
from langdec.analysis import report
from langdec.evaluation import records as items
from langdec.evaluation import stage
from langdec.evaluation.matrix import Cell
from langdec.tracking import published

DATA = Path(__file__).resolve().parents[1] / "fixtures" / "published"
RESULTS = DATA / "experiments"
EXPERIMENT = "imported-phase-3"
# hand-computed from the raw outputs: (strict acc, refined acc) per (condition folder, seed folder, cell)
CELLS = {
    ("baseline", "seednone"): {
        "sib200.data:ur.instr:ur": (0.4, 0.6),
        "xnli.data:en.instr:en": (0.5, 0.75),
        "xcsqa.data:en.instr:en": (1 / 3, 1 / 3),
    },
    ("condition-2-zh-5k", "seed42"): {
        "sib200.data:ur.instr:ur": (1.0, 1.0),
        "xnli.data:en.instr:en": (0.75, 0.75),
        "xcsqa.data:en.instr:en": (2 / 3, 2 / 3),
    },
    ("condition-2-zh-5k", "seed123"): {
        "sib200.data:ur.instr:ur": (0.4, 0.6),
        "xnli.data:en.instr:en": (0.25, 1.0),
        "xcsqa.data:en.instr:en": (2 / 3, 2 / 3),
    },
}


@pytest.fixture(scope="module")
def imported(module_store):
    out = cli.main(["--quiet", "import-results", str(RESULTS)])
    assert out == 0
    client = MlflowClient()
    exp = client.get_experiment_by_name(EXPERIMENT)
    return {
        r.data.tags["source_file"]: r
        for r in client.search_runs([exp.experiment_id])
        if r.data.tags.get(published.STRAY_TAG) != "true"
    }


def test_every_canonical_file_becomes_one_tagged_run_and_strays_are_kept_flagged(imported, capsys):
    assert sorted(imported) == [
        "baseline_seednone_results_template1.json",
        "condition-2-zh-5k_seed123_results_template1.json",
        "condition-2-zh-5k_seed42_results_template1.json",
    ]
    run = imported["condition-2-zh-5k_seed123_results_template1.json"]
    assert {k: run.data.tags[k] for k in ("condition", "lang", "tier", "seed", "origin", "langdec.stage")} == {
        "condition": "2",
        "lang": "zh",
        "tier": "5k",
        "seed": "123",
        "origin": "imported",
        "langdec.stage": "evaluate",
    }
    source = RESULTS / "phase3/conditions/condition-2-zh-5k/seed123/condition-2-zh-5k_seed123_results_template1.json"
    import hashlib

    assert run.data.tags["source_sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
    # every raw output is a per-item record under langdec's cell names
    records = items.read(run.info.run_id).to_pylist()
    assert len(records) == 5 + 4 + 3 and {r["benchmark"] for r in records} == {"sib200", "xnli", "xcsqa"}
    assert records[0]["output"] == "politics" and records[0]["item_id"] == "0" and records[0]["tier"] == "5k"
    assert (records[0]["cell_order"], records[0]["position"], records[1]["position"]) == (0, 0, 1)
    assert records[0]["pred.refined"] == "politics" and records[0]["rule.refined"] == "term"
    # the seed-123 file under seed42 is kept as the study's per-item scripts count it: flagged, under its folder's seed
    (stray,) = MlflowClient().search_runs([run.info.experiment_id], f"tags.`{published.STRAY_TAG}` = 'true'")
    assert {k: stray.data.tags[k] for k in ("seed", "source_file", "langdec.stray_seed", "langdec.stage")} == {
        "seed": "42",
        "source_file": "condition-2-zh-5k_seed123_results_template1.json",
        "langdec.stray_seed": "123",
        "langdec.stage": "evaluate",
    }
    # a second import adds nothing, and the stray is named again
    before = len(MlflowClient().search_runs([run.info.experiment_id]))
    assert cli.main(["--quiet", "import-results", str(RESULTS)]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert (out["already_imported"], out["imported"], out["strays"], out["skipped"]) == (4, 0, 1, 0)
    assert (
        "stray condition-2-zh-5k/seed42/condition-2-zh-5k_seed123_results_template1.json: kept as a stray"
        in captured.err
    )
    assert len(MlflowClient().search_runs([run.info.experiment_id])) == before


def test_langdec_reproduces_the_published_cells_of_both_extractors(imported):
    for (cond, seed), cells in CELLS.items():
        metrics = imported[f"{cond}_{seed}_results_template1.json"].data.metrics
        for cell, (strict, refined) in cells.items():
            assert metrics[f"published.strict.template1.{cell}.acc"] == pytest.approx(strict)
            assert metrics[f"published.refined.template1.{cell}.acc"] == pytest.approx(refined)
            assert metrics[f"gen.strict.template1.{cell}.acc"] == pytest.approx(strict)
            assert metrics[f"gen.refined.template1.{cell}.acc"] == pytest.approx(refined)


def test_reparse_of_an_imported_run_gives_the_studys_reparsed_summary(imported):
    for (cond, seed), cells in CELLS.items():
        run = imported[f"{cond}_{seed}_results_template1.json"]
        reparsed = stage.reparse(run.info.run_id, "refined")
        summary = json.loads(
            (RESULTS / "phase3/conditions" / cond / seed / f"{cond}_{seed}_summary_reparsed_template1.json").read_text()
        )
        for key, value in summary["summary"].items():
            if key.endswith("_acc"):
                found = published.CELL.match(key.removesuffix("_acc"))
                cell = Cell(
                    found["template"],
                    published.BENCHMARK_NAMES.get(found["bench"], found["bench"]),
                    found["data"],
                    found["instr"],
                )
                assert reparsed[f"gen.refined.{cell.name}.acc"] == pytest.approx(value)


def test_the_report_shows_the_studys_headline_on_imported_runs(imported):
    built = report.build(report.collect(EXPERIMENT), rounds=100)
    study = built.study
    paper = {(r.extractor, r.group, r.benchmark, r.instr): r for r in study.paper}
    refined = paper[("refined", "cond2-zh", "sib200", "ur")]
    assert (refined.value, refined.delta, refined.n_seeds) == (pytest.approx(0.8), pytest.approx(0.2), 2)
    assert paper[("refined", "cond2-zh", "xnli", "en")].delta == pytest.approx(0.125)
    assert paper[("strict", "cond2-zh", "xnli", "en")].delta == pytest.approx(0.0)
    assert paper[("strict", "cond2-zh", "sib200", "ur")].delta == pytest.approx(0.3)
    # one conclusion flips: seed 123's XNLI cell is -0.25 under strict and +0.25 under refined
    assert [(f.seed, f.benchmark, f.delta_strict, f.delta_refined) for f in study.flips] == [
        ("123", "xnli", pytest.approx(-0.25), pytest.approx(0.25))
    ] and study.cells_compared == 6
    head = {(h.by, h.value): h for h in study.headline}
    xnli = head[("benchmark", "xnli")]
    assert (xnli.acc_strict, xnli.acc_refined) == (pytest.approx(0.5), pytest.approx(2.5 / 3))
    assert (xnli.unparsed_strict, xnli.unparsed_refined) == (pytest.approx(1 / 3), pytest.approx(0.0))
    sib = head[("benchmark", "sib200")]
    assert (sib.acc_strict, sib.acc_refined, sib.unparsed_strict, sib.unparsed_refined) == (
        pytest.approx(0.6),
        pytest.approx(2.2 / 3),
        pytest.approx(0.2),
        pytest.approx(0.2 / 3),
    )
    assert head[("instr", "ur")].cells == 3
    text = report.print_tables(built)
    assert "what the refined extractor changes" in text and "1 of 6 condition cells" in text


def test_the_report_command_reads_the_imported_experiment(imported, tmp_path, capsys):
    assert cli.main(["--quiet", "report", "--experiment", EXPERIMENT, "--out", str(tmp_path / "rep")]) == 0
    out = capsys.readouterr().out
    assert "cond2-zh" in out and "sib200" in out
    body = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert len(body["study"]["flips"]) == 1 and body["study"]["headline"]


def test_a_hub_source_that_cannot_be_reached_names_the_repository(module_store, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code = cli.main(["--quiet", "import-results", "hf:legesher/language-decoded-experiments"])
    err = capsys.readouterr().err
    assert code == 2 and "hf:legesher/language-decoded-experiments" in err and "huggingface-cli download" in err


def test_study_folder_names_parse():
    assert published.parse_condition("condition-5-zh-5k-c4ai-aya-expanse-32b-seed42") == published.StudyCondition(
        "5", "zh", "5k", "42", "c4ai-aya-expanse-32b"
    )
    assert published.parse_condition("condition-3-zh-5k-native-code-seed42").suffix == "native-code"
    assert published.parse_condition("condition-2-ur-20k") == published.StudyCondition("2", "ur", "20k")
    assert published.parse_condition("condition-2-zh-5k-seed42") == published.StudyCondition("2", "zh", "5k", "42")
    with pytest.raises(Exception, match="not one of the study's condition names"):
        published.parse_condition("cond2-zh")


@pytest.fixture(scope="module")
def published_adapter(smoke_profile, tmp_path_factory):
    """A LoRA adapter of the smoke model saved in the published layout (tiny-aya-base/condition-2-zh-5k-seed42)."""
    from peft import LoraConfig, get_peft_model

    from langdec.models.loading import load_base_model

    folder = tmp_path_factory.mktemp("lora") / "tiny-aya-base" / "condition-2-zh-5k-seed42"
    model = load_base_model(smoke_profile.model, quantization="none")
    get_peft_model(
        model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    ).save_pretrained(folder)
    return folder


def test_a_published_adapter_is_evaluated_and_registered_with_its_origin(module_store, published_adapter, capsys):
    argv = [
        "--quiet",
        "evaluate",
        "--adapter",
        str(published_adapter),
        "--benchmarks",
        "sib200,xnli",
        "--data-languages",
        "en,zh",
    ]
    assert cli.main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["adapter"] == "tiny-aya-base/condition-2-zh-5k-seed42" and first["condition"] == "cond2-zh-5k-s42"
    client = MlflowClient()
    version = client.get_model_version("langdec-smoke-adapters", first["registered_version"])
    assert {
        k: version.tags[k] for k in ("origin", "published_folder", "condition", "lang", "tier", "seed", "phase")
    } == {
        "origin": "published",
        "published_folder": "tiny-aya-base/condition-2-zh-5k-seed42",
        "condition": "2",
        "lang": "zh",
        "tier": "5k",
        "seed": "42",
        "phase": "phase-3",
    }
    assert version.tags["evaluation_status"] == "evaluated" and version.tags["evaluated_benchmarks"] == "sib200,xnli"
    # the registered weights are the published ones
    local = Path(mlflow.artifacts.download_artifacts(version.source))
    assert (local / "adapter_config.json").read_bytes() == (published_adapter / "adapter_config.json").read_bytes()
    # and an MLflow Model like every version, while the user's folder gained no file
    assert not (published_adapter / "MLmodel").exists() and (local / "MLmodel").is_file()
    import pandas as pd

    texts = mlflow.pyfunc.load_model(f"models:/langdec-smoke-adapters/{version.version}").predict(
        pd.DataFrame({"prompt": ["Question: What is 2 + 3?\nAnswer:"]})
    )
    assert len(texts) == 1 and isinstance(texts[0], str)
    run = mlflow.get_run(first["run_id"])
    assert run.data.tags["origin"] == "published" and report.group_of(run.data.tags) == "cond2-zh@published"
    # the same weights again: the evaluation is reused and no second version appears
    assert cli.main(argv) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["reused"] and again["registered_version"] == first["registered_version"]
    assert len(client.search_model_versions("name = 'langdec-smoke-adapters' and tags.origin = 'published'")) == 1


def test_a_folder_that_is_not_an_adapter_is_refused(tmp_path, capsys, module_store):
    folder = tmp_path / "tiny-aya-base" / "condition-2-zh-5k-seed42"
    folder.mkdir(parents=True)
    assert cli.main(["--quiet", "evaluate", "--adapter", str(folder)]) == 2
    assert "no adapter_config.json" in capsys.readouterr().err


# the adapters' published folders (the study's model card and evaluate.ipynb EVAL_MATRIX): 12 configurations of
# phase 3, and the flat phase-2 names
PUBLISHED_FOLDERS = [
    ("1", "en", "5k"),
    ("1", "en", "20k"),
    ("2", "zh", "5k"),
    ("2", "es", "5k"),
    ("2", "ur", "5k"),
    ("2", "zh", "20k"),
    ("2", "es", "20k"),
    ("2", "ur", "20k"),
    ("3", "zh", "5k"),
    ("5", "zh", "5k"),
    ("5", "es", "5k"),
    ("5", "ur", "5k"),
]
EXPECTED = [
    "condition-1-en-5k",
    "condition-1-en-20k",
    "condition-2-zh-5k",
    "condition-2-es-5k",
    "condition-2-ur-5k",
    "condition-2-zh-20k",
    "condition-2-es-20k",
    "condition-2-ur-20k",
    "condition-3-zh-5k-native-code",
    "condition-5-zh-5k-c4ai-aya-expanse-32b",
    "condition-5-es-5k-c4ai-aya-expanse-32b",
    "condition-5-ur-5k-c4ai-aya-expanse-32b",
]


def test_export_names_every_published_configuration_from_version_tags():
    from langdec.tracking import registry

    for (cond, lang, tier), stem in zip(PUBLISHED_FOLDERS, EXPECTED):
        tags = {
            "phase": "phase-3",
            "condition": cond,
            "lang": lang,
            "tier": tier,
            "seed": "42",
            "base_model": "CohereLabs/tiny-aya-base",
        }
        if cond == "5":
            tags["translation_model"] = "CohereLabs/c4ai-aya-expanse-32b"
        assert registry.published_path(tags) == f"tiny-aya-base/{stem}-seed42/"
        assert registry.published_path({**tags, "phase": "phase-2"}) == f"{stem}/"
        # and the name reads back as the same condition
        parsed = published.parse_condition(f"{stem}-seed42")
        assert (parsed.condition, parsed.lang, parsed.tier, parsed.seed) == (cond, lang, tier, "42")


@pytest.mark.slow
def test_a_condition_trains_on_the_published_rows_exactly(module_store, smoke_profile, capsys):
    import pandas as pd

    folder = DATA / "data"
    common = [
        "--condition",
        "2",
        "--lang",
        "zh",
        "--data",
        "published",
        "--set",
        f"corpus.published={folder}",
        "--phase",
        "published-data",
    ]
    # the checks run on the study's rows and report the one langdec would refuse; nothing is dropped
    assert cli.main(["--quiet", "check", *common]) == 1
    report_text = capsys.readouterr().out
    assert "FAILED" in report_text and "english_keywords_left" in report_text
    assert cli.main(["--quiet", "train", *common, "--allow-unchecked"]) == 0
    result = json.loads(capsys.readouterr().out)
    run = mlflow.get_run(result["run_id"])
    data_run = MlflowClient().search_runs([run.info.experiment_id], "tags.`langdec.stage` = 'transpile'")[0]
    assert (
        data_run.data.params["data"] == "published" and data_run.data.params["published_config"] == "condition-2-zh-5k"
    )
    manifest = json.loads(
        Path(
            mlflow.artifacts.download_artifacts(run_id=data_run.info.run_id, artifact_path="manifest.json")
        ).read_text()
    )
    assert manifest["rows"] == {"train": 6, "validation": 2} and manifest["lost_files"] == []
    assert Path(manifest["source"]) == folder / "condition-2-zh-5k"
    # what was trained is the published rows, split for split, row for row
    from langdec.core import config
    from langdec.data import stage as data

    profile = config.load_profile("smoke", [f"corpus.published={folder}", "corpus.data=published"])
    cdata = data.prepare(profile, config.condition("2"), config.Job("2", "zh", "5k", 42))
    assert run.data.tags["langdec.data_digest"] == cdata.digest
    for split, ours in zip(("train", "validation"), cdata.frames()):
        theirs = pd.read_parquet(folder / "condition-2-zh-5k" / f"{split}.parquet")
        assert (
            ours[["idx", "code", "file_path"]].values.tolist() == theirs[["idx", "code", "file_path"]].values.tolist()
        )
    assert run.data.tags["data_check_status"] == "failed" and run.data.metrics["files"] == 6


def test_a_report_refuses_runs_labelled_by_two_versions_of_an_extractor(imported, tmp_path, capsys):
    """One run's langdec labels from another (older) version: no comparison until `reparse --experiment` relabels."""
    import json as _json

    run = imported["baseline_seednone_results_template1.json"]
    stored = items.read(run.info.run_id)
    meta = _json.loads(stored.schema.metadata[items.META])
    meta["extractors"]["langdec"] = "0123456789"
    items.log(
        run.info.run_id,
        stored.replace_schema_metadata({**stored.schema.metadata, items.META: _json.dumps(meta).encode()}),
    )
    assert cli.main(["--quiet", "report", "--experiment", EXPERIMENT, "--out", str(tmp_path / "rep")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "different versions of extractor 'langdec'" in err[0]
    assert (
        f"langdec reparse --experiment {EXPERIMENT} --extractor langdec" in err[0] and not (tmp_path / "rep").exists()
    )
    assert cli.main(["--quiet", "reparse", "--experiment", EXPERIMENT, "--extractor", "langdec"]) == 0
    assert len(_json.loads(capsys.readouterr().out)["runs"]) == 4  # the stray's run is re-labelled too
    assert cli.main(["--quiet", "report", "--experiment", EXPERIMENT, "--out", str(tmp_path / "rep")]) == 0
    assert items.versions_of(items.read(run.info.run_id, ["benchmark"]).schema)["langdec"] != "0123456789"


# ---------------------------------------------------------------------- hostile cases: adapter folders
_main = cli_exit


_one_error = one_error_line


def test_an_adapter_folder_with_a_link_is_refused(tmp_path, capsys, module_store):
    outside = tmp_path / "outside.txt"
    outside.write_text("private")
    adapter = tmp_path / "condition-2-zh-5k"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA"}))
    (adapter / "notes.txt").symlink_to(outside)
    code, err = _main(capsys, "evaluate", "--adapter", str(adapter))
    assert code == 2 and "symbolic link" in _one_error(err)


def test_an_hf_spec_cannot_climb_out_of_its_snapshot(capsys, module_store):
    code, err = _main(capsys, "evaluate", "--adapter", "hf:owner/repo:../../../etc")
    assert code == 2 and "a path inside it" in _one_error(err)


@pytest.mark.parametrize("problem", ["truncated", "list", "pickle", "weights"])
def test_a_broken_adapter_folder_is_one_line(tmp_path, capsys, module_store, problem):
    adapter = tmp_path / "condition-2-zh-5k"
    adapter.mkdir()
    config_text = {"truncated": '{"peft_type": "LO', "list": "[]"}.get(
        problem, json.dumps({"peft_type": "LORA", "r": 8})
    )
    (adapter / "adapter_config.json").write_text(config_text)
    if problem == "pickle":
        (adapter / "adapter_model.bin").write_bytes(b"\x80\x04K\x01.")
    if problem == "weights":
        (adapter / "adapter_model.safetensors").write_bytes(b"not safetensors at all")
    code, err = _main(capsys, "evaluate", "--adapter", str(adapter))
    line = _one_error(err)
    assert (
        code == 2
        and {
            "truncated": "not a JSON file",
            "list": "peft_type",
            "pickle": "pickled weights can run code",
            "weights": "not a readable safetensors file",
        }[problem]
        in line
    )
