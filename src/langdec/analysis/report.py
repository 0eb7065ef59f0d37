"""`langdec report`: each condition against the baseline, cell by cell, honestly; written as report.md, report.html
and report.json (the table registry's, `langdec.analysis.tables`) beside its figures, and logged as one MLflow run.

Built from per-item records (every finished evaluation run's items.parquet, each answer labelled once by every
extractor at evaluate/import/reparse time, and its log-likelihood choices), not from pre-averaged metrics: the
collector (`collect`) reads them into frames (`frames`), `comparison` computes the cells against a like-for-like
baseline (`baselines`) with the statistics of `statistics`, `study_tables` the study's own units, `render` writes
them. A report never pools tiers: records carry their tier, and a condition group seen at two tiers is refused
(name one with `tier`, or split with `by_tier`).

This module is also the report's public face: the names other packages and the tests call live in the modules
above and are importable from here.
"""

from __future__ import annotations

from pathlib import Path

from langdec.analysis import tables
from langdec.analysis.collect import check_tiers, collect, group_of, latest_runs
from langdec.analysis.comparison import Report, ReportCell, build
from langdec.analysis.frames import EXTRACTORS, Frames, concat, frames_of, separate_tiers
from langdec.analysis.render.html import html
from langdec.analysis.render.markdown import markdown, overlap_markdown, variant_markdown
from langdec.analysis.render.plots import (
    draw,
    heatmap,
    heatmap_by_instruction,
    overlap_plot,
    say_if_nothing,
    seed_spread,
)
from langdec.analysis.render.terminal import overlap_terminal, print_table, print_tables
from langdec.analysis.statistics import FLIP_THRESHOLD
from langdec.analysis.variants import variant_gaps
from langdec.analysis.xnli_overlap import overlap_rows
from langdec.evaluation import extractors
from langdec.tracking import lease
from langdec.tracking import views as mlflow_views

__all__ = [
    "EXTRACTORS",
    "Frames",
    "Report",
    "ReportCell",
    "build",
    "check_tiers",
    "collect",
    "concat",
    "frames_of",
    "group_of",
    "heatmap",
    "heatmap_by_instruction",
    "html",
    "latest_runs",
    "markdown",
    "overlap_markdown",
    "overlap_plot",
    "overlap_rows",
    "overlap_terminal",
    "print_table",
    "print_tables",
    "run_stage",
    "say_if_nothing",
    "seed_spread",
    "separate_tiers",
    "variant_gaps",
    "variant_markdown",
]


def run_stage(
    experiment: str,
    out_dir: Path,
    *,
    extractor: str = "refined",
    tier: str | None = None,
    by_tier: bool = False,
    flip_threshold: float = FLIP_THRESHOLD,
) -> tuple[Report, Path]:
    """The report of the experiment's newest evaluation runs, written into `out_dir` and logged; (report, report.md)."""
    extractors.get(extractor)  # an unknown name fails first, listing the valid ones
    latest = latest_runs(experiment, tier)
    check_tiers(latest, by_tier=by_tier)  # a refusal comes before any record is read
    frames = collect(experiment, tier, latest, by_tier=by_tier)  # groups named with their tier when by_tier
    report = build(frames, extractor=extractor, flip_threshold=flip_threshold)
    report.overlap = overlap_rows(latest, extractor)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = draw(report, frames, out_dir)
    tables.write(tables.Build(tables.REPORT, tables.ReportInputs(report, figures, out_dir)), out_dir)
    params = {"extractor": extractor, "tier": tier or "all", "by_tier": by_tier, "flip_threshold": flip_threshold}
    _log(experiment, report, figures, out_dir, params)
    mlflow_views.publish_quietly(experiment)  # the UI's saved views now see the runs this report covers
    return report, out_dir / "report.md"


def _log(experiment: str, report: Report, figures: list[str], out_dir: Path, params: dict[str, object]) -> None:
    """One MLflow run per report: its summary as metrics, its files as artifacts."""
    import mlflow

    with lease.stage_run(experiment, "report", "report", params=params, tags={}, reuse=False):
        mlflow.log_metrics({f"report.{k}": v for k, v in report.summary().items()})
        mlflow.log_metric("report.study_conclusion_flips", len(report.study.flips) if report.study else 0)
        # the logged page leaves the per-cell tables to report.md/json: the artifact viewer shows it in a frame
        mlflow.log_text(html(markdown(report, figures, cell_tables=False), out_dir), "report.html")
        for name in ["report.md", "report.json", *figures]:
            mlflow.log_artifact(str(out_dir / name))
