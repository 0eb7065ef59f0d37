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

from .refined_tables import Cell, f4, s4, target_lang, tsv

if TYPE_CHECKING:
    import pandas as pd


def recoverable(table: "pd.DataFrame") -> tuple[str, str]:
    """(per cell, per benchmark) from the cell counts (data.load): refined's unread answers that langdec reads."""
    header = ["condition", "seed", "template", "benchmark", "data", "instr", "n", "refined_unread", "langdec_reads", "langdec_reads_correct",
              "refined_acc", "langdec_acc", "delta_acc", "unread_recovered_share"]
    rows = []
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0, 0])
    for r in table.sort_values(["condition", "seed", "t", "benchmark", "data", "instr"]).itertuples(index=False):
        n, unread, reads, right = int(r.n), int(r.none_refined), int(r.recovered), int(r.recovered_correct)
        refined_acc, langdec_acc = int(r.correct_refined) / n, (int(r.correct_refined) + right) / n
        rows.append([r.condition, r.seed, r.t, r.benchmark, r.data, r.instr, str(n), str(unread), str(reads), str(right), f4(refined_acc),
                     f4(langdec_acc), s4(langdec_acc - refined_acc), f4(reads / unread) if unread else "nan"])
        for key, value in zip(range(6), (1, n, unread, reads, right, int(r.correct_refined))):
            totals[r.benchmark][key] += value
    by_bench = [[bench, str(t[0]), str(t[1]), str(t[2]), str(t[3]), str(t[4]), f4(t[5] / t[1]), f4((t[5] + t[4]) / t[1]),
                 s4(t[4] / t[1]), f4(t[3] / t[2]) if t[2] else "nan"] for bench, t in sorted(totals.items())]
    return (tsv(header, rows),
            tsv(["benchmark", "cells", "items", "refined_unread", "langdec_reads", "langdec_reads_correct", "refined_acc", "langdec_acc",
                 "delta_acc", "unread_recovered_share"], by_bench))


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
    header = ["condition", "target_lang", "benchmark", "n_cells", "n_seeds_averaged_per_cell", "mean_recovery_pp", "median_recovery",
              "max_recovery", "n_cells_recovery_gt_0.05"]
    return tsv(header, ([cond, target_lang(cond), bench, str(len(r)), str(seeds[(cond, bench)][0]) if len(set(seeds[(cond, bench)])) == 1
                         else f"{min(seeds[(cond, bench)])}-{max(seeds[(cond, bench)])}", s4(mean(r)), s4(median(r)), s4(max(r)),
                         str(sum(x > 0.05 for x in r))] for (cond, bench), r in sorted(grouped.items())))
