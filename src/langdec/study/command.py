"""`langdec study-tables`: the study's analysis files from an experiment's evaluation runs, in one folder, logged
as one MLflow run.

The order is the study's cookbook (analysis/phase-3/data-refresh-cookbook.md), where each later script reads an
earlier one's file: the refined tables, then significance, the LaTeX tables, cross-seed variance and the
figures from vs_baseline_cells.tsv / cells.tsv / conclusion_flips.tsv as written, then the per-item breakdowns.
Everything is written into a temporary folder beside DIR, which takes DIR's place only when all of it exists.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .. import items, tracking
from ..atomic import atomic_dir
from . import breakdowns, data, figures, improvements, latex, refined_tables, significance, variance
from .files import FILES, FIGURES, where

STAGE = "study-tables"


@dataclass
class Written:
    out: Path
    run_id: str
    files: list[str]  # relative paths under out
    sources: list[data.Source]
    skipped: list[str]
    flips: int
    cells: int
    recoverable: dict[str, int]  # refined's unread answers over all cells, and how many of them langdec reads


def build(study: data.StudyData, top: int = 15) -> tuple[dict[str, str], dict[str, Callable[[Path], list[str]]]]:
    """{file name: text} of every table, and the figures to draw (name -> a function drawing into a folder)."""
    cells = refined_tables.cells_of(study.cells)
    versus = refined_tables.versus(cells)
    text = {**refined_tables.comparison_files(cells), **refined_tables.versus_files(versus), **refined_tables.framework_files(cells)}
    vs_frame = significance.read_cells(text["vs_baseline_cells.tsv"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's precision notes on identical samples: the study's file carries the same numbers
        text["significance.tsv"] = significance.study_file(text["vs_baseline_cells.tsv"])
        text["significance_true_n.tsv"] = significance.true_n_file(versus)
    text["tables.tex"] = latex.tables_tex(vs_frame)
    text["cross-seed-variance.tsv"] = variance.study_file(vs_frame)
    text["cross-seed-variance_exact.tsv"] = variance.exact_file(versus)
    text["correct-via-constant-rates.tsv"] = breakdowns.correct_via_constant(study.sib200)
    text["xnli-label-distributions.tsv"] = breakdowns.xnli_label_distributions(study.xnli)
    text["sib200-category-accuracy.tsv"] = breakdowns.sib200_category_accuracy(study.sib200)
    # langdec's: the same breakdowns of the study's sessions alone, no stray file counted as one more run of a seed
    sib, xnli = breakdowns.without_strays(study.sib200), breakdowns.without_strays(study.xnli)
    text["correct-via-constant-rates_without_strays.tsv"] = breakdowns.correct_via_constant(sib)
    text["xnli-label-distributions_without_strays.tsv"] = breakdowns.xnli_label_distributions(xnli)
    text["sib200-category-accuracy_without_strays.tsv"] = breakdowns.sib200_category_accuracy(sib)
    text["langdec_recoverable.tsv"], text["langdec_recoverable_by_benchmark.tsv"] = improvements.recoverable(study.cells)
    text["framework_parse_failure_recovery_per_cell.tsv"] = improvements.recovery_per_cell(cells)
    flips, text["fig04_signflip_appendix.tsv"] = figures.signflip_appendix(text["conclusion_flips.tsv"])
    cell_frame = figures._read(text["cells.tsv"])
    draws = {"fig01": lambda out: figures.extractor_slopegraph(vs_frame, out), "fig02": lambda out: figures.cell_scatter(cell_frame, out),
             "fig03": lambda out: figures.regression_concentration(cell_frame, out),
             "fig04": lambda out: figures.signflip_slopegraphs(flips, out, top),
             "fig05": lambda out: figures.cond5_rehabilitated(figures._read(text["vs_baseline_by_cond_x_bench.tsv"]), out)}
    return text, draws



def run(experiment: str, out: Path, *, origin: str | None = None, replace: bool = False, top: int = 15, progress: bool = True) -> Written:
    from tqdm import tqdm

    from ..atomic import check_output

    check_output(out, replace=replace)  # before any record is read, never the store's artifacts, the home or the checkout
    study = data.load(experiment, origin)
    text, draws = build(study, top)
    written: list[str] = []
    with atomic_dir(out, replace=replace) as tmp:
        for name, body in text.items():
            path = tmp / where(name).folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(body.encode("utf-8"))  # bytes: the study's files have \n line ends on every platform
            written.append(f"{where(name).folder}/{name}")
        (tmp / FIGURES).mkdir(exist_ok=True)
        for name, draw in tqdm(draws.items(), desc="figures", disable=not progress):
            written += [f"{FIGURES}/{f}" for f in draw(tmp / FIGURES)]
        manifest = _manifest(experiment, study, sorted(written))
        (tmp / "MANIFEST.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
        written.append("MANIFEST.json")
    flips = text["conclusion_flips.tsv"].count("\n") - 1
    run_id = _log(experiment, out, study, manifest, flips)
    totals = study.cells[["none_refined", "recovered"]].sum()
    return Written(out, run_id, sorted(written), study.sources, study.skipped, flips, len(study.cells),
                   {"refined_unread": int(totals["none_refined"]), "langdec_reads": int(totals["recovered"])})


def _manifest(experiment: str, study: data.StudyData, written: list[str]) -> dict:
    versions = {}
    for source in [*study.sources, *study.strays]:
        schema = items.schema(source.run_id, source.artifact_uri)
        for name, version in (items.versions_of(schema) if schema is not None else {}).items():
            versions.setdefault(name, set()).add(version)
    files = []
    for rel in written:
        info = where(Path(rel).name)
        files.append({"file": rel, "reproduces": info.made_by, "byte_identical_to_the_study": info.exact and info.made_by != "langdec"
                      and "no script" not in info.made_by})
    return {"experiment": experiment, "extractor_versions": {k: sorted(v) for k, v in sorted(versions.items())},
            "sessions": [{"condition": s.condition, "seed": s.seed, "template": s.part or "template1+template2", "origin": s.origin,
                          "run_id": s.run_id} for s in study.sources],
            # counted by the study's per-item breakdowns alone, as its scripts count them (import-results keeps them flagged)
            "stray_files": [{"condition": s.condition, "seed": s.seed, "file": s.stray, "run_id": s.run_id} for s in study.strays],
            "skipped_runs": study.skipped, "files": files}


def _log(experiment: str, out: Path, study: data.StudyData, manifest: dict, flips: int) -> str:
    """One MLflow run per invocation: the files as artifacts, the extractor versions and source runs as tags."""
    import mlflow

    runs = ",".join(sorted(s.run_id for s in [*study.sources, *study.strays]))
    tags = {f"langdec.extractor.{k}": ",".join(v) for k, v in manifest["extractor_versions"].items()}
    tags.update({"langdec.source_runs": runs if len(runs) <= 5000 else f"{len(study.sources)} runs, listed in MANIFEST.json",
                 "langdec.source_runs_sha256": hashlib.sha256(runs.encode()).hexdigest()[:16], "langdec.sessions": str(len(study.sources)),
                 "langdec.stray_files": str(len(study.strays))})
    params = {"origin": ",".join(sorted({s.origin for s in study.sources})), "sessions": len(study.sources)}
    with tracking.stage_run(experiment, STAGE, "study-tables", params=params, tags=tags, reuse=False) as srun:
        mlflow.log_metrics({"study.cells": float(len(study.cells)), "study.sessions": float(len(study.sources)),
                            "study.conclusion_flips": float(flips)})
        mlflow.log_artifacts(str(out), artifact_path="study-tables")
        return srun.run_id


def expected_files() -> list[str]:
    """The files every run writes whatever the data (fig04 slopegraphs depend on the flips found)."""
    return [f"{f.folder}/{f.name}" for f in FILES]
