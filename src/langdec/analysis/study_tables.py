"""The study's report units, computed from langdec's per-item records.

The study's cell is (condition, seed, template, benchmark, data language, instruction
language); a cell's value is its accuracy. From those cells, as the study's scripts did
(build_vs_baseline.py, build_significance.py, build_phase3_tables.py):

* paper table: per (condition, benchmark, instruction language), the mean over seed,
  template and data language of the cell accuracies; its delta is the mean over the same
  cells of (condition cell - baseline cell with the same template, benchmark, data and
  instruction language);
* conclusion flips: a condition cell whose delta vs the baseline is above +threshold under
  one extractor and below -threshold under the other (the study: 0.01, "strict" being its
  inference-time extractor and "refined" its reparse);
* significance per (condition, benchmark, data, instruction): a one-sample t test of the
  per-seed accuracies (templates averaged within a seed) against the baseline mean, Welch's
  t test of the (seed, template) observations against the baseline's, and a pooled
  two-proportion z test over every scored item, with a Bonferroni threshold over all
  comparisons. Unlike the study's script, n is the cell's true item count (its XNLI n of
  2,505 was half the 5,010 test items).

The tests and the flip rule are those of `langdec.analysis.statistics`, which the study's files use too; the tables are
written by `langdec.analysis.render`.
"""

from __future__ import annotations

import collections
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from langdec.analysis import frames
from langdec.analysis.statistics import FLIP_THRESHOLD, bonferroni, flips, one_sample_t, two_proportion_z, welch_t

if TYPE_CHECKING:
    import pandas as pd

EXTRACTORS = frames.EXTRACTORS[:2]  # the study's two


CellKey = tuple[str, str, str, str, str, str]  # group, seed, template, benchmark, data, instr


@dataclass
class PaperRow:
    extractor: str
    group: str
    benchmark: str
    instr: str
    value: float
    delta: float | None
    n_seeds: int
    n_cells: int


@dataclass
class Flip:
    group: str
    seed: str
    template: str
    benchmark: str
    data: str
    instr: str
    delta_strict: float
    delta_refined: float


@dataclass
class Significance:
    group: str
    benchmark: str
    data: str
    instr: str
    n_seeds: int
    n_items_cond: int
    n_items_base: int
    baseline_acc: float
    cond_acc: float
    delta: float
    one_sample_p: float
    welch_p: float
    prop_z: float
    prop_z_p: float
    bonferroni: bool = False


@dataclass
class HeadlineRow:
    """The study's headline: what the refined extractor changes, by benchmark or by instruction language."""

    by: str  # benchmark | instr
    value: str
    cells: int
    acc_strict: float
    acc_refined: float
    unparsed_strict: float
    unparsed_refined: float


@dataclass
class StudyTables:
    extractor: str  # the one the significance tests use (the study: refined)
    threshold: float
    paper: list[PaperRow] = field(default_factory=list)
    flips: list[Flip] = field(default_factory=list)
    cells_compared: int = 0
    significance: list[Significance] = field(default_factory=list)
    bonferroni_p: float = float("nan")
    headline: list[HeadlineRow] = field(default_factory=list)


class CellCounts:
    """(correct, n) and (no answer, n) per study cell under each extractor, counted once from the items (`counts`):
    every table below reads the same counts."""

    def __init__(
        self, correct: dict[str, dict[CellKey, tuple[int, int]]], unanswered: dict[str, dict[CellKey, tuple[int, int]]]
    ):
        self._acc, self._fail = correct, unanswered

    def acc(self, extractor: str) -> dict[CellKey, tuple[int, int]]:
        return self._acc.get(extractor, {})

    def fail(self, extractor: str) -> dict[CellKey, tuple[int, int]]:
        return self._fail.get(extractor, {})


CELL_COLUMNS = ["group", "seed", "template", "benchmark", "data", "instr"]


def counts(gen: "pd.DataFrame", extractors: Iterable[str] = frames.EXTRACTORS) -> CellCounts:
    """The counts of every study cell from the per-item generation frame (frames.Frames.gen): one group-by."""
    names = [e for e in extractors if f"correct.{e}" in gen.columns]
    if not len(gen) or not names:
        return CellCounts({}, {})
    unanswered = gen[[f"pred.{e}" for e in names]].isna().set_axis([f"none.{e}" for e in names], axis=1)
    frame = gen[CELL_COLUMNS + [f"correct.{e}" for e in names]].join(unanswered)
    table = frame.groupby(CELL_COLUMNS, observed=True).agg(
        n=(f"correct.{names[0]}", "size"),
        **{f"c_{e}": (f"correct.{e}", "sum") for e in names},
        **{f"u_{e}": (f"none.{e}", "sum") for e in names},
    )
    keys = [tuple(str(v) for v in key) for key in table.index]
    n = table["n"].to_numpy()
    correct = {e: {k: (int(c), int(m)) for k, c, m in zip(keys, table[f"c_{e}"].to_numpy(), n)} for e in names}
    unparsed = {e: {k: (int(u), int(m)) for k, u, m in zip(keys, table[f"u_{e}"].to_numpy(), n)} for e in names}
    return CellCounts(correct, unparsed)


def _baseline_cells(counts: dict[CellKey, tuple[int, int]]) -> dict[tuple[str, str, str, str], float]:
    """Baseline accuracy per (template, benchmark, data, instr), averaged over its seeds if it has several."""
    acc: dict[tuple[str, str, str, str], list[float]] = collections.defaultdict(list)
    for (group, _seed, t, b, d, i), (c, n) in counts.items():
        if group == "baseline":
            acc[(t, b, d, i)].append(c / n)
    return {k: statistics.fmean(v) for k, v in acc.items()}


def paper_rows(counted: CellCounts, extractor: str) -> list[PaperRow]:
    counts = counted.acc(extractor)
    base = _baseline_cells(counts)
    grouped: dict[tuple[str, str, str], list[tuple[CellKey, float]]] = collections.defaultdict(list)
    for key, (c, n) in counts.items():
        group, _seed, _t, bench, _d, instr = key
        grouped[(group, bench, instr)].append((key, c / n))
    rows = []
    for (group, bench, instr), cells in sorted(grouped.items()):
        deltas = [acc - base[(k[2], k[3], k[4], k[5])] for k, acc in cells if (k[2], k[3], k[4], k[5]) in base]
        rows.append(
            PaperRow(
                extractor,
                group,
                bench,
                instr,
                statistics.fmean(a for _, a in cells),
                None if group == "baseline" or not deltas else statistics.fmean(deltas),
                len({k[1] for k, _ in cells}),
                len(cells),
            )
        )
    return rows


def conclusion_flips(counted: CellCounts, threshold: float = FLIP_THRESHOLD) -> tuple[list[Flip], int]:
    """Cells whose delta vs the baseline changes sign between strict and refined, beyond +-threshold on both."""
    strict, refined = counted.acc("strict"), counted.acc("refined")
    base_s, base_r = _baseline_cells(strict), _baseline_cells(refined)
    found, compared = [], 0
    for key in sorted(set(strict) & set(refined)):
        at = key[2:]
        if key[0] == "baseline" or at not in base_s or at not in base_r:
            continue
        compared += 1
        ds = strict[key][0] / strict[key][1] - base_s[at]
        dr = refined[key][0] / refined[key][1] - base_r[at]
        if flips(ds, dr, threshold):
            found.append(Flip(*key, delta_strict=ds, delta_refined=dr))
    return found, compared


def _significance_row(
    group: str,
    bench: str,
    data: str,
    instr: str,
    cond: dict[tuple[str, str], tuple[int, int]],
    base: dict[tuple[str, str], tuple[int, int]],
) -> Significance:
    import numpy as np

    cond_obs = np.array([c / n for c, n in cond.values()])
    base_obs = np.array([c / n for c, n in base.values()])
    by_seed: dict[str, list[float]] = collections.defaultdict(list)
    for (seed, _t), (c, n) in cond.items():
        by_seed[seed].append(c / n)
    per_seed = np.array([statistics.fmean(v) for v in by_seed.values()])
    base_mean = float(base_obs.mean())
    one = float(one_sample_t(per_seed, base_mean).p)
    welch = float(welch_t(cond_obs, base_obs).p)
    n_cond, n_base = sum(n for _, n in cond.values()), sum(n for _, n in base.values())
    k_cond, k_base = sum(c for c, _ in cond.values()), sum(c for c, _ in base.values())
    z, p_z = two_proportion_z(k_cond / n_cond - k_base / n_base, k_cond, n_cond, k_base, n_base)
    return Significance(
        group,
        bench,
        data,
        instr,
        len(per_seed),
        n_cond,
        n_base,
        k_base / n_base,
        k_cond / n_cond,
        float(cond_obs.mean()) - base_mean,
        one,
        welch,
        float(z),
        float(p_z),
    )


def significance(counted: CellCounts, extractor: str = "refined") -> tuple[list[Significance], float]:
    counts = counted.acc(extractor)
    base: dict[tuple[str, str, str], dict[tuple[str, str], tuple[int, int]]] = collections.defaultdict(dict)
    cond: dict[tuple[str, str, str, str], dict[tuple[str, str], tuple[int, int]]] = collections.defaultdict(dict)
    for (group, seed, t, b, d, i), value in counts.items():
        if group == "baseline":
            base[(b, d, i)][(seed, t)] = value
        else:
            cond[(group, b, d, i)][(seed, t)] = value
    rows = [
        _significance_row(g, b, d, i, obs, base[(b, d, i)])
        for (g, b, d, i), obs in sorted(cond.items())
        if (b, d, i) in base
    ]
    threshold = bonferroni(len(rows))
    for row in rows:
        row.bonferroni = row.prop_z_p == row.prop_z_p and row.prop_z_p < threshold
    return rows, threshold


def headline(counted: CellCounts) -> list[HeadlineRow]:
    """Mean cell accuracy and parse-failure rate under strict and refined, by benchmark and by instruction
    language, over every cell both extractors scored (all conditions, the baseline included)."""
    acc = {name: counted.acc(name) for name in EXTRACTORS}
    fail = {name: counted.fail(name) for name in EXTRACTORS}
    cells = sorted(set(acc["strict"]) & set(acc["refined"]))
    rows = []
    for by, index in (("benchmark", 3), ("instr", 5)):
        for value in sorted({k[index] for k in cells}):
            mine = [k for k in cells if k[index] == value]

            def mean(table: dict[CellKey, tuple[int, int]]) -> float:
                return statistics.fmean(table[k][0] / table[k][1] for k in mine)

            rows.append(
                HeadlineRow(
                    by,
                    value,
                    len(mine),
                    mean(acc["strict"]),
                    mean(acc["refined"]),
                    mean(fail["strict"]),
                    mean(fail["refined"]),
                )
            )
    return rows


def build(counted: CellCounts, *, threshold: float = FLIP_THRESHOLD, extractor: str = "refined") -> StudyTables:
    out = StudyTables(extractor, threshold)
    out.headline = headline(counted)
    for name in EXTRACTORS:
        out.paper += paper_rows(counted, name)
    out.flips, out.cells_compared = conclusion_flips(counted, threshold)
    out.significance, out.bonferroni_p = significance(counted, extractor)
    return out
