"""`langdec import-results` on result folders nobody here made, as a hostile or careless hand would leave them: each
input that used to import with wrong numbers and exit 0 is now refused in one line (exit 2, nothing kept) or
listed as skipped with why. Every tree is a copy of tests/fixtures/published/experiments with one thing changed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import cli_exit, one_error_line
from mlflow.tracking import MlflowClient

from langdec import cli
from langdec.tracking import published

RESULTS = Path(__file__).resolve().parents[1] / "fixtures" / "published" / "experiments"
CONDITIONS = Path("phase3") / "conditions"
EXPERIMENT = "imported-phase-3"
COND2 = "condition-2-zh-5k"


@pytest.fixture()
def tree(tmp_path) -> Path:
    root = tmp_path / "src"
    shutil.copytree(RESULTS, root)
    return root


def _import(root: Path, capsys) -> tuple[int, dict | None, list[str]]:
    code = cli.main(["--quiet", "import-results", str(root)])
    captured = capsys.readouterr()
    out = json.loads(captured.out) if code == 0 else None
    return code, out, captured.err.strip().splitlines()


def _runs() -> list:
    exp = MlflowClient().get_experiment_by_name(EXPERIMENT)
    return [] if exp is None else MlflowClient().search_runs([exp.experiment_id], "tags.`langdec.stage` = 'evaluate'")


def _refused(root: Path, capsys, *needles: str) -> str:
    """Exit 2, one line holding every needle, and no evaluation run left in the store."""
    code, _, err = _import(root, capsys)
    assert code == 2 and len(err) == 1, err
    for needle in needles:
        assert needle in err[0], (needle, err[0])
    assert _runs() == []
    return err[0]


def _write(path: Path, body) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(body, ensure_ascii=False, indent=4), encoding="utf-8")


def test_a_seed_folder_whose_name_ends_in_a_newline_is_refused_not_a_fourth_seed(store, tree, capsys):
    """`seed42\\n` holding reformatted copies of seed 42's files once imported as a fourth seed (report mean 68.8, not 67.7)."""
    cond = tree / CONDITIONS / COND2
    odd = cond / "seed42\n"
    for path in (cond / "seed42").iterdir():
        if path.name.startswith(f"{COND2}_seed42_"):
            _write(odd / path.name.replace("_seed42_", "_seed42\n_"), json.loads(path.read_text(encoding="utf-8")))
    line = _refused(tree, capsys, repr("seed42\n"), "seed<N>")
    assert "\n" not in line


@pytest.mark.parametrize(
    "name",
    [
        "condition-9-zh-5k",
        "condition-\uff12-ur-5k",
        "condition-2-ur-5k-seed99",
        "condition-2-zh-5k\n",
        "condition-2-hi-5k",
        "condition-3-zh-5k-native-code",
    ],
)
def test_a_condition_folder_the_study_never_named_is_refused_listing_its_conditions(store, tree, capsys, name):
    """A condition number outside the study's ladder, a full-width digit, a seed in the condition's name (its seed
    folder is another seed's), a language the study did not train, a suffix only its adapter folders carry."""
    seed = "seed123" if name.endswith("seed99") else "seed42"
    stem = name.replace("\n", "")
    source = tree / CONDITIONS / COND2 / "seed42" / f"{COND2}_seed42_results_template1.json"
    _write(
        tree / CONDITIONS / name / seed / f"{stem}_{seed}_results_template1.json",
        json.loads(source.read_text(encoding="utf-8")),
    )
    line = _refused(tree, capsys, repr(name), "condition-2-{zh,es,ur}-<tier>", "baseline")
    assert "\n" not in line


def test_a_results_file_whose_cells_belong_to_the_other_template_is_refused(store, tree, capsys):
    """A `_results_template1.json` whose cells are all template2_* once imported: template 2 counted twice, template 1 lost.
    The refusal comes after the baseline (sorted first) was imported: that run is taken back, nothing is kept."""
    path = tree / CONDITIONS / COND2 / "seed123" / f"{COND2}_seed123_results_template1.json"
    body = json.loads(path.read_text(encoding="utf-8"))
    _write(path, {k.replace("template1_", "template2_"): v for k, v in body.items()})
    _refused(
        tree,
        capsys,
        f"{COND2}_seed123_results_template1.json",
        "template2_sib200_data=ur_instr=ur",
        "template1",
        "nothing of this import was kept",
    )


def test_a_cell_whose_rows_are_repeated_is_refused(store, tree, capsys):
    """One cell's rows three times imported as n=12 beside the baseline's n=4."""
    path = tree / CONDITIONS / COND2 / "seed123" / f"{COND2}_seed123_results_template1.json"
    body = json.loads(path.read_text(encoding="utf-8"))
    body["template1_xnli_data=en_instr=en"] *= 3
    _write(path, body)
    _refused(tree, capsys, f"{COND2}_seed123_results_template1.json", "template1_xnli_data=en_instr=en", "12 rows", "4")


def test_a_cell_listing_other_items_than_its_benchmark_elsewhere_is_refused(store, tree, capsys):
    """Item ids are row positions: a cell whose gold labels are in another order pairs the wrong items."""
    path = tree / CONDITIONS / COND2 / "seed42" / f"{COND2}_seed42_results_template1.json"
    body = json.loads(path.read_text(encoding="utf-8"))
    body["template1_xnli_data=en_instr=en"].reverse()
    _write(path, body)
    _refused(tree, capsys, f"{COND2}_seed42_results_template1.json", "template1_xnli_data=en_instr=en", "gold labels")


@pytest.mark.parametrize("level", ["seed", "condition"])
def test_a_linked_folder_is_listed_as_skipped_never_followed(store, tree, tmp_path, capsys, level):
    """A symbolic link to a seed folder (or a condition folder) was dropped with `skipped: 0`."""
    outside = tmp_path / "elsewhere"
    if level == "seed":
        shutil.copytree(tree / CONDITIONS / COND2 / "seed123", outside / "seed456")
        for path in (outside / "seed456").iterdir():
            path.rename(path.with_name(path.name.replace("seed123", "seed456")))
        link = tree / CONDITIONS / COND2 / "seed456"
        link.symlink_to(outside / "seed456", target_is_directory=True)
        named = f"{COND2}/seed456"
    else:
        shutil.copytree(tree / CONDITIONS / COND2, outside / "condition-2-es-5k")
        link = tree / CONDITIONS / "condition-2-es-5k"
        link.symlink_to(outside / "condition-2-es-5k", target_is_directory=True)
        named = "condition-2-es-5k"
    code, out, err = _import(tree, capsys)
    assert (
        code == 0 and out["skipped"] == 1 and out["strays"] == 1
    )  # the link; the seed-123 file under seed42 is kept as a stray
    lines = [line for line in err if "symbolic link" in line]
    assert len(lines) == 1 and lines[0].startswith(f"skipped {named}") and "never followed" in lines[0]
    assert {r.data.tags["seed"] for r in _runs() if r.data.tags["condition"] == "2"} == {"42", "123"}
    assert not any(r.data.tags.get("lang") == "es" for r in _runs())


def test_a_linked_conditions_folder_is_refused(store, tree, tmp_path, capsys):
    real = tmp_path / "real-conditions"
    shutil.move(str(tree / CONDITIONS), real)
    (tree / CONDITIONS).symlink_to(real, target_is_directory=True)
    _refused(tree, capsys, "symbolic link", "phase3/conditions")


def test_a_stray_file_is_kept_flagged_under_its_folders_seed_and_left_out_of_the_report(store, tree, capsys):
    code, out, err = _import(tree, capsys)
    assert code == 0 and out["imported"] == 4 and out["strays"] == 1
    (stray,) = [r for r in _runs() if r.data.tags.get(published.STRAY_TAG) == "true"]
    tags = stray.data.tags
    assert (tags["seed"], tags["source_file"], tags["langdec.stray_seed"]) == (
        "42",
        f"{COND2}_seed123_results_template1.json",
        "123",
    )
    assert any(line.startswith(f"stray {COND2}/seed42/{COND2}_seed123_results_template1.json") for line in err)
    from langdec.analysis import report

    assert stray.info.run_id not in {r.info.run_id for r in report.latest_runs(EXPERIMENT).values()}
    assert len(report.latest_runs(EXPERIMENT)) == 3


def test_study_folder_grammar_is_ascii_and_whole():
    for name in ("condition-\uff12-ur-5k", "condition-2-ur-5k\n", "condition-2-ur-\uff15k"):
        with pytest.raises(Exception, match="not one of the study's condition names"):
            published.parse_condition(name)
    assert published.results_condition("condition-2-ur-20k") == published.StudyCondition("2", "ur", "20k")


def test_a_hub_snapshot_whose_files_are_links_into_its_blob_store_imports(store, tmp_path, capsys, monkeypatch):
    """`hf:` sources come from the hub cache, whose snapshot files are links into the cache's blobs/ folder: those are
    the hub's own files and are read; a link out of the cache is still listed as skipped, never followed."""
    import hashlib

    from huggingface_hub import constants

    repo = tmp_path / "hub" / "datasets--legesher--language-decoded-experiments"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "blobs").mkdir()
    snapshot = repo / "snapshots" / commit
    for path in sorted(p for p in RESULTS.rglob("*") if p.is_file()):
        blob = repo / "blobs" / hashlib.sha256(path.read_bytes()).hexdigest()
        blob.write_bytes(path.read_bytes())
        link = snapshot / path.relative_to(RESULTS)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(
            Path(*[".."] * (len(link.relative_to(repo).parts) - 1)) / "blobs" / blob.name
        )  # relative, as the hub does
    outside = tmp_path / "outside.json"
    outside.write_text("{}")
    (snapshot / CONDITIONS / COND2 / "seed123" / f"{COND2}_seed123_results_template2.json").symlink_to(outside)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code = cli.main(["--quiet", "import-results", "hf:legesher/language-decoded-experiments"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    out = json.loads(captured.out)
    assert (out["imported"], out["strays"], out["skipped"]) == (4, 1, 1)
    assert f"skipped {COND2}/seed123/{COND2}_seed123_results_template2.json: a symbolic link" in captured.err
    run = next(r for r in _runs() if r.data.tags["source_file"] == "baseline_seednone_results_template1.json")
    assert run.data.metrics["published.refined.template1.xnli.data:en.instr:en.acc"] == pytest.approx(0.75)


# ---------------------------------------------------------------------- hostile cases: links, seed folder copies, malformed files
_main = cli_exit


_one_error = one_error_line


GOOD_RESULTS = json.loads(
    (RESULTS / CONDITIONS / "baseline/seednone/baseline_seednone_results_template1.json").read_text()
)


def _results_folder(tmp_path: Path, seed_folder: str = "seednone", body=None, name: str = "baseline") -> Path:
    folder = tmp_path / "res" / "phase3" / "conditions" / name / seed_folder
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{name}_{seed_folder}_results_template1.json"
    (folder / stem).write_text(body if isinstance(body, str) else json.dumps(GOOD_RESULTS if body is None else body))
    return tmp_path / "res"


def test_a_symlinked_results_file_is_reported_and_never_followed(tmp_path, capsys, module_store):
    folder = tmp_path / "res" / "phase3" / "conditions" / "baseline" / "seednone"
    folder.mkdir(parents=True)
    outside = tmp_path / "elsewhere.json"
    outside.write_text(json.dumps(GOOD_RESULTS))
    (folder / "baseline_seednone_results_template1.json").symlink_to(outside)
    assert cli.main(["--quiet", "import-results", str(tmp_path / "res"), "--experiment", "links"]) == 0
    captured = capsys.readouterr()
    assert (
        json.loads(captured.out)["imported"] == 0
        and "a symbolic link; links are reported, never followed" in captured.err
    )


@pytest.mark.parametrize("seed_folder", ["seed042", "seedfoo"])
def test_a_copy_under_another_seed_folder_is_refused_before_anything_is_imported(
    tmp_path, capsys, module_store, seed_folder
):
    root = _results_folder(tmp_path, "seed42", GOOD_RESULTS, name="condition-2-zh-5k")
    _results_folder(tmp_path, seed_folder, GOOD_RESULTS, name="condition-2-zh-5k")
    code, err = _main(capsys, "import-results", str(root), "--experiment", f"copies-{seed_folder}")
    assert code == 2 and seed_folder in _one_error(err) and "seed<N>" in err
    from mlflow.tracking import MlflowClient

    assert MlflowClient().get_experiment_by_name(f"copies-{seed_folder}") is None


@pytest.mark.parametrize(
    "body, message",
    [
        ({}, "no cell with rows"),
        ({**GOOD_RESULTS, "template1_sib200_data=ur_instr=ur": {"rows": 1}}, "holds a dict, not a list of rows"),
        (
            {"template1_sib200_data=qq_instr=ur": GOOD_RESULTS["template1_sib200_data=ur_instr=ur"]},
            "has no data language 'qq'",
        ),
        ([], "a results file is a JSON object of cells, this one is a list"),
        (3, "this one is a int"),
        ('{"template1_sib200', "not a UTF-8 JSON results file"),
        ({"template1_sib200_data=ur_instr=ur": [{"raw_output": "x", "gold": ["a"]}]}, "gold must be a label"),
    ],
)
def test_a_malformed_results_file_is_one_line_and_nothing_is_imported(tmp_path, capsys, module_store, body, message):
    root = _results_folder(tmp_path, body=body)
    code, err = _main(capsys, "import-results", str(root), "--experiment", "malformed")
    assert code == 2 and message in _one_error(err)


@pytest.mark.parametrize(
    "summary, message",
    [
        ([], "a summary file is a JSON object"),
        ("x", "not a UTF-8 JSON summary file"),
        ({"summary": {"template1_sib200_data=ur_instr=ur_acc": "high"}}, "not a rate between 0 and 1"),
    ],
)
def test_a_malformed_summary_is_one_line(tmp_path, capsys, module_store, summary, message):
    root = _results_folder(tmp_path)
    folder = root / "phase3" / "conditions" / "baseline" / "seednone"
    (folder / "baseline_seednone_summary_template1.json").write_text(
        summary if isinstance(summary, str) else json.dumps(summary)
    )
    code, err = _main(capsys, "import-results", str(root), "--experiment", "bad-summary")
    assert code == 2 and message in _one_error(err)


def test_a_results_folder_where_a_file_should_be_is_one_line(tmp_path, capsys, module_store):
    folder = (
        tmp_path
        / "res"
        / "phase3"
        / "conditions"
        / "baseline"
        / "seednone"
        / "baseline_seednone_results_template1.json"
    )
    folder.mkdir(parents=True)
    code, err = _main(capsys, "import-results", str(tmp_path / "res"), "--experiment", "dir")
    assert code == 2 and "not a file" in _one_error(err)
