"""The report as terminal text: one table per kind of score (a row per benchmark and data language, a column
per condition group), the study's paper tables and conclusion flips, the XNLI overlap table."""

from __future__ import annotations

from langdec.analysis.comparison import Report
from langdec.analysis.render.grids import aligned, cell_text, headline_grid, paper_benchmarks, paper_grid
from langdec.analysis.study_tables import StudyTables
from langdec.analysis.xnli_overlap import OVERLAP_LABELS, OVERLAP_STATS


def print_tables(report: Report) -> str:
    """Every table that has cells: generative, log-likelihood, and executed code."""
    kinds = [f"gen.{report.extractor}", "ll", "code.pass_at_1"]
    present = {c.kind for c in report.cells}
    parts = [print_table(report, k) for k in kinds if k in present]
    if report.study and report.study.paper:
        parts.append(study_terminal(report.study))
    if report.overlap:
        parts.append(overlap_terminal(report.overlap, report.extractor))
    return "\n\n".join(parts) or "(no evaluation runs yet)"


def print_table(report: Report, kind: str | None = None) -> str:
    """Terminal table: one row per (benchmark, data language), one column per condition group."""
    kind = kind or f"gen.{report.extractor}"
    groups = sorted({c.group for c in report.cells if c.kind == kind}, key=lambda g: (g != "baseline", g))
    columns = sorted({(c.benchmark, c.data) for c in report.cells if c.kind == kind})
    if not groups:
        return "(no evaluation runs yet)"
    title = (
        f"{kind}"
        + (" (executed in the sandbox)" if kind.startswith("code.") else " accuracy")
        + (" (no extractor)" if kind == "ll" else "")
        + "; (delta vs baseline) [its 95% paired bootstrap interval], W/L = the interval excludes 0; o = mostly one label, "
        "f = sign flips between extractors; n = items, a cell's own where it differs)"
    )
    body = []
    for bench, data in columns:
        n = max((c.n_items for c in report.cells if (c.benchmark, c.data, c.kind) == (bench, data, kind)), default=0)
        row = [f"{bench}/{data} n={n}"]
        for g in groups:
            cell = report.value(g, bench, data, kind)
            # a cell's own n where it differs from the row's (e.g. a condition scored on fewer instruction languages)
            row.append(cell_text(cell) + (f" n={cell.n_items}" if cell.n_items != n else "") if cell else "")
        body.append(row)
    return title + "\n" + aligned([["benchmark/data", *groups], *body], strip=False)


def overlap_terminal(rows: dict[str, dict[str, float]], extractor: str) -> str:
    table = [["condition", *(label.replace(",", "") for label in OVERLAP_LABELS)]]
    table += [[g, *(f"{stats[k]:.3f}" if k in stats else "-" for k in OVERLAP_STATS)] for g, stats in rows.items()]
    return f"XNLI by word overlap ({extractor} extractor, mean over cells)\n" + aligned(table)


def study_terminal(tables: StudyTables, extractor: str = "refined") -> str:
    parts = [
        f"the study's paper tables ({extractor} extractor): accuracy % per condition and instruction language, mean over "
        "seed, template and data language; (mean per-cell delta vs baseline)"
    ]
    for bench in paper_benchmarks(tables, extractor):
        parts.append(f"{bench}\n" + aligned(paper_grid(tables, extractor, bench)))
    if tables.headline:
        parts.append("what the refined extractor changes (percent, mean over cells)\n" + aligned(headline_grid(tables)))
    parts.append(
        f"conclusion flips (the study's rule: |delta| > {tables.threshold:g} under strict and refined, opposite signs): "
        f"{len(tables.flips)} of {tables.cells_compared} condition cells"
    )
    return "\n\n".join(parts)
