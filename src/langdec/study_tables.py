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
"""

from __future__ import annotations

import collections
import math
import statistics
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:
    import pandas as pd

EXTRACTORS = ("strict", "refined")  # the study's two
FLIP_THRESHOLD = 0.01
ALPHA = 0.05


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

    def __init__(self, correct: dict[str, dict[CellKey, tuple[int, int]]], unanswered: dict[str, dict[CellKey, tuple[int, int]]]):
        self._acc, self._fail = correct, unanswered

    def acc(self, extractor: str) -> dict[CellKey, tuple[int, int]]:
        return self._acc.get(extractor, {})

    def fail(self, extractor: str) -> dict[CellKey, tuple[int, int]]:
        return self._fail.get(extractor, {})


CELL_COLUMNS = ["group", "seed", "template", "benchmark", "data", "instr"]


def counts(gen: "pd.DataFrame", extractors: Iterable[str] = ("strict", "refined", "langdec")) -> CellCounts:
    """The counts of every study cell from the per-item generation frame (report.Frames.gen): one group-by."""
    names = [e for e in extractors if f"correct.{e}" in gen.columns]
    if not len(gen) or not names:
        return CellCounts({}, {})
    unanswered = gen[[f"pred.{e}" for e in names]].isna().set_axis([f"none.{e}" for e in names], axis=1)
    frame = gen[CELL_COLUMNS + [f"correct.{e}" for e in names]].join(unanswered)
    table = frame.groupby(CELL_COLUMNS, observed=True).agg(
        n=(f"correct.{names[0]}", "size"), **{f"c_{e}": (f"correct.{e}", "sum") for e in names},
        **{f"u_{e}": (f"none.{e}", "sum") for e in names})
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
        rows.append(PaperRow(extractor, group, bench, instr, statistics.fmean(a for _, a in cells),
                             None if group == "baseline" or not deltas else statistics.fmean(deltas),
                             len({k[1] for k, _ in cells}), len(cells)))
    return rows


def conclusion_flips(counted: CellCounts, threshold: float = FLIP_THRESHOLD) -> tuple[list[Flip], int]:
    """Cells whose delta vs the baseline changes sign between strict and refined, beyond +-threshold on both."""
    strict, refined = counted.acc("strict"), counted.acc("refined")
    base_s, base_r = _baseline_cells(strict), _baseline_cells(refined)
    flips, compared = [], 0
    for key in sorted(set(strict) & set(refined)):
        at = key[2:]
        if key[0] == "baseline" or at not in base_s or at not in base_r:
            continue
        compared += 1
        ds = strict[key][0] / strict[key][1] - base_s[at]
        dr = refined[key][0] / refined[key][1] - base_r[at]
        if (ds > threshold and dr < -threshold) or (ds < -threshold and dr > threshold):
            flips.append(Flip(*key, delta_strict=ds, delta_refined=dr))
    return flips, compared


def _significance_row(group: str, bench: str, data: str, instr: str, cond: dict[tuple[str, str], tuple[int, int]],
                      base: dict[tuple[str, str], tuple[int, int]]) -> Significance:
    import numpy as np
    from scipy import stats

    cond_obs = np.array([c / n for c, n in cond.values()])
    base_obs = np.array([c / n for c, n in base.values()])
    by_seed: dict[str, list[float]] = collections.defaultdict(list)
    for (seed, _t), (c, n) in cond.items():
        by_seed[seed].append(c / n)
    per_seed = np.array([statistics.fmean(v) for v in by_seed.values()])
    base_mean = float(base_obs.mean())
    nan = float("nan")
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")  # zero-variance samples give nan, which is the honest answer
        one = float(stats.ttest_1samp(per_seed, popmean=base_mean).pvalue) if len(per_seed) >= 2 else nan
        welch = float(stats.ttest_ind(cond_obs, base_obs, equal_var=False).pvalue) if len(cond_obs) >= 2 and len(base_obs) >= 2 else nan
    n_cond, n_base = sum(n for _, n in cond.values()), sum(n for _, n in base.values())
    k_cond, k_base = sum(c for c, _ in cond.values()), sum(c for c, _ in base.values())
    pooled = (k_cond + k_base) / (n_cond + n_base)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_cond + 1 / n_base))
    diff = k_cond / n_cond - k_base / n_base
    z = diff / se if se > 0 else nan
    p_z = float(2 * stats.norm.sf(abs(z))) if se > 0 else nan
    return Significance(group, bench, data, instr, len(per_seed), n_cond, n_base, k_base / n_base, k_cond / n_cond,
                        float(cond_obs.mean()) - base_mean, one, welch, z, p_z)


def significance(counted: CellCounts, extractor: str = "refined") -> tuple[list[Significance], float]:
    counts = counted.acc(extractor)
    base: dict[tuple[str, str, str], dict[tuple[str, str], tuple[int, int]]] = collections.defaultdict(dict)
    cond: dict[tuple[str, str, str, str], dict[tuple[str, str], tuple[int, int]]] = collections.defaultdict(dict)
    for (group, seed, t, b, d, i), value in counts.items():
        if group == "baseline":
            base[(b, d, i)][(seed, t)] = value
        else:
            cond[(group, b, d, i)][(seed, t)] = value
    rows = [_significance_row(g, b, d, i, obs, base[(b, d, i)]) for (g, b, d, i), obs in sorted(cond.items()) if (b, d, i) in base]
    threshold = ALPHA / len(rows) if rows else float("nan")
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

            rows.append(HeadlineRow(by, value, len(mine), mean(acc["strict"]), mean(acc["refined"]),
                                    mean(fail["strict"]), mean(fail["refined"])))
    return rows


def build(counted: CellCounts, *, threshold: float = FLIP_THRESHOLD, extractor: str = "refined") -> StudyTables:
    out = StudyTables(extractor, threshold)
    out.headline = headline(counted)
    for name in EXTRACTORS:
        out.paper += paper_rows(counted, name)
    out.flips, out.cells_compared = conclusion_flips(counted, threshold)
    out.significance, out.bonferroni_p = significance(counted, extractor)
    return out


# --------------------------------------------------------------------------- presentation
def _pct(x: float | None, signed: bool = False) -> str:
    if x is None or x != x:
        return ""
    return f"{x * 100:+.1f}" if signed else f"{x * 100:.1f}"


def paper_grid(tables: StudyTables, extractor: str, benchmark: str) -> list[list[str]]:
    """Header row plus one row per condition: seeds, then value (delta) in percent per instruction language."""
    rows = [r for r in tables.paper if r.extractor == extractor and r.benchmark == benchmark]
    instrs = sorted({r.instr for r in rows})
    groups = sorted({r.group for r in rows}, key=lambda g: (g != "baseline", g))
    at = {(r.group, r.instr): r for r in rows}
    grid = [["condition", "seeds", *(f"instr={i}" for i in instrs)]]
    for g in groups:
        seeds = max(r.n_seeds for r in rows if r.group == g)
        values = []
        for i in instrs:
            r = at.get((g, i))
            values.append("" if r is None else _pct(r.value) + (f" ({_pct(r.delta, True)})" if r.delta is not None else ""))
        grid.append([g, "-" if g == "baseline" else str(seeds), *values])
    return grid


def _benchmarks(tables: StudyTables, extractor: str) -> list[str]:
    return sorted({r.benchmark for r in tables.paper if r.extractor == extractor})


def aligned(grid: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in grid) for i in range(len(grid[0]))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in grid]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def terminal(tables: StudyTables, extractor: str = "refined") -> str:
    parts = [f"the study's paper tables ({extractor} extractor): accuracy % per condition and instruction language, mean over "
             "seed, template and data language; (mean per-cell delta vs baseline)"]
    for bench in _benchmarks(tables, extractor):
        parts.append(f"{bench}\n" + aligned(paper_grid(tables, extractor, bench)))
    if tables.headline:
        parts.append("what the refined extractor changes (percent, mean over cells)\n" + aligned(headline_grid(tables)))
    parts.append(f"conclusion flips (the study's rule: |delta| > {tables.threshold:g} under strict and refined, opposite signs): "
                 f"{len(tables.flips)} of {tables.cells_compared} condition cells")
    return "\n\n".join(parts)


def headline_grid(tables: StudyTables) -> list[list[str]]:
    grid = [["by", "", "cells", "acc strict", "acc refined", "change", "no answer strict", "no answer refined", "change"]]
    for h in tables.headline:
        grid.append([h.by, h.value, str(h.cells), _pct(h.acc_strict), _pct(h.acc_refined), _pct(h.acc_refined - h.acc_strict, True),
                     _pct(h.unparsed_strict), _pct(h.unparsed_refined), _pct(h.unparsed_refined - h.unparsed_strict, True)])
    return grid


def markdown(tables: StudyTables) -> list[str]:
    out = ["## The study's units", "",
           "As the study's paper tables: accuracy in percent per (condition, benchmark, instruction language), the mean",
           "over seed, template and data language; in brackets the mean per-cell delta vs the baseline.", ""]
    if tables.headline:
        grid = headline_grid(tables)
        out += ["### What the refined extractor changes (percent; mean over cells)", "",
                "| " + " | ".join(grid[0]) + " |", "|" + "---|" * len(grid[0])]
        out += ["| " + " | ".join(row) + " |" for row in grid[1:]]
        out.append("")
    for name in EXTRACTORS:
        for bench in _benchmarks(tables, name):
            grid = paper_grid(tables, name, bench)
            out += [f"### {bench}, {name} extractor", "", "| " + " | ".join(grid[0]) + " |", "|" + "---|" * len(grid[0])]
            out += ["| " + " | ".join(row) + " |" for row in grid[1:]]
            out.append("")
    out += [f"### Conclusion flips (|delta| > {tables.threshold:g} under both extractors, opposite signs)", "",
            f"{len(tables.flips)} of {tables.cells_compared} condition cells (condition, seed, template, benchmark, data, "
            f"instruction) flip between strict and refined.", ""]
    if tables.flips:
        out += ["| condition | seed | template | benchmark | data | instr | delta strict | delta refined |", "|---|---|---|---|---|---|---|---|"]
        out += [f"| {f.group} | {f.seed} | {f.template} | {f.benchmark} | {f.data} | {f.instr} | {f.delta_strict:+.4f} | "
                f"{f.delta_refined:+.4f} |" for f in tables.flips]
        out.append("")
    if tables.significance:
        out += [f"### Significance ({tables.extractor} extractor; Bonferroni threshold p < {tables.bonferroni_p:.2e} over "
                f"{len(tables.significance)} comparisons)", "",
                "| condition | benchmark | data | instr | seeds | n cond | n base | baseline | condition | delta pp | "
                "one-sample p | Welch p | z | z p | Bonferroni |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for s in tables.significance:
            out.append(f"| {s.group} | {s.benchmark} | {s.data} | {s.instr} | {s.n_seeds} | {s.n_items_cond} | {s.n_items_base} | "
                       f"{s.baseline_acc:.4f} | {s.cond_acc:.4f} | {s.delta * 100:+.2f} | {_p(s.one_sample_p)} | {_p(s.welch_p)} | "
                       f"{'' if s.prop_z != s.prop_z else f'{s.prop_z:.3f}'} | {_p(s.prop_z_p)} | {'***' if s.bonferroni else ''} |")
        out.append("")
    return out


def _p(p: float) -> str:
    return "" if p != p else f"{p:.5f}"


def as_json(tables: StudyTables) -> dict:
    from dataclasses import asdict

    def clean(value):
        return None if isinstance(value, float) and value != value else value

    return {"extractor": tables.extractor, "flip_threshold": tables.threshold, "cells_compared": tables.cells_compared,
            "bonferroni_p": clean(tables.bonferroni_p),
            "paper": [asdict(r) for r in tables.paper], "flips": [asdict(f) for f in tables.flips],
            "headline": [asdict(h) for h in tables.headline],
            "significance": [{k: clean(v) for k, v in asdict(s).items()} for s in tables.significance]}
