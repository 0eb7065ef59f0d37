"""The report as Markdown (report.md): the summary, the figures, a table per kind of score with every cell's
interval and flags, the XNLI overlap section, benchmarks beside their variants and the study's units."""

from __future__ import annotations

from typing import Any

from langdec.analysis.comparison import Report
from langdec.analysis.frames import EXTRACTORS
from langdec.analysis.render.grids import headline_grid, p_value, paper_benchmarks, paper_grid, pipe_table
from langdec.analysis.statistics import BOOTSTRAP_ROUNDS
from langdec.analysis.study_tables import EXTRACTORS as STUDY_EXTRACTORS
from langdec.analysis.study_tables import StudyTables
from langdec.analysis.variants import variant_gaps
from langdec.analysis.xnli_overlap import OVERLAP_LABELS, OVERLAP_STATS
from langdec.evaluation.diagnostics import BUCKETS, XNLI_LABELS, overlap_share


def markdown(report: Report, figures: list[str], *, cell_tables: bool = True) -> str:
    """The report as Markdown; `cell_tables=False` leaves out the per-cell tables (report.md and report.json keep them)."""
    s = report.summary()
    out = [
        "# langdec comparison report",
        "",
        f"Extractor versions: {', '.join(f'{k} `{v}`' for k, v in report.extractor_versions.items())}.",
        "",
        f"{s['cells']} condition cells: {s['win']} wins, {s['loss']} losses, {s['tie']} ties (95% paired bootstrap "
        f"over items, {BOOTSTRAP_ROUNDS} rounds); {s['sign_flips']} conclusions flip sign between the strict and refined "
        f"extractors; {s['mostly_one_label']} cells answer mostly one label.",
        "",
        "A value is the accuracy over the templates and instruction languages the condition was evaluated on, per",
        "seed, then mean ± std over seeds; the baseline is taken over exactly the same cells. Extractors: `strict` and",
        "`refined` are the study's two (its inference-time extractor and its reparse), `langdec` is langdec's own rules.",
        "",
    ]
    for fig in figures:
        out += [f"![{fig}]({fig})", ""]
    if cell_tables:
        out += cell_sections(report)
    else:
        out += [
            "Every cell (condition, benchmark, data language, extractor) with its interval and flags: report.md, report.json.",
            "",
        ]
    out += overlap_markdown(report.overlap, report.extractor)
    out += variant_markdown(variant_gaps(report), report.extractor)
    if report.study:
        out += study_markdown(report.study)
    return "\n".join(out)


def cell_sections(report: Report) -> list[str]:
    """A section per kind of score: every cell with its seeds, baseline, delta, interval, outcome and flags."""
    out: list[str] = []
    for kind in [f"gen.{n}" for n in EXTRACTORS] + ["ll", "code.pass_at_1"]:
        rows = [c for c in report.cells if c.kind == kind]
        if not rows:
            continue
        out += [
            f"## {kind}",
            "",
            "| condition | benchmark | data | seeds | mean ± std | baseline | delta | 95% CI | outcome | flags |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for c in sorted(rows, key=lambda c: (c.group != "baseline", c.group, c.benchmark, c.data)):
            ci = f"[{c.ci[0]:+.3f}, {c.ci[1]:+.3f}]" if c.ci else ""
            out.append(
                f"| {c.group} | {c.benchmark} | {c.data} | {len(c.per_seed)} | {c.mean:.3f} ± {c.std:.3f} | "
                f"{'' if c.baseline is None else f'{c.baseline:.3f}'} | {'' if c.delta is None else f'{c.delta:+.3f}'} | "
                f"{ci} | {c.outcome} | {'; '.join(c.flags)} |"
            )
        out.append("")
    return out


def overlap_markdown(rows: dict[str, dict[str, float]], extractor: str) -> list[str]:
    if not rows:
        return []
    out = [
        "## XNLI word overlap",
        "",
        f"Mean over the condition's XNLI cells ({extractor} extractor). Overlap is the share of the hypothesis's words "
        "found in the premise; low, mid and high are its tertiles over the items (the same items for every "
        "condition). Reverse overlap bias: the share of low-overlap entailment pairs answered neutral or contradiction.",
        "",
        "| condition | " + " | ".join(OVERLAP_LABELS) + " |",
        "|---|" + "---|" * len(OVERLAP_LABELS),
    ]
    for group, stats in rows.items():
        cells = [f"{stats[k]:.3f}" if k in stats else "" for k in OVERLAP_STATS]
        out.append(f"| {group} | " + " | ".join(cells) + " |")
    shares = [
        (g, b)
        for g, stats in rows.items()
        for b in BUCKETS
        if any(overlap_share(b, lab) in stats for lab in XNLI_LABELS)
    ]
    if shares:
        out += [
            "",
            "Predicted labels by overlap bucket: the share of the bucket's items answered with each label (the rest "
            "were unparsed). A model leaning on overlap answers entailment more as overlap rises.",
            "",
            "| condition | overlap | " + " | ".join(XNLI_LABELS) + " | unparsed |",
            "|---|---|" + "---|" * (len(XNLI_LABELS) + 1),
        ]
        for group, b in shares:
            values = [rows[group].get(overlap_share(b, lab)) for lab in XNLI_LABELS]
            rest = 1 - sum(v for v in values if v is not None)
            out.append(
                f"| {group} | {b} | "
                + " | ".join("" if v is None else f"{v:.3f}" for v in values)
                + f" | {max(rest, 0.0):.3f} |"
            )
    return out + [""]


def variant_markdown(rows: list[dict[str, Any]], extractor: str) -> list[str]:
    if not rows:
        return []
    out = [
        "## Benchmarks beside their variants",
        "",
        f"Accuracy ({extractor} extractor) on a benchmark's own split and on its variant: mixed-language (one half of "
        "each pair from the parallel item in another language; a large gap means the score rests on same-language "
        "surface cues more than on transfer) or machine-translated (the English items translated by the condition-5 "
        "backend; machine-translated test sets tend to overestimate low-resource languages). Gap = own minus variant.",
        "",
        "| condition | benchmark | variant | kind | data | own split | variant | gap |",
        "|---|---|---|---|---|---|---|---|",
    ]
    out += [
        f"| {r['group']} | {r['benchmark']} | {r['variant']} | {r['kind']} | {r['data']} | {r['own']:.3f} | {r['variant_acc']:.3f} | "
        f"{r['gap']:+.3f} |"
        for r in rows
    ]
    return out + [""]


def study_markdown(tables: StudyTables) -> list[str]:
    """The study's units: its headline, its paper tables per extractor and benchmark, conclusion flips, significance."""
    out = [
        "## The study's units",
        "",
        "As the study's paper tables: accuracy in percent per (condition, benchmark, instruction language), the mean",
        "over seed, template and data language; in brackets the mean per-cell delta vs the baseline.",
        "",
    ]
    if tables.headline:
        out += [
            "### What the refined extractor changes (percent; mean over cells)",
            "",
            *pipe_table(headline_grid(tables)),
            "",
        ]
    for name in STUDY_EXTRACTORS:
        for bench in paper_benchmarks(tables, name):
            out += [f"### {bench}, {name} extractor", "", *pipe_table(paper_grid(tables, name, bench)), ""]
    return out + _flips_markdown(tables) + _significance_markdown(tables)


def _flips_markdown(tables: StudyTables) -> list[str]:
    out = [
        f"### Conclusion flips (|delta| > {tables.threshold:g} under both extractors, opposite signs)",
        "",
        f"{len(tables.flips)} of {tables.cells_compared} condition cells (condition, seed, template, benchmark, data, "
        f"instruction) flip between strict and refined.",
        "",
    ]
    if tables.flips:
        out += [
            "| condition | seed | template | benchmark | data | instr | delta strict | delta refined |",
            "|---|---|---|---|---|---|---|---|",
        ]
        out += [
            f"| {f.group} | {f.seed} | {f.template} | {f.benchmark} | {f.data} | {f.instr} | {f.delta_strict:+.4f} | "
            f"{f.delta_refined:+.4f} |"
            for f in tables.flips
        ]
        out.append("")
    return out


def _significance_markdown(tables: StudyTables) -> list[str]:
    if not tables.significance:
        return []
    out = [
        f"### Significance ({tables.extractor} extractor; Bonferroni threshold p < {tables.bonferroni_p:.2e} over "
        f"{len(tables.significance)} comparisons)",
        "",
        "| condition | benchmark | data | instr | seeds | n cond | n base | baseline | condition | delta pp | "
        "one-sample p | Welch p | z | z p | Bonferroni |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in tables.significance:
        out.append(
            f"| {s.group} | {s.benchmark} | {s.data} | {s.instr} | {s.n_seeds} | {s.n_items_cond} | {s.n_items_base} | "
            f"{s.baseline_acc:.4f} | {s.cond_acc:.4f} | {s.delta * 100:+.2f} | {p_value(s.one_sample_p)} | {p_value(s.welch_p)} | "
            f"{'' if s.prop_z != s.prop_z else f'{s.prop_z:.3f}'} | {p_value(s.prop_z_p)} | {'***' if s.bonferroni else ''} |"
        )
    return out + [""]
