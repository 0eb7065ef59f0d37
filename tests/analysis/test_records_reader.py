"""`report`, `study-tables` and `reparse` read per-item records through one checked reader (langdec.items.check /
read_checked): labels of the wrong type, two versions of one extractor, a damaged items.parquet (truncated, another
schema, its metadata not JSON or not an object) and records gone from the store are each one line and exit 2,
naming the run and what rebuilds it; and a results file nested too deep for Python's JSON reader is one line too.

Every case is made on a real MLflow store by damaging the stored file itself, as a disk, a careless script or
another tool would, and every piece of advice is followed to show that it rebuilds the run."""

from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from mlflow.tracking import MlflowClient

from langdec import cli
from langdec.evaluation import records as items

STUDY = Path(__file__).resolve().parents[1] / "fixtures" / "published" / "experiments" / "phase3" / "conditions"
EXPERIMENT = "imported-phase-3"
BASELINE = "baseline-seednone-template1"  # the run every case damages


def _results(root: Path) -> Path:
    """The published fixture's canonical files only (its stray is another engineer's case), as a results folder."""
    for path in STUDY.rglob("*.json"):
        cond, seed = path.parent.parent.name, path.parent.name
        if path.name.startswith(f"{cond}_{seed}_"):
            target = root / "phase3" / "conditions" / cond / seed / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    return root


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    return _results(tmp_path_factory.mktemp("results"))


@pytest.fixture(scope="module")
def imported(module_store, results):
    assert cli.main(["--quiet", "import-results", str(results)]) == 0
    return results


def _run(name: str):
    client = MlflowClient()
    exp = client.get_experiment_by_name(EXPERIMENT)
    (run,) = [r for r in client.search_runs([exp.experiment_id]) if r.info.run_name == name]
    return run


def _items_path(run) -> Path:
    path = items.local_artifact(run.info.run_id, items.ITEMS, run.info.artifact_uri)
    assert path is not None and path.is_file()
    return path


@contextlib.contextmanager
def damaged(run, damage):
    """The run's stored items.parquet damaged by `damage(path)` for the block, then put back byte for byte."""
    path = _items_path(run)
    before = path.read_bytes()
    try:
        damage(path)
        yield path
    finally:
        path.write_bytes(before)


def _with_column(path: Path, name: str, array: pa.Array) -> None:
    table = pq.read_table(path)
    table = table.set_column(table.column_names.index(name), name, array)
    pq.write_table(table, path)


def _with_meta(path: Path, raw: bytes | None) -> None:
    table = pq.read_table(path)
    meta = dict(table.schema.metadata)
    if raw is None:
        meta.pop(items.META)
    else:
        meta[items.META] = raw
    pq.write_table(table.replace_schema_metadata(meta), path)


def _one_line(capsys, argv: list[str]) -> str:
    assert cli.main(["--quiet", *argv]) == 2, argv
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def _report(tmp_path: Path) -> list[str]:
    return ["report", "--experiment", EXPERIMENT, "--out", str(tmp_path / "report")]


def _tables(tmp_path: Path) -> list[str]:
    return ["study-tables", "--experiment", EXPERIMENT, "--out", str(tmp_path / "tables")]


def _refined_accuracy(tables: Path) -> dict[str, float]:
    import pandas as pd

    cells = pd.read_csv(tables / "refined-tables" / "cells.tsv", sep="\t")
    return cells.groupby("condition")["repar_acc"].mean().to_dict()


# --------------------------------------------------------------------------- labels: types and versions
@pytest.mark.slow
@pytest.mark.parametrize("kind", ["string", "int64"])
def test_refined_labels_of_another_type_are_refused_by_both_commands_and_reparse_rebuilds_them(
    imported, tmp_path, capsys, kind
):
    """On main, study-tables read `correct.refined` strings ("False" is true) or int64 and wrote refined accuracy 1.0000."""
    assert cli.main(["--quiet", *_tables(tmp_path / "good")]) == 0
    truth = _refined_accuracy(tmp_path / "good" / "tables")
    run = _run(BASELINE)
    stored = pq.read_table(_items_path(run)).column("correct.refined")
    assert 0 < pa.compute.sum(stored).as_py() < len(stored)  # some right, some wrong: a forgery would show
    array = pa.array([str(v) for v in stored.to_pylist()]) if kind == "string" else stored.cast(pa.int64())
    with damaged(run, lambda path: _with_column(path, "correct.refined", array)):
        for argv in (_tables(tmp_path), _report(tmp_path)):
            line = _one_line(capsys, argv)
            assert run.info.run_id in line and BASELINE in line and "correct.refined" in line, line
            assert f"langdec reparse {run.info.run_id} --extractor refined" in line
        assert not (tmp_path / "tables").exists() and not (tmp_path / "report").exists()
        # the advice works: reparse rebuilds the labels from the file's own outputs
        assert cli.main(["--quiet", "reparse", run.info.run_id, "--extractor", "refined"]) == 0
        assert pq.read_schema(_items_path(run)).field("correct.refined").type == pa.bool_()
        assert cli.main(["--quiet", *_tables(tmp_path)]) == 0
        assert _refined_accuracy(tmp_path / "tables") == truth and truth["baseline"] < 1.0
        assert cli.main(["--quiet", *_report(tmp_path)]) == 0


def test_study_tables_refuses_two_versions_of_an_extractor_as_report_does(imported, tmp_path, capsys):
    """On main, study-tables accepted runs labelled by two versions of one extractor, where report refused them."""
    run = _run(BASELINE)

    def older(path: Path) -> None:
        meta = json.loads(pq.read_schema(path).metadata[items.META])
        meta["extractors"]["refined"] = "0123456789"
        _with_meta(path, json.dumps(meta).encode())

    with damaged(run, older):
        lines = [_one_line(capsys, argv) for argv in (_tables(tmp_path), _report(tmp_path))]
        for line in lines:
            assert (
                "different versions of extractor 'refined'" in line
                and "0123456789 (1 runs" in line
                and run.info.run_id in line
            )
            assert f"langdec reparse --experiment {EXPERIMENT} --extractor refined" in line
        assert lines[0] == lines[1]  # the same rule, the same words
        assert not (tmp_path / "tables").exists()


# --------------------------------------------------------------------------- a damaged file
def _truncated(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _other_schema(path: Path) -> None:
    table = pq.read_table(path)
    pq.write_table(table.drop(["benchmark", "output"]), path)  # metadata kept: only the columns are wrong


DAMAGE = {
    "truncated": (_truncated, "cannot be read (ArrowInvalid"),
    "another schema": (_other_schema, "has no column 'benchmark'"),
    "metadata not JSON": (lambda path: _with_meta(path, b"{not json"), "langdec.items metadata is not JSON"),
    "metadata a list": (lambda path: _with_meta(path, b'["strict", "refined"]'), "langdec.items metadata is list"),
    "metadata missing": (lambda path: _with_meta(path, None), "has no langdec.items metadata"),
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_a_damaged_items_file_is_one_line_in_every_reader_naming_what_rebuilds_it(imported, tmp_path, capsys, case):
    """On main: ArrowInvalid, IndexError, KeyError, JSONDecodeError or TypeError tracebacks; and reparse's advice
    for a broken file was reparse itself, which reads the same broken file."""
    damage, problem = DAMAGE[case]
    run = _run(BASELINE)
    with damaged(run, damage):
        reparse = ["reparse", run.info.run_id, "--extractor", "refined"]
        for argv in (_report(tmp_path), _tables(tmp_path), reparse):
            line = _one_line(capsys, argv)
            assert problem in line, (argv[0], line)
            assert f"run {run.info.run_id} ({BASELINE}) in {EXPERIMENT}" in line, line
            # rebuilt from its source, never from the damaged file
            assert f"mlflow runs delete --run-id {run.info.run_id}" in line and "langdec import-results " in line
            assert "langdec reparse" not in line
        assert not (tmp_path / "tables").exists() and not (tmp_path / "report").exists()


def test_the_advice_for_a_damaged_file_rebuilds_the_run(imported, tmp_path, capsys):
    run = _run(BASELINE)
    _truncated(_items_path(run))
    line = _one_line(capsys, _report(tmp_path))
    advice = line.split("then `", 1)[1].split("`", 1)[0]
    assert advice == f"langdec import-results {imported} --experiment {EXPERIMENT}"
    MlflowClient().delete_run(run.info.run_id)  # what `mlflow runs delete --run-id` does
    assert cli.main(["--quiet", *advice.split()[1:]]) == 0
    rebuilt = _run(BASELINE)
    assert rebuilt.info.run_id != run.info.run_id
    assert cli.main(["--quiet", *_report(tmp_path)]) == 0
    assert cli.main(["--quiet", *_tables(tmp_path)]) == 0


# --------------------------------------------------------------------------- records gone
def test_runs_whose_records_are_gone_are_named_not_reported_as_an_empty_experiment(imported, tmp_path, capsys):
    """On main, report exited 0 with empty tables when every run's artifacts were gone (study-tables --force on the
    artifact root had replaced them)."""
    client = MlflowClient()
    exp = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([exp.experiment_id], "tags.`langdec.stage` = 'evaluate'")
    saved = {}
    for run in runs:
        path = _items_path(run)
        saved[path] = path.read_bytes()
        path.unlink()
    try:
        for argv in (_report(tmp_path), _tables(tmp_path)):
            line = _one_line(capsys, argv)
            assert f"{len(runs)} of {len(runs)} evaluation runs in {EXPERIMENT} lost their per-item records" in line, (
                line
            )
            assert "mlflow runs delete --run-id" in line and "langdec import-results" in line
            assert all(run.info.run_id in line for run in runs[:4])
        assert not (tmp_path / "report").exists() and not (tmp_path / "tables").exists()
    finally:
        for path, raw in saved.items():
            path.write_bytes(raw)


# --------------------------------------------------------------------------- JSON nested too deep
@pytest.mark.parametrize("which", ["results", "summary"])
def test_a_results_or_summary_file_nested_too_deep_is_one_line(store, tmp_path, capsys, which):
    """On main, json.loads raised RecursionError: a traceback after the runs before it had been imported."""
    root = _results(tmp_path / "deep")
    folder = root / "phase3" / "conditions" / "condition-2-zh-5k" / "seed42"
    name = f"condition-2-zh-5k_seed42_{'results' if which == 'results' else 'summary'}_template1.json"
    (folder / name).write_text("[" * 200_000 + "]" * 200_000)
    line = _one_line(capsys, ["import-results", str(root), "--experiment", "deep"])
    assert name in line and "nested deeper" in line and "re-download it" in line
