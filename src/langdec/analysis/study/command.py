"""`langdec study-tables`: the study's analysis files from an experiment's evaluation runs, in one folder, logged
as one MLflow run.

The order is the study's cookbook (analysis/phase-3/data-refresh-cookbook.md), where each later script reads an
earlier one's file: the refined tables, then significance, the LaTeX tables, cross-seed variance and the
figures from vs_baseline_cells.tsv / cells.tsv / conclusion_flips.tsv as written, then the per-item breakdowns.
The tables are the registry's (`langdec.analysis.tables`), which `report` writes its files with too.
Everything is written into a temporary folder beside DIR, which takes DIR's place only when all of it exists.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from langdec.analysis import tables
from langdec.analysis.study import data, figures
from langdec.analysis.study.files import FIGURES, FILES, where
from langdec.core.atomic import atomic_dir
from langdec.evaluation import records as items
from langdec.tracking import lease

if TYPE_CHECKING:
    import pandas as pd

STAGE = tables.STUDY


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


def build(study: data.StudyData, top: int = 15) -> tuple[tables.Build, dict[str, Callable[[Path], list[str]]]]:
    """The tables of the study (`tables.of(STAGE)`, each made on first use), and the figures to draw (name -> a
    function drawing into a folder) from its files as written."""
    made = tables.Build(tables.STUDY, study)

    def read(name: str) -> "pd.DataFrame":
        return made.once(f"frame:{name}", lambda: figures.read_tsv(made.text(name)))

    draws = {
        "fig01": lambda out: figures.extractor_slopegraph(tables.vs_frame(made), out),
        "fig02": lambda out: figures.cell_scatter(read("cells.tsv"), out),
        "fig03": lambda out: figures.regression_concentration(read("cells.tsv"), out),
        "fig04": lambda out: figures.signflip_slopegraphs(tables.signflips(made)[0], out, top),
        "fig05": lambda out: figures.cond5_rehabilitated(read("vs_baseline_by_cond_x_bench.tsv"), out),
    }
    return made, draws


def run(
    experiment: str,
    out: Path,
    *,
    origin: str | None = None,
    replace: bool = False,
    top: int = 15,
    progress: bool = True,
) -> Written:
    from tqdm import tqdm

    from langdec.core.atomic import check_output

    check_output(
        out, replace=replace
    )  # before any record is read, never the store's artifacts, the home or the checkout
    study = data.load(experiment, origin)
    made, draws = build(study, top)
    with atomic_dir(out, replace=replace) as tmp:
        written = tables.write(made, tmp)
        (tmp / FIGURES).mkdir(exist_ok=True)
        for name, draw in tqdm(draws.items(), desc="figures", disable=not progress):
            written += [f"{FIGURES}/{f}" for f in draw(tmp / FIGURES)]
        manifest = _manifest(experiment, study, sorted(written))
        (tmp / "MANIFEST.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
        written.append("MANIFEST.json")
    flips = made.text("conclusion_flips.tsv").count("\n") - 1
    run_id = _log(experiment, out, study, manifest, flips)
    totals = study.cells[["none_refined", "recovered"]].sum()
    return Written(
        out,
        run_id,
        sorted(written),
        study.sources,
        study.skipped,
        flips,
        len(study.cells),
        {"refined_unread": int(totals["none_refined"]), "langdec_reads": int(totals["recovered"])},
    )


def _manifest(experiment: str, study: data.StudyData, written: list[str]) -> dict:
    versions = {}
    for source in [*study.sources, *study.strays]:
        schema = items.schema(source.run_id, source.artifact_uri)
        for name, version in (items.versions_of(schema) if schema is not None else {}).items():
            versions.setdefault(name, set()).add(version)
    files = []
    for rel in written:
        info = where(Path(rel).name)
        files.append(
            {
                "file": rel,
                "reproduces": info.made_by,
                "byte_identical_to_the_study": info.exact
                and info.made_by != "langdec"
                and "no script" not in info.made_by,
            }
        )
    return {
        "experiment": experiment,
        "extractor_versions": {k: sorted(v) for k, v in sorted(versions.items())},
        "sessions": [
            {
                "condition": s.condition,
                "seed": s.seed,
                "template": s.part or "template1+template2",
                "origin": s.origin,
                "run_id": s.run_id,
            }
            for s in study.sources
        ],
        # counted by the study's per-item breakdowns alone, as its scripts count them (import-results keeps them flagged)
        "stray_files": [
            {"condition": s.condition, "seed": s.seed, "file": s.stray, "run_id": s.run_id} for s in study.strays
        ],
        "skipped_runs": study.skipped,
        "files": files,
    }


def _log(experiment: str, out: Path, study: data.StudyData, manifest: dict, flips: int) -> str:
    """One MLflow run per invocation: the files as artifacts, the extractor versions and source runs as tags."""
    import mlflow

    runs = ",".join(sorted(s.run_id for s in [*study.sources, *study.strays]))
    tags = {f"langdec.extractor.{k}": ",".join(v) for k, v in manifest["extractor_versions"].items()}
    tags.update(
        {
            "langdec.source_runs": runs if len(runs) <= 5000 else f"{len(study.sources)} runs, listed in MANIFEST.json",
            "langdec.source_runs_sha256": hashlib.sha256(runs.encode()).hexdigest()[:16],
            "langdec.sessions": str(len(study.sources)),
            "langdec.stray_files": str(len(study.strays)),
        }
    )
    params = {"origin": ",".join(sorted({s.origin for s in study.sources})), "sessions": len(study.sources)}
    with lease.stage_run(experiment, STAGE, "study-tables", params=params, tags=tags, reuse=False) as srun:
        mlflow.log_metrics(
            {
                "study.cells": float(len(study.cells)),
                "study.sessions": float(len(study.sources)),
                "study.conclusion_flips": float(flips),
            }
        )
        mlflow.log_artifacts(str(out), artifact_path="study-tables")
        return srun.run_id


def expected_files() -> list[str]:
    """The files every run writes whatever the data (fig04 slopegraphs depend on the flips found)."""
    return [f"{f.folder}/{f.name}" for f in FILES]
