"""Every file `langdec study-tables` writes: its folder (the study's own: refined-tables/ as on the hub,
phase-3/ and figures-phase3/ as in its repository; langdec/ for langdec's named improvements), and what it
reproduces. The one list the command, its manifest, the README and the tests read."""

from __future__ import annotations

from dataclasses import dataclass

REFINED = "refined-tables"
PHASE3 = "phase-3"
FIGURES = "figures-phase3"
LANGDEC = "langdec"


@dataclass(frozen=True)
class StudyFile:
    name: str
    folder: str
    made_by: str  # the study's script it reproduces, or "langdec"
    exact: bool = True  # byte for byte the study's script's output (False: a figure, drawn by langdec)


COMPARISON = "evaluation/scripts/build_comparison.py"
VERSUS = "evaluation/scripts/build_vs_baseline.py"
FRAMEWORK = "evaluation/scripts/build_framework_comparison.py"

FILES: tuple[StudyFile, ...] = (
    *(
        StudyFile(n, REFINED, COMPARISON)
        for n in (
            "cells.tsv",
            "summary_by_benchmark.tsv",
            "summary_by_instr_lang.tsv",
            "summary_by_data_lang.tsv",
            "summary_by_condition.tsv",
            "summary_by_template.tsv",
            "summary_bench_x_instr.tsv",
            "summary_cond_x_bench.tsv",
            "overall_stats.json",
        )
    ),
    *(
        StudyFile(n, REFINED, VERSUS)
        for n in (
            "vs_baseline_cells.tsv",
            "vs_baseline_by_condition.tsv",
            "vs_baseline_by_cond_x_bench.tsv",
            "vs_baseline_by_cond_x_instr.tsv",
            "conclusion_flips.tsv",
        )
    ),
    *(
        StudyFile(f"framework_{n}.tsv", REFINED, FRAMEWORK)
        for n in (
            "template_comparison",
            "same_language_comparison",
            "data_volume_comparison",
            "cross_language_impact",
            "decomposition_vs_baseline",
            "seed_variance",
            "template_robustness",
            "benchmark_breakdown",
            "parse_failure_recovery",
            "parse_failure_recovery_top_cells",
        )
    ),
    StudyFile("significance.tsv", REFINED, "evaluation/scripts/build_significance.py"),
    StudyFile("correct-via-constant-rates.tsv", REFINED, "evaluation/scripts/build_correct_via_constant.py"),
    StudyFile("tables.tex", PHASE3, "analysis/scripts/build_phase3_tables.py"),
    StudyFile("xnli-label-distributions.tsv", PHASE3, "evaluation/scripts/build_xnli_label_bias.py"),
    StudyFile("sib200-category-accuracy.tsv", PHASE3, "evaluation/scripts/build_sib200_category_breakdown.py"),
    StudyFile("cross-seed-variance.tsv", PHASE3, "analysis/phase-3/cross-seed-variance.md (no script)"),
    StudyFile("fig04_signflip_appendix.tsv", FIGURES, "analysis/scripts/fig04_signflip_slopegraph.py"),
    *(
        StudyFile(f"{n}.{ext}", FIGURES, f"analysis/scripts/{n}.py", exact=False)
        for n in (
            "fig01_extractor_slopegraph",
            "fig02_cell_scatter",
            "fig03_regression_concentration",
            "fig05_cond5_rehabilitated",
        )
        for ext in ("png", "pdf")
    ),
    StudyFile("langdec_recoverable.tsv", LANGDEC, "langdec"),
    StudyFile("langdec_recoverable_by_benchmark.tsv", LANGDEC, "langdec"),
    StudyFile("framework_parse_failure_recovery_per_cell.tsv", LANGDEC, "langdec"),
    StudyFile("significance_true_n.tsv", LANGDEC, "langdec"),
    StudyFile("cross-seed-variance_exact.tsv", LANGDEC, "langdec"),
    *(
        StudyFile(f"{n}_without_strays.tsv", LANGDEC, "langdec")
        for n in ("correct-via-constant-rates", "xnli-label-distributions", "sib200-category-accuracy")
    ),
)
# fig04 slopegraphs are named by their row counts (fig04_signflip_<benchmark>_top<N>/_all<n>), so not listed above


def where(name: str) -> StudyFile:
    for f in FILES:
        if f.name == name:
            return f
    if name.startswith("fig04_signflip_"):
        return StudyFile(name, FIGURES, "analysis/scripts/fig04_signflip_slopegraph.py", exact=False)
    raise KeyError(name)
