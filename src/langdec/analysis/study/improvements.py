"""langdec's files beside the study's, each correcting or extending one of its analyses (README: named improvements).

- `langdec_recoverable.tsv`: per cell, the answers the refined extractor leaves unread that langdec's extractor
  reads (langdec reads every answer refined reads, the same way), how many of them are right, and the accuracy
  that would follow: how much of the study's remaining parse failure is recoverable.
- `framework_parse_failure_recovery_per_cell.tsv`: the study's parse-failure recovery view with seeds collapsed
  first, so n_cells counts cells and the > 0.05 count compares across conditions (the fix its own
  aggregation-bug-audit.md recommends and its script does not apply).
- `significance_true_n.tsv`, `cross-seed-variance_exact.tsv`: see `significance` and `variance`.
"""

from __future__ import annotations

from collections import defaultdict
from statistics import mean, median
from typing import TYPE_CHECKING

from langdec.analysis.study.refined_tables import Cell, f4, s4, target_lang, tsv

if TYPE_CHECKING:
    import pandas as pd


RECOVERABLE_HEADER = (
    "condition",
    "seed",
    "template",
    "benchmark",
    "data",
    "instr",
    "n",
    "refined_unread",
    "langdec_reads",
    "langdec_reads_correct",
    "refined_acc",
    "langdec_acc",
    "delta_acc",
    "unread_recovered_share",
)
RECOVERABLE_BY_BENCHMARK_HEADER = (
    "benchmark",
    "cells",
    "items",
    "refined_unread",
    "langdec_reads",
    "langdec_reads_correct",
    "refined_acc",
    "langdec_acc",
    "delta_acc",
    "unread_recovered_share",
)


def recoverable(table: "pd.DataFrame") -> tuple[str, str]:
    """(per cell, per benchmark) from the cell counts (data.load): refined's unread answers that langdec reads."""
    rows = []
    # per benchmark: cells, items, refined's unread, langdec's reads of them, those right, refined's correct
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0, 0])
    for r in table.sort_values(["condition", "seed", "t", "benchmark", "data", "instr"]).itertuples(index=False):
        counts = (1, int(r.n), int(r.none_refined), int(r.recovered), int(r.recovered_correct), int(r.correct_refined))
        rows.append([r.condition, r.seed, r.t, r.benchmark, r.data, r.instr, *_recovered(*counts[1:])])
        for key, value in enumerate(counts):
            totals[r.benchmark][key] += value
    by_bench = [[bench, str(t[0]), *_recovered(*t[1:], delta=t[4] / t[1])] for bench, t in sorted(totals.items())]
    return tsv(RECOVERABLE_HEADER, rows), tsv(RECOVERABLE_BY_BENCHMARK_HEADER, by_bench)


def _recovered(
    n: int, unread: int, reads: int, right: int, correct_refined: int, delta: float | None = None
) -> list[str]:
    """The columns from `n` (items) on, for a cell or a benchmark's total. `delta` is the accuracy gain as a total
    computes it (right / n); a cell's is langdec's accuracy less refined's, which can round apart in the last digit."""
    refined_acc, langdec_acc = correct_refined / n, (correct_refined + right) / n
    return [
        str(n),
        str(unread),
        str(reads),
        str(right),
        f4(refined_acc),
        f4(langdec_acc),
        s4(langdec_acc - refined_acc if delta is None else delta),
        f4(reads / unread) if unread else "nan",
    ]


def recovery_per_cell(cells: list[Cell]) -> str:
    per_cell: dict[tuple, list[float]] = defaultdict(list)
    for c in cells:
        per_cell[(c.condition, c.benchmark, c.template, c.data, c.instr)].append(c.orig_pf - c.repar_pf)
    grouped: dict[tuple, list[float]] = defaultdict(list)
    seeds: dict[tuple, list[int]] = defaultdict(list)
    for (cond, bench, *_), values in per_cell.items():
        for key in ((cond, bench), (cond, "ALL")):
            grouped[key].append(mean(values))
            seeds[key].append(len(values))
    header = [
        "condition",
        "target_lang",
        "benchmark",
        "n_cells",
        "n_seeds_averaged_per_cell",
        "mean_recovery_pp",
        "median_recovery",
        "max_recovery",
        "n_cells_recovery_gt_0.05",
    ]
    return tsv(
        header,
        (
            [
                cond,
                target_lang(cond),
                bench,
                str(len(r)),
                str(seeds[(cond, bench)][0])
                if len(set(seeds[(cond, bench)])) == 1
                else f"{min(seeds[(cond, bench)])}-{max(seeds[(cond, bench)])}",
                s4(mean(r)),
                s4(median(r)),
                s4(max(r)),
                str(sum(x > 0.05 for x in r)),
            ]
            for (cond, bench), r in sorted(grouped.items())
        ),
    )
