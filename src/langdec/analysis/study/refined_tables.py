"""The study's refined-tables: what build_comparison.py, build_vs_baseline.py and build_framework_comparison.py
write, file for file, from langdec's cell counts.

The study reads each session's `_summary_` (its inference-time extractor, "orig") and `_summary_reparsed_`
(the refined extractor, "rep"/"repar") files; a cell's accuracy there is correct / n and its parse-failure
rate unanswered / n, which is what langdec counts with the same two extractors. Means and medians are Python's
`statistics` (exact), counts use the study's noise floor of 1e-6, values are written with four decimals.
Where the study's aggregation counts (seed x template) observations under a column named n_cells
(analysis/phase-3/aggregation-bug-audit.md), so does this: the study's files are reproduced as they are.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from statistics import mean, median, stdev
from typing import TYPE_CHECKING

from langdec.analysis.statistics import flip_sign, flips

if TYPE_CHECKING:
    import pandas as pd

TINY = 1e-6  # the study's float noise floor for wins, losses and ties
LANGS = ("en", "zh", "es", "ur")  # the order its comparison axes walk target languages in
ANCHOR = "condition-1-en-5k"  # the "coding constant" of its decomposition view


def f4(x: float) -> str:
    return f"{x:.4f}"


def s4(x: float) -> str:
    return f"{x:+.4f}"


def tsv(header: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    return "".join("\t".join(r) + "\n" for r in [list(header), *rows])


# --------------------------------------------------------------------------- cells as the study's scripts see them
@dataclass
class Cell:
    condition: str
    seed: str
    template: str  # the digit
    benchmark: str
    data: str
    instr: str
    n: int
    orig_acc: float
    repar_acc: float
    orig_pf: float
    repar_pf: float
    correct: int  # under the refined extractor (the reparsed summary's _correct)

    @property
    def key(self) -> tuple[str, str, str, str, str, str]:
        return (self.condition, self.seed, self.template, self.benchmark, self.data, self.instr)

    @property
    def at(self) -> tuple[str, str, str, str]:
        return (self.template, self.benchmark, self.data, self.instr)


def cells_of(table: "pd.DataFrame") -> list[Cell]:
    """One Cell per session cell, in the study's walking order (sessions sorted, then the file's cell order)."""
    out = []
    for r in table.itertuples(index=False):
        n = int(r.n)
        out.append(
            Cell(
                r.condition,
                r.seed,
                r.t,
                r.benchmark,
                r.data,
                r.instr,
                n,
                int(r.correct_strict) / n,
                int(r.correct_refined) / n,
                int(r.none_strict) / n,
                int(r.none_refined) / n,
                int(r.correct_refined),
            )
        )
    return out


def target_lang(condition: str) -> str:
    """The language a condition was trained on ("" for the baseline), as the study's condition names say."""
    parts = condition.split("-")
    return parts[2] if condition.startswith("condition-") and len(parts) >= 4 else ""


def volume(condition: str) -> str:
    return condition.split("-")[3] if condition.startswith("condition-") and len(condition.split("-")) >= 4 else ""


def condition_order(condition: str) -> tuple:
    """The order the study lists its conditions in: baseline, then by number, language (en, zh, es, ur), tier."""
    if not condition.startswith("condition-"):
        return (0,)
    number, lang, tier = (condition.split("-") + ["", "", ""])[1:4]
    rank = LANGS.index(lang) if lang in LANGS else len(LANGS)
    return (
        1,
        int(number) if number.isdigit() else 99,
        rank,
        lang,
        int(tier.rstrip("k")) if tier.rstrip("k").isdigit() else 0,
        tier,
    )


# --------------------------------------------------------------------------- build_comparison.py
COMPARISON_STATS = (
    "n_cells",
    "mean_orig_acc",
    "mean_repar_acc",
    "mean_delta_acc",
    "median_delta_acc",
    "n_improved",
    "n_regressed",
    "n_flat",
    "mean_orig_pf",
    "mean_repar_pf",
    "mean_delta_pf",
    "median_delta_pf",
    "min_delta_acc",
    "max_delta_acc",
    "min_delta_pf",
    "max_delta_pf",
)


def _changes(cells: list[Cell]) -> dict[str, float | int]:
    acc = [c.repar_acc - c.orig_acc for c in cells]
    pf = [c.repar_pf - c.orig_pf for c in cells]
    return {
        "n_cells": len(cells),
        "mean_orig_acc": mean(c.orig_acc for c in cells),
        "mean_repar_acc": mean(c.repar_acc for c in cells),
        "mean_delta_acc": mean(acc),
        "median_delta_acc": median(acc),
        "n_improved": sum(d > TINY for d in acc),
        "n_regressed": sum(d < -TINY for d in acc),
        "n_flat": sum(abs(d) <= TINY for d in acc),
        "mean_orig_pf": mean(c.orig_pf for c in cells),
        "mean_repar_pf": mean(c.repar_pf for c in cells),
        "mean_delta_pf": mean(pf),
        "median_delta_pf": median(pf),
        "min_delta_acc": min(acc),
        "max_delta_acc": max(acc),
        "min_delta_pf": min(pf),
        "max_delta_pf": max(pf),
    }


def _fmt(name: str, value: float | int) -> str:
    if isinstance(value, int) or name.startswith("n_"):
        return str(value)
    return s4(value) if "delta" in name else f4(value)


def _grouped(cells: list[Cell], by: Callable[[Cell], object]) -> dict:
    groups: dict = defaultdict(list)
    for c in cells:
        groups[by(c)].append(c)
    return dict(sorted(groups.items()))


COMPARISON_CELLS_HEADER = (
    "condition",
    "seed",
    "template",
    "benchmark",
    "data",
    "instr",
    "n",
    "orig_acc",
    "repar_acc",
    "delta_acc",
    "orig_pf",
    "repar_pf",
    "delta_pf",
)
# the stats of the two-axis summaries: COMPARISON_STATS without medians, counts and extremes
CROSS_STATS = (
    "n_cells",
    "mean_orig_acc",
    "mean_repar_acc",
    "mean_delta_acc",
    "mean_orig_pf",
    "mean_repar_pf",
    "mean_delta_pf",
)
# summary_by_<axis>.tsv, the axis its column's name
SUMMARY_AXES: tuple[tuple[str, Callable[[Cell], object]], ...] = (
    ("benchmark", lambda c: c.benchmark),
    ("instr_lang", lambda c: c.instr),
    ("data_lang", lambda c: c.data),
    ("condition", lambda c: c.condition),
    ("template", lambda c: c.template),
)
CROSS_AXES: tuple[tuple[str, tuple[str, str], Callable[[Cell], tuple]], ...] = (
    ("summary_bench_x_instr.tsv", ("benchmark", "instr"), lambda c: (c.benchmark, c.instr)),
    ("summary_cond_x_bench.tsv", ("condition", "benchmark"), lambda c: (c.condition, c.benchmark)),
)


def comparison_files(cells: list[Cell]) -> dict[str, str]:
    files = {"cells.tsv": _comparison_cells(cells)}
    for name, by in SUMMARY_AXES:
        files[f"summary_by_{name}.tsv"] = tsv(
            [name, *COMPARISON_STATS],
            ([str(k), *(_fmt(s, v) for s, v in _changes(g).items())] for k, g in _grouped(cells, by).items()),
        )
    for name, labels, by in CROSS_AXES:
        files[name] = tsv(
            [*labels, *CROSS_STATS],
            (
                [*k, *(_fmt(s, v) for s, v in _changes(g).items() if s in CROSS_STATS)]
                for k, g in _grouped(cells, by).items()
            ),
        )
    files["overall_stats.json"] = json.dumps(_overall(cells), indent=2)
    return files


def _comparison_cells(cells: list[Cell]) -> str:
    """cells.tsv: each cell's accuracy and parse failure, inference-time extractor against refined."""
    # the study reads n from the inference-time summary, which has no _count: it prints None
    return tsv(
        COMPARISON_CELLS_HEADER,
        (
            [
                *c.key,
                "None",
                f4(c.orig_acc),
                f4(c.repar_acc),
                s4(c.repar_acc - c.orig_acc),
                f4(c.orig_pf),
                f4(c.repar_pf),
                s4(c.repar_pf - c.orig_pf),
            ]
            for c in sorted(cells, key=lambda c: c.key)
        ),
    )


def _overall(cells: list[Cell]) -> dict:
    acc = [c.repar_acc - c.orig_acc for c in cells]
    pf = [c.repar_pf - c.orig_pf for c in cells]
    return {
        "n_cells": len(cells),
        "n_improved_acc": sum(d > TINY for d in acc),
        "n_regressed_acc": sum(d < -TINY for d in acc),
        "n_flat_acc": sum(abs(d) <= TINY for d in acc),
        "n_pf_improved": sum(d < -TINY for d in pf),
        "n_pf_worsened": sum(d > TINY for d in pf),
        "n_flat_acc_pf_drop": sum(abs(a) <= TINY and p < -TINY for a, p in zip(acc, pf)),
        "n_flat_acc_pf_drop_>5pct": sum(abs(a) <= TINY and p < -0.05 for a, p in zip(acc, pf)),
        "mean_delta_acc": mean(acc),
        "median_delta_acc": median(acc),
        "mean_delta_pf": mean(pf),
        "median_delta_pf": median(pf),
        "mean_orig_acc": mean(c.orig_acc for c in cells),
        "mean_repar_acc": mean(c.repar_acc for c in cells),
        "mean_orig_pf": mean(c.orig_pf for c in cells),
        "mean_repar_pf": mean(c.repar_pf for c in cells),
        "max_delta_acc": max(acc),
        "min_delta_acc": min(acc),
        "max_delta_pf_drop": min(pf),
        "max_delta_pf_rise": max(pf),
        "gaps": [],
    }  # langdec scores every session with both extractors: no session lacks its refined summary


# --------------------------------------------------------------------------- build_vs_baseline.py
@dataclass
class Versus:
    cell: Cell
    base: Cell

    @property
    def delta_orig(self) -> float:
        return self.cell.orig_acc - self.base.orig_acc

    @property
    def delta_rep(self) -> float:
        return self.cell.repar_acc - self.base.repar_acc


def versus(cells: list[Cell]) -> list[Versus]:
    """Every condition cell beside the baseline cell of the same template, benchmark and languages (walk order)."""
    base = {c.at: c for c in cells if c.condition == "baseline"}
    return [Versus(c, base[c.at]) for c in cells if c.condition != "baseline" and c.at in base]


def versus_files(rows: list[Versus]) -> dict[str, str]:
    files = {}
    header = [
        "condition",
        "seed",
        "template",
        "benchmark",
        "data",
        "instr",
        "baseline_orig",
        "cond_orig",
        "delta_orig",
        "baseline_rep",
        "cond_rep",
        "delta_rep",
    ]
    values = lambda v: [
        f4(v.base.orig_acc),
        f4(v.cell.orig_acc),
        s4(v.delta_orig),
        f4(v.base.repar_acc),
        f4(v.cell.repar_acc),
        s4(v.delta_rep),
    ]
    ordered = sorted(rows, key=lambda v: v.cell.key)
    files["vs_baseline_cells.tsv"] = tsv(
        [*header, "baseline_pf_orig", "cond_pf_orig", "baseline_pf_rep", "cond_pf_rep"],
        (
            [*v.cell.key, *values(v), f4(v.base.orig_pf), f4(v.cell.orig_pf), f4(v.base.repar_pf), f4(v.cell.repar_pf)]
            for v in ordered
        ),
    )
    rollup = [
        "n_cells",
        "mean_baseline_orig",
        "mean_cond_orig",
        "mean_delta_orig",
        "mean_baseline_rep",
        "mean_cond_rep",
        "mean_delta_rep",
        "n_wins_orig",
        "n_losses_orig",
        "n_wins_rep",
        "n_losses_rep",
        "n_flip_win_to_loss",
        "n_flip_loss_to_win",
    ]
    for name, labels, by in (
        ("vs_baseline_by_condition.tsv", ("condition",), lambda v: (v.cell.condition,)),
        ("vs_baseline_by_cond_x_bench.tsv", ("condition", "benchmark"), lambda v: (v.cell.condition, v.cell.benchmark)),
        ("vs_baseline_by_cond_x_instr.tsv", ("condition", "instr"), lambda v: (v.cell.condition, v.cell.instr)),
    ):
        files[name] = tsv([*labels, *rollup], ([*k, *_rollup(g)] for k, g in _grouped(rows, by).items()))
    # stably sorted on four keys: the rest of the order is the walk's (data, then instruction language)
    flipped = sorted((v for v in rows if flips(v.delta_orig, v.delta_rep)), key=lambda v: v.cell.key[:4])
    files["conclusion_flips.tsv"] = tsv(
        [*header, "verdict"],
        ([*v.cell.key, *values(v), "win→loss" if flip_sign(v.delta_orig) > 0 else "loss→win"] for v in flipped),
    )
    return files


def _rollup(group: list[Versus]) -> list[str]:
    do, dr = [v.delta_orig for v in group], [v.delta_rep for v in group]
    return [
        str(len(group)),
        f4(mean(v.base.orig_acc for v in group)),
        f4(mean(v.cell.orig_acc for v in group)),
        s4(mean(do)),
        f4(mean(v.base.repar_acc for v in group)),
        f4(mean(v.cell.repar_acc for v in group)),
        s4(mean(dr)),
        str(sum(x > TINY for x in do)),
        str(sum(x < -TINY for x in do)),
        str(sum(x > TINY for x in dr)),
        str(sum(x < -TINY for x in dr)),
        str(sum(a > TINY and b < -TINY for a, b in zip(do, dr))),
        str(sum(a < -TINY and b > TINY for a, b in zip(do, dr))),
    ]


# --------------------------------------------------------------------------- build_framework_comparison.py
def _flags(c: Cell) -> tuple[str, str]:
    """(matched_instr, matched_diagonal): the instruction language is the trained one; data = instruction."""
    target = target_lang(c.condition)
    return ("y" if target and c.instr == target else "n", "y" if c.data == c.instr else "n")


def framework_files(cells: list[Cell]) -> dict[str, str]:
    return {
        "framework_template_comparison.tsv": _template_comparison(cells),
        "framework_same_language_comparison.tsv": _same_language(cells),
        "framework_data_volume_comparison.tsv": _data_volume(cells),
        "framework_cross_language_impact.tsv": _cross_language(cells),
        "framework_decomposition_vs_baseline.tsv": _decomposition(cells),
        "framework_seed_variance.tsv": _seed_variance(cells),
        "framework_template_robustness.tsv": _template_robustness(cells),
        "framework_benchmark_breakdown.tsv": _benchmark_breakdown(cells),
        **_parse_failure_recovery(cells),
    }


def _template_comparison(cells: list[Cell]) -> str:
    pairs: dict[tuple, dict[str, Cell]] = defaultdict(dict)
    for c in cells:
        pairs[(c.condition, c.seed, c.benchmark, c.data, c.instr)][c.template] = c
    header = [
        "condition",
        "seed",
        "benchmark",
        "data",
        "instr",
        "matched_instr",
        "matched_diagonal",
        "t1_acc",
        "t2_acc",
        "delta_t2_t1",
        "t1_count",
        "t2_count",
        "t1_correct",
        "t2_correct",
    ]
    rows = []
    for key in sorted(pairs):
        one, two = pairs[key].get("1"), pairs[key].get("2")
        if one and two:
            rows.append(
                [
                    *key,
                    *_flags(one),
                    f4(one.repar_acc),
                    f4(two.repar_acc),
                    s4(two.repar_acc - one.repar_acc),
                    str(one.n),
                    str(two.n),
                    str(one.correct),
                    str(two.correct),
                ]
            )
    return tsv(header, rows)


def _same_language(cells: list[Cell]) -> str:
    accs: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for c in cells:
        accs[c.at][c.condition].append(c.repar_acc)
    known = sorted({c.condition for c in cells}, key=condition_order)
    anchors = ["baseline", ANCHOR, "condition-1-en-20k"]
    header = [
        "target_lang",
        "template",
        "benchmark",
        "data",
        "instr",
        "matched_diagonal",
        "condition",
        "data_volume",
        "matched_instr_for_this_condition",
        "mean_acc_across_seeds",
        "n_seeds",
    ]
    rows = []
    for target in LANGS:
        listed = anchors + [c for c in known if target_lang(c) == target and c not in anchors]
        for at in sorted(accs):
            t, bench, data, instr = at
            for cond in listed:
                found = accs[at].get(cond, [])
                if found:
                    rows.append(
                        [
                            target,
                            t,
                            bench,
                            data,
                            instr,
                            "y" if data == instr else "n",
                            cond,
                            volume(cond),
                            "y" if target_lang(cond) == instr else "n",
                            f4(mean(found)),
                            str(len(found)),
                        ]
                    )
    return tsv(header, rows)


def _data_volume(cells: list[Cell]) -> str:
    pivot: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for c in cells:
        number = c.condition.split("-")[1] if c.condition.startswith("condition-") else ""
        if number in ("1", "2") and volume(c.condition) in ("5k", "20k"):
            family = c.condition.rsplit("-", 1)[0]
            pivot[(target_lang(c.condition), family, *c.at)][volume(c.condition)].append(c.repar_acc)
    header = [
        "target_lang",
        "family",
        "template",
        "benchmark",
        "data",
        "instr",
        "matched_instr",
        "matched_diagonal",
        "acc_5k_mean",
        "n_seeds_5k",
        "acc_20k_mean",
        "n_seeds_20k",
        "delta_20k_minus_5k",
    ]
    rows = []
    for key in sorted(pivot):
        target, family, t, bench, data, instr = key
        small, large = pivot[key].get("5k", []), pivot[key].get("20k", [])
        if small and large:
            rows.append(
                [
                    target,
                    family,
                    t,
                    bench,
                    data,
                    instr,
                    "y" if target == instr else "n",
                    "y" if data == instr else "n",
                    f4(mean(small)),
                    str(len(small)),
                    f4(mean(large)),
                    str(len(large)),
                    s4(mean(large) - mean(small)),
                ]
            )
    return tsv(header, rows)


def _baseline_acc(cells: list[Cell]) -> dict[tuple, float]:
    return {c.at: c.repar_acc for c in cells if c.condition == "baseline"}


def _cross_language(cells: list[Cell]) -> str:
    base = _baseline_acc(cells)
    groups = _grouped([c for c in cells if c.condition != "baseline"], lambda c: (c.condition, c.data, c.instr))
    header = [
        "condition",
        "target_lang",
        "data_lang",
        "instr_lang",
        "off_target",
        "matched_diagonal",
        "matched_instr",
        "n_cells",
        "mean_cond_acc",
        "mean_baseline_acc",
        "delta_vs_baseline",
    ]
    rows = []
    for (cond, data, instr), group in groups.items():
        target = target_lang(cond)
        found = [base[c.at] for c in group if c.at in base]
        if found:
            cond_mean, base_mean = mean(c.repar_acc for c in group), mean(found)
            rows.append(
                [
                    cond,
                    target,
                    data,
                    instr,
                    "y" if target and data != target else "n",
                    "y" if data == instr else "n",
                    "y" if target and instr == target else "n",
                    str(len(group)),
                    f4(cond_mean),
                    f4(base_mean),
                    s4(cond_mean - base_mean),
                ]
            )
    return tsv(header, rows)


def _decomposition(cells: list[Cell]) -> str:
    base = _baseline_acc(cells)
    anchor: dict[tuple, list[float]] = defaultdict(list)
    for c in cells:
        if c.condition == ANCHOR:
            anchor[c.at].append(c.repar_acc)
    anchored = {k: mean(v) for k, v in anchor.items()}
    header = [
        "condition",
        "target_lang",
        "seed",
        "template",
        "benchmark",
        "data",
        "instr",
        "matched_diagonal",
        "matched_instr",
        "baseline_acc",
        "cond_1_en_5k_acc",
        "cond_acc",
        "delta_vs_baseline",
        "delta_en_finetune_only",
        "delta_language_specific",
    ]
    rows = []
    for c in sorted(cells, key=lambda c: (c.condition, c.seed, *c.at)):
        if c.condition in ("baseline", ANCHOR, "condition-1-en-20k") or c.at not in base or c.at not in anchored:
            continue
        b, a = base[c.at], anchored[c.at]
        matched_instr, matched_diagonal = _flags(c)
        rows.append(
            [
                c.condition,
                target_lang(c.condition),
                c.seed,
                *c.at,
                matched_diagonal,
                matched_instr,
                f4(b),
                f4(a),
                f4(c.repar_acc),
                s4(c.repar_acc - b),
                s4(a - b),
                s4(c.repar_acc - a),
            ]
        )
    return tsv(header, rows)


def _seed_variance(cells: list[Cell]) -> str:
    header = [
        "condition",
        "target_lang",
        "template",
        "benchmark",
        "data",
        "instr",
        "matched_diagonal",
        "matched_instr",
        "n_seeds",
        "mean_acc",
        "std_acc",
        "min_acc",
        "max_acc",
        "total_count",
        "total_correct",
    ]
    rows = []
    for (cond, *at), group in _grouped(cells, lambda c: (c.condition, *c.at)).items():
        accs = [c.repar_acc for c in group]
        matched_instr, matched_diagonal = _flags(group[0])
        rows.append(
            [
                cond,
                target_lang(cond),
                *at,
                matched_diagonal,
                matched_instr,
                str(len(group)),
                f4(mean(accs)),
                f4(stdev(accs)) if len(accs) > 1 else "nan",
                f4(min(accs)),
                f4(max(accs)),
                str(sum(c.n for c in group)),
                str(sum(c.correct for c in group)),
            ]
        )
    return tsv(header, rows)


def _template_robustness(cells: list[Cell]) -> str:
    """Per cell the mean over seeds of |t1 - t2|; then per condition ("ALL") and per (condition, benchmark)."""
    pairs: dict[tuple, dict[str, float]] = defaultdict(dict)
    for c in cells:
        pairs[(c.condition, c.seed, c.benchmark, c.data, c.instr)][c.template] = c.repar_acc
    seed_gaps: dict[tuple, list[float]] = defaultdict(list)
    for (cond, _seed, bench, data, instr), t in pairs.items():
        if "1" in t and "2" in t:
            seed_gaps[(cond, bench, data, instr)].append(abs(t["1"] - t["2"]))

    def row(cond: str, bench: str, keys: list[tuple]) -> list[str]:
        gaps = [mean(seed_gaps[k]) for k in keys]
        seeds = [len(seed_gaps[k]) for k in keys]
        brittle = sum(g > 0.10 for g in gaps)
        return [
            cond,
            target_lang(cond),
            bench,
            str(len(gaps)),
            str(seeds[0]) if len(set(seeds)) == 1 else f"{min(seeds)}-{max(seeds)}",
            f4(mean(gaps)),
            f4(median(gaps)),
            f4(max(gaps)),
            str(brittle),
            f4(brittle / len(gaps)),
        ]

    by_cond = _grouped(list(seed_gaps), lambda k: k[0])
    by_bench = _grouped(list(seed_gaps), lambda k: (k[0], k[1]))
    header = [
        "condition",
        "target_lang",
        "benchmark",
        "n_cells",
        "n_seeds_averaged_per_cell",
        "mean_gap",
        "median_gap",
        "max_gap",
        "brittle_cells_gt_0.10",
        "frac_brittle",
    ]
    return tsv(
        header,
        [
            *(row(cond, "ALL", keys) for cond, keys in by_cond.items()),
            *(row(cond, bench, keys) for (cond, bench), keys in by_bench.items()),
        ],
    )


def _benchmark_breakdown(cells: list[Cell]) -> str:
    base = _baseline_acc(cells)
    deltas: dict[tuple, list[float]] = defaultdict(list)
    for c in cells:
        if c.condition != "baseline" and c.at in base:
            delta = c.repar_acc - base[c.at]
            deltas[(c.condition, c.benchmark, _flags(c)[1])].append(delta)
            deltas[(c.condition, c.benchmark, "ALL")].append(delta)
    header = [
        "condition",
        "target_lang",
        "benchmark",
        "matched_diagonal",
        "n_cells",
        "mean_delta_vs_baseline",
        "median_delta",
        "min_delta",
        "max_delta",
    ]
    return tsv(
        header,
        (
            [cond, target_lang(cond), bench, md, str(len(d)), s4(mean(d)), s4(median(d)), s4(min(d)), s4(max(d))]
            for (cond, bench, md), d in sorted(deltas.items())
        ),
    )


def _parse_failure_recovery(cells: list[Cell]) -> dict[str, str]:
    """orig_pf - refined_pf per cell, rolled up per (condition, benchmark) and per condition ("ALL"); and the 50
    cells that recovered most (a stable sort: ties keep the walk's order)."""
    recoveries: dict[tuple, list[float]] = defaultdict(list)
    for c in cells:
        recoveries[(c.condition, c.benchmark)].append(c.orig_pf - c.repar_pf)
        recoveries[(c.condition, "ALL")].append(c.orig_pf - c.repar_pf)
    header = [
        "condition",
        "target_lang",
        "benchmark",
        "n_cells",
        "mean_recovery_pp",
        "median_recovery",
        "max_recovery",
        "n_cells_recovery_gt_0.05",
    ]
    rollup = tsv(
        header,
        (
            [
                cond,
                target_lang(cond),
                bench,
                str(len(r)),
                s4(mean(r)),
                s4(median(r)),
                s4(max(r)),
                str(sum(x > 0.05 for x in r)),
            ]
            for (cond, bench), r in sorted(recoveries.items())
        ),
    )
    top = sorted(cells, key=lambda c: -(c.orig_pf - c.repar_pf))[:50]
    header = [
        "rank",
        "condition",
        "seed",
        "template",
        "benchmark",
        "data",
        "instr",
        "matched_diagonal",
        "orig_pf",
        "refined_pf",
        "recovery_pp",
    ]
    tops = tsv(
        header,
        (
            [str(rank), *c.key, _flags(c)[1], f4(c.orig_pf), f4(c.repar_pf), s4(c.orig_pf - c.repar_pf)]
            for rank, c in enumerate(top, 1)
        ),
    )
    return {"framework_parse_failure_recovery.tsv": rollup, "framework_parse_failure_recovery_top_cells.tsv": tops}
