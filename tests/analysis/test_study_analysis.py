"""`langdec study-tables` against the study's own scripts: the fixture in tests/fixtures/study_fixture (see its README)
was scored and analysed by the study's code; langdec imports the same result files into a real MLflow store and
must write every one of those files byte for byte. Plus the files langdec adds, the run it logs, and its refusals."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from langdec import cli
from langdec.analysis.study import files as study_files
from langdec.analysis.study import variance

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "study_fixture"
EXPECTED = FIXTURE / "expected"
STUDY_FILES = sorted(p.name for p in EXPECTED.iterdir() if p.name != "figures.txt")
EXPERIMENT = "imported-phase-3"


@pytest.fixture(scope="module")
def written(module_store, tmp_path_factory):
    assert cli.main(["--quiet", "import-results", str(FIXTURE / "experiments")]) == 0
    out = tmp_path_factory.mktemp("study") / "tables"
    assert cli.main(["--quiet", "study-tables", "--experiment", EXPERIMENT, "--out", str(out)]) == 0
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", STUDY_FILES)
def test_every_file_is_byte_identical_to_the_studys_script(written, name):
    info = study_files.where(name)
    assert info.exact and info.made_by != "langdec"
    assert (written / info.folder / name).read_bytes() == (EXPECTED / name).read_bytes()


@pytest.mark.slow
def test_the_same_figures_as_the_studys_scripts_drew(written):
    drawn = sorted(p.name for p in (written / study_files.FIGURES).glob("*.png"))
    assert drawn == (EXPECTED / "figures.txt").read_text().split()
    assert all((written / study_files.FIGURES / name).stat().st_size > 5000 for name in drawn)
    assert sorted(p.name.replace(".pdf", ".png") for p in (written / study_files.FIGURES).glob("*.pdf")) == drawn


def test_every_listed_file_is_written_and_the_manifest_says_which_are_the_studys(written):
    for rel in (f"{f.folder}/{f.name}" for f in study_files.FILES):
        assert (written / rel).is_file(), rel
    manifest = json.loads((written / "MANIFEST.json").read_text())
    exact = {Path(f["file"]).name for f in manifest["files"] if f["byte_identical_to_the_study"]}
    assert exact == set(STUDY_FILES)  # every study file with a script; cross-seed-variance.tsv has none
    assert len(manifest["sessions"]) == 26 and {s["origin"] for s in manifest["sessions"]} == {"imported"}
    assert [(s["condition"], s["seed"], s["file"]) for s in manifest["stray_files"]] == [
        ("condition-2-ur-5k", "42", "condition-2-ur-5k_seed123_results_template1.json")
    ]
    assert set(manifest["extractor_versions"]) >= {"strict", "refined", "langdec"}


@pytest.mark.parametrize(
    "name, keys",
    [("correct-via-constant-rates.tsv", 5), ("xnli-label-distributions.tsv", 8), ("sib200-category-accuracy.tsv", 8)],
)
def test_the_per_item_breakdowns_count_the_stray_file_as_the_studys_scripts_and_langdec_leaves_it_out(
    written, name, keys
):
    """The fixture's seed-42 folder of condition-2-ur-5k holds a copy of seed 123's template-1 results file: the study's
    three per-item scripts count its cells again under seed 42 (the byte-identical files above); langdec's versions
    in langdec/ are those of the study's sessions alone."""
    study = pd.read_csv(written / study_files.where(name).folder / name, sep="\t", dtype=str, keep_default_na=False)
    mine = pd.read_csv(
        written / "langdec" / name.replace(".tsv", "_without_strays.tsv"), sep="\t", dtype=str, keep_default_na=False
    )
    key = list(study.columns[:keys])
    assert not mine.duplicated(key).any() and study.duplicated(key).sum() > 0
    # the study's file is langdec's plus the stray's rows: seed 123's template-1 rows of the same condition, as seed 42
    rows = lambda frame: Counter(map(tuple, frame.to_numpy().tolist()))
    extra = rows(study) - rows(mine)
    assert sum(extra.values()) == len(study) - len(mine) > 0
    copied = study[(study.condition == "condition-2-ur-5k") & (study.seed == "123") & (study.template == "1")].assign(
        seed="42"
    )
    assert extra == rows(copied)


def test_tables_tex_compiles_as_booktabs_tables(written, tmp_path):
    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex is not installed (make system-deps installs it)")
    doc = tmp_path / "doc.tex"
    doc.write_text(
        "\\documentclass{article}\n\\usepackage{booktabs}\n\\usepackage{amsmath}\n\\begin{document}\n"
        f"\\input{{{written / 'phase-3' / 'tables.tex'}}}\n\\end{{document}}\n"
    )
    done = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", doc.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:]
    assert "Output written on doc.pdf" in done.stdout and (tmp_path / "doc.pdf").stat().st_size > 10000
    assert (written / "phase-3" / "tables.tex").read_text().count("\\begin{tabular}") == 22


def test_the_run_is_logged_with_its_sources_and_extractor_versions(written):
    client = MlflowClient()
    exp = client.get_experiment_by_name(EXPERIMENT)
    (run,) = client.search_runs([exp.experiment_id], "tags.`langdec.stage` = 'study-tables'")
    sources = {r.info.run_id for r in client.search_runs([exp.experiment_id], "tags.`langdec.stage` = 'evaluate'")}
    assert (
        set(run.data.tags["langdec.source_runs"].split(",")) == sources and len(sources) == 26 + 1
    )  # the stray file's run
    assert run.data.tags["langdec.sessions"] == "26" and run.data.tags["langdec.stray_files"] == "1"
    assert run.data.tags["langdec.extractor.refined"] and run.data.metrics["study.conclusion_flips"] == 18
    logged = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="study-tables/refined-tables/cells.tsv"
    )
    assert Path(logged).read_bytes() == (EXPECTED / "cells.tsv").read_bytes()


def test_langdec_reads_what_refined_leaves_unread_and_nothing_it_reads_differently(written):
    cells = pd.read_csv(written / "langdec" / "langdec_recoverable.tsv", sep="\t")
    assert (cells["langdec_reads"] <= cells["refined_unread"]).all() and (
        cells["langdec_reads_correct"] <= cells["langdec_reads"]
    ).all()
    assert (cells["langdec_acc"] >= cells["refined_acc"]).all() and cells["langdec_reads"].sum() > 0
    # the refined accuracies are the study's reparsed summaries'
    vs = pd.read_csv(EXPECTED / "cells.tsv", sep="\t").set_index(
        ["condition", "seed", "template", "benchmark", "data", "instr"]
    )
    mine = cells.set_index(["condition", "seed", "template", "benchmark", "data", "instr"])
    assert (mine["refined_acc"] - vs.loc[mine.index, "repar_acc"]).abs().max() < 1e-4
    by = pd.read_csv(written / "langdec" / "langdec_recoverable_by_benchmark.tsv", sep="\t").set_index("benchmark")
    assert (
        by["langdec_reads"].sum() == cells["langdec_reads"].sum()
        and by.loc["sib200", "cells"] == (cells["benchmark"] == "sib200").sum()
    )


def test_the_true_n_significance_counts_every_xnli_item(written):
    study = pd.read_csv(written / "refined-tables" / "significance.tsv", sep="\t")
    true = pd.read_csv(written / "langdec" / "significance_true_n.tsv", sep="\t")
    row = lambda t: t[
        (t.condition == "condition-2-ur-5k") & (t.benchmark == "xnli") & (t.data == "en") & (t.instr == "en")
    ].iloc[0]
    # the study's fixed table: 2,505 XNLI items per observation; langdec: the cell's own (6 here) x 6 observations
    assert (
        row(study)["n_examples_cond"] == 2505 * 6
        and row(true)["n_examples_cond"] == 6 * 6
        and row(true)["n_examples_base"] == 6 * 2
    )


def test_cross_seed_variance_follows_its_definition_and_the_studys_layout(written):
    published_header = "condition\tbenchmark\tdata_lang\tinstr_lang\tn_seeds\tmean\tstd\tmin\tmax"
    text = (written / "phase-3" / "cross-seed-variance.tsv").read_text()
    assert text.splitlines()[0] == published_header
    table = pd.read_csv(written / "phase-3" / "cross-seed-variance.tsv", sep="\t", dtype=str, keep_default_na=False)
    rows = table[(table.condition == "condition-2-ur-5k") & (table.benchmark == "sib200") & (table.instr_lang == "ur")]
    assert list(rows.data_lang) == ["ALL", "en", "es", "ur", "zh"]
    vs = pd.read_csv(EXPECTED / "vs_baseline_cells.tsv", sep="\t")
    cell = vs[(vs.condition == "condition-2-ur-5k") & (vs.benchmark == "sib200") & (vs.instr == "ur")]
    per_seed = cell.groupby("seed")["delta_rep"].mean() * 100  # the mean over 4 data languages x 2 templates, per seed
    assert float(rows.iloc[0]["mean"]) == pytest.approx(per_seed.mean(), abs=1e-4)
    assert (
        float(rows.iloc[0]["std"]) == pytest.approx(per_seed.std(ddof=1), abs=1e-4) and rows.iloc[0]["n_seeds"] == "3"
    )
    single = table[table.condition == "condition-2-ur-20k"]
    assert (single["std"] == "NA").all() and (single["mean"] == single["min"]).all()
    assert variance.study_file(vs) == text


def test_a_second_run_refuses_an_existing_folder_and_force_replaces_it(written, capsys):
    before = sorted(p.relative_to(written) for p in written.rglob("*"))
    assert cli.main(["--quiet", "study-tables", "--experiment", EXPERIMENT, "--out", str(written)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "exists and is not empty" in err[0] and "--force" in err[0]
    assert sorted(p.relative_to(written) for p in written.rglob("*")) == before


@pytest.mark.parametrize(
    "args, message",
    [
        (["--experiment", "no-such-experiment"], "no experiment 'no-such-experiment'"),
        (
            ["--experiment", EXPERIMENT, "--origin", "trained"],
            "has no finished evaluation run of the study's sessions of origin trained",
        ),
    ],
)
def test_bad_arguments_are_one_line_and_write_nothing(written, tmp_path, capsys, args, message):
    out = tmp_path / "never"
    assert cli.main(["--quiet", "study-tables", *args, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not out.exists() and not list(tmp_path.iterdir())


@pytest.mark.slow
def test_the_analysis_commands_never_import_the_model_libraries(written, tmp_path):
    """report, import-results, reparse and study-tables read labels; they never load torch/transformers/peft/bitsandbytes."""
    probe = (
        "import runpy, sys; sys.argv = ['langdec'] + sys.argv[1:]\n"
        "try:\n    runpy.run_module('langdec.cli', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "print('HEAVY', sorted(m for m in ('torch', 'transformers', 'peft', 'bitsandbytes') if m in sys.modules))"
    )
    commands = [
        ["report", "--experiment", EXPERIMENT, "--by-tier", "--out", str(tmp_path / "report")],
        ["import-results", str(FIXTURE / "experiments")],
        ["reparse", "--experiment", EXPERIMENT, "--extractor", "strict"],
        ["study-tables", "--experiment", EXPERIMENT, "--out", str(tmp_path / "tables")],
    ]
    for command in commands:
        done = subprocess.run(
            [sys.executable, "-c", probe, "--quiet", *command], capture_output=True, text=True, timeout=600
        )
        assert "HEAVY []" in done.stdout, (command, done.stdout[-500:], done.stderr[-1500:])
