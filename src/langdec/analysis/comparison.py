"""The comparison report's numbers: each condition group against the baseline, cell by cell.

A cell is one (condition group, benchmark, data language, score kind); its value is the accuracy over the
templates and instruction languages the condition was evaluated on, per seed, then mean and standard deviation
over seeds (seeds and templates are never cells). The baseline is taken over exactly the same cells
(`langdec.analysis.baselines`); the delta's paired bootstrap interval decides win/loss, tie otherwise; a cell
answering mostly one label is flagged, and so is a conclusion whose sign differs between the strict and refined
extractors. The study's own units (`study_tables`) are built from the same frames.
"""

from __future__ import annotations

import collections
import statistics
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from langdec.analysis import study_tables
from langdec.analysis.baselines import KEYS, Shape, baselines
from langdec.analysis.frames import Frames, separate_tiers
from langdec.analysis.statistics import BOOTSTRAP_ROUNDS, CONSTANT_LABEL_SHARE, FLIP_THRESHOLD

if TYPE_CHECKING:
    import pandas as pd


@dataclass
class ReportCell:
    group: str
    benchmark: str
    data: str
    kind: str
    per_seed: dict[str, float]
    n_items: int
    top_label_share: float
    baseline: float | None = None
    ci: tuple[float, float] | None = None
    outcome: str = ""  # win | loss | tie ("" for the baseline)
    flags: list[str] = field(default_factory=list)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.per_seed.values())

    @property
    def std(self) -> float:
        return statistics.stdev(self.per_seed.values()) if len(self.per_seed) > 1 else 0.0

    @property
    def delta(self) -> float | None:
        return None if self.baseline is None else self.mean - self.baseline


@dataclass
class Report:
    cells: list[ReportCell] = field(default_factory=list)
    extractor: str = "refined"
    extractor_versions: dict[str, str] = field(default_factory=dict)
    study: study_tables.StudyTables | None = None
    overlap: dict[str, dict[str, float]] = field(default_factory=dict)  # condition -> XNLI overlap diagnostics

    def value(self, group: str, benchmark: str, data: str, kind: str) -> ReportCell | None:
        for c in self.cells:
            if (c.group, c.benchmark, c.data, c.kind) == (group, benchmark, data, kind):
                return c
        return None

    def summary(self) -> dict[str, int]:
        compared = [c for c in self.cells if c.group != "baseline"]
        count = collections.Counter(c.outcome for c in compared)
        return {
            "cells": len(compared),
            "win": count["win"],
            "loss": count["loss"],
            "tie": count["tie"],
            "sign_flips": sum(any(f.startswith("sign flips") for f in c.flags) for c in compared),
            "mostly_one_label": sum(any(f.startswith("mostly one label") for f in c.flags) for c in self.cells),
        }


def build(
    frames: Frames,
    *,
    extractor: str = "refined",
    rounds: int = BOOTSTRAP_ROUNDS,
    seed: int = 0,
    by_tier: bool = False,
    flip_threshold: float = FLIP_THRESHOLD,
) -> Report:
    """Every cell of every kind of score in the frames, compared with the baseline, and the study's units."""
    frames = separate_tiers(frames, by_tier=by_tier)
    report = Report(extractor=extractor, extractor_versions=dict(frames.versions))
    shapes: dict[int, Shape] = {}  # the generation kinds share their rows, so their shape is computed once
    for kind in frames.kinds():
        view = frames.view(kind)
        source = id(frames.gen) if kind.startswith("gen.") else id(view)
        shape = shapes.setdefault(source, Shape.of(view))
        report.cells += kind_cells(view, shape, kind, rounds, seed)
    report.cells.sort(key=lambda c: (c.group, c.benchmark, c.data, c.kind))
    _flag_sign_flips(report)
    report.study = study_tables.build(study_tables.counts(frames.gen), threshold=flip_threshold)
    return report


def kind_cells(view: "pd.DataFrame", shape: Shape, kind: str, rounds: int, seed: int) -> list[ReportCell]:
    """Every (group, benchmark, data language) cell of one kind of score, with its comparison to the baseline."""
    per_seed = view.groupby([*KEYS, "seed"], observed=True)["correct"].mean()
    seeds_of: dict[tuple, dict[str, float]] = collections.defaultdict(dict)
    for (g, b, d, s), value in per_seed.items():
        seeds_of[(str(g), str(b), str(d))][str(s)] = float(value)
    top: dict[tuple, tuple[str, int]] = {}
    if view["pred"].notna().any():
        for (g, b, d, label), count in view.groupby([*KEYS, "pred"], observed=True).size().items():
            key = (str(g), str(b), str(d))
            if count > top.get(key, ("", 0))[1]:
                top[key] = (str(label), int(count))
    baseline, intervals = baselines(view, shape, rounds, seed)
    out = []
    for (g, b, d), n in shape.size.items():
        key = (str(g), str(b), str(d))
        label, count = top.get(key, (None, 0))
        cell = ReportCell(*key, kind, seeds_of[key], int(shape.n_items.loc[(g, b, d)]), count / n)
        if label is not None and cell.top_label_share >= CONSTANT_LABEL_SHARE:
            cell.flags.append(f"mostly one label ({label!r}, {cell.top_label_share:.0%} of answers)")
        if key in baseline:
            cell.baseline = baseline[key]
            if key in intervals:
                cell.ci = intervals[key]
                cell.outcome = "win" if cell.ci[0] > 0 else "loss" if cell.ci[1] < 0 else "tie"
        out.append(cell)
    return out


def _flag_sign_flips(report: Report) -> None:
    """The report's own flag (not the study's thresholded rule): the strict and refined deltas of a cell differ in
    sign, or their intervals reach opposite conclusions."""
    at = {(c.group, c.benchmark, c.data, c.kind): c for c in report.cells}
    for cell in report.cells:
        if cell.kind != "gen.strict" or cell.delta is None:
            continue
        other = at.get((cell.group, cell.benchmark, cell.data, "gen.refined"))
        if other is None or other.delta is None:
            continue
        if cell.delta * other.delta < 0 or (
            cell.outcome != other.outcome and "tie" not in (cell.outcome, other.outcome)
        ):
            note = f"sign flips between extractors (strict {cell.delta:+.3f} {cell.outcome}, refined {other.delta:+.3f} {other.outcome})"
            cell.flags.append(note)
            other.flags.append(note)
