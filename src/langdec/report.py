"""The comparison report: each condition against the baseline, cell by cell, honestly.

Built from per-item records (the stored generations and log-likelihood choices of
every finished evaluation run), not from pre-averaged metrics, so that:

* a report cell is one (condition group, benchmark, data language, score kind); its
  value is the accuracy over the templates and instruction languages the condition was
  evaluated on, per seed, then mean and standard deviation over seeds. Seeds and
  templates are never counted as separate cells.
* the baseline reference uses exactly the same (template, instruction language) cells,
  so a condition evaluated only in {en, trained language} is not compared with a
  baseline averaged over four instruction languages.
* the delta gets a paired bootstrap 95% interval over items; win/loss only when the
  interval excludes zero, tie otherwise.
* a conclusion whose sign differs between the strict and refined extractors is
  flagged, and so is a cell whose answers are mostly one label.
* a report never pools tiers: records carry their tier, and a condition group seen at
  two tiers is refused (name one with `tier`, or split with `by_tier`).

Beside these, `study_tables` gives the study's own units (its paper tables, its
conclusion-flip rule and its significance tests) from the same records.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import statistics
from dataclasses import dataclass, field
from typing import Any
from pathlib import Path

from . import mlflow_views, study_tables, tracking
from .atomic import write_text
from .errors import LangdecError
from .evaluation import extractors
from .evaluation.diagnostics import BUCKETS, REVERSE_OVERLAP_BIAS, XNLI_LABELS, overlap_acc, overlap_share
from .evaluation.stage import CODE_RESULTS, EVAL_STAGE, GENERATIONS, LOGLIKELIHOOD

EXTRACTORS = ("strict", "refined", "langdec")  # the study's two, then langdec's own rules
CONSTANT_LABEL_SHARE = 0.8
BOOTSTRAP = 2000


@dataclass(frozen=True)
class Record:
    group: str
    seed: str
    kind: str  # gen.<extractor> | ll
    benchmark: str
    data: str
    template: str
    instr: str
    item_id: str
    correct: bool
    pred: str | None
    tier: str = ""


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
        return {"cells": len(compared), "win": count["win"], "loss": count["loss"], "tie": count["tie"],
                "sign_flips": sum(any(f.startswith("sign flips") for f in c.flags) for c in compared),
                "mostly_one_label": sum(any(f.startswith("mostly one label") for f in c.flags) for c in self.cells)}


def group_of(tags: dict[str, str]) -> str:
    cond = tags.get("condition", "?")
    if cond == "baseline":
        return "baseline"
    lang = tags.get("lang")
    group = f"cond{cond}-{lang}" if lang and cond != "1" and lang != "en" else f"cond{cond}"
    if tags.get("arm"):
        group = f"{group}-{tags['arm']}"
    # the study's own adapters, evaluated by langdec, sit beside the re-trained ones of the same condition
    return f"{group}@published" if tags.get("origin") == "published" else group


# --------------------------------------------------------------------------- records
def records_from_run(group: str, seed: str, generations: list[dict], loglikelihood: list[dict],
                     code_results: list[dict] | None = None, tier: str = "") -> list[Record]:
    out: list[Record] = []
    for name in EXTRACTORS:
        ex = extractors.get(name)
        for r in generations:
            pred = ex(r["benchmark"], r["output"])
            out.append(Record(group, seed, f"gen.{name}", r["benchmark"], r["data"], r["template"], r["instr"],
                              str(r["item_id"]), pred == r["gold"], pred, tier))
    for r in loglikelihood:
        out.append(Record(group, seed, "ll", r["benchmark"], r["data"], "template1", "en", str(r["item_id"]), r["pred"] == r["gold"],
                          r["pred"], tier))
    # one record per executed sample: the mean over a task's samples is its unbiased pass@1
    for r in code_results or []:
        out.append(Record(group, seed, "code.pass_at_1", r["benchmark"], r.get("language", "code"), "-", "-", str(r["task_id"]),
                          bool(r["passed"]), None, tier))
    return out


def _artifact_lines(run_id: str, name: str) -> list[dict]:
    import mlflow

    try:
        path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=name)
    except Exception:
        return []
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def latest_runs(experiment: str, tier: str | None = None) -> dict[tuple[str, str, str, str], Any]:
    """The newest finished evaluation run of every (group, tier, seed, part)."""
    from mlflow.tracking import MlflowClient

    runs = MlflowClient().search_runs([tracking.experiment_id(experiment)],
                                      f"tags.`langdec.stage` = '{EVAL_STAGE}' and attributes.status = 'FINISHED'",
                                      order_by=["attributes.start_time DESC"], max_results=5000)
    latest: dict[tuple[str, str, str, str], Any] = {}
    for run in runs:
        tags = run.data.tags
        if tier and tags.get("condition") != "baseline" and tags.get("tier") != tier:
            continue
        # an imported result file holds one template: its runs are parts of one evaluation, not rivals
        latest.setdefault((group_of(tags), tags.get("tier", ""), tags.get("seed", ""), tags.get("langdec.part", "")), run)
    return latest


def collect_records(experiment: str, tier: str | None = None, latest: dict | None = None) -> list[Record]:
    """Per-item records of the newest finished evaluation run of every (group, tier, seed)."""
    records: list[Record] = []
    for (group, run_tier, seed, _part), run in (latest if latest is not None else latest_runs(experiment, tier)).items():
        records += records_from_run(group, seed, _artifact_lines(run.info.run_id, GENERATIONS), _artifact_lines(run.info.run_id, LOGLIKELIHOOD),
                                    _artifact_lines(run.info.run_id, CODE_RESULTS), tier="" if group == "baseline" else run_tier)
    return records


OVERLAP_STATS = (*(overlap_acc(b) for b in BUCKETS), REVERSE_OVERLAP_BIAS)
OVERLAP_LABELS = (*(f"acc, {b} overlap" for b in BUCKETS), "reverse overlap bias")  # one per statistic
OVERLAP_SHARES = tuple(overlap_share(b, label) for b in BUCKETS for label in XNLI_LABELS)


def variant_gaps(report: Report) -> list[dict[str, Any]]:
    """Per condition and data language, accuracy on a benchmark's own split against its variant (a `pair:` benchmark
    such as xnli_mixed, or a `translate:` one such as sib200_mt): the gap is own minus variant."""
    from .evaluation import benchmarks

    kind = f"gen.{report.extractor}"
    rows = []
    for variant in sorted({c.benchmark for c in report.cells if c.kind == kind}):
        bench = benchmarks.get(variant)
        if not (bench.pair or bench.translate):
            continue
        for cell in sorted((c for c in report.cells if c.kind == kind and c.benchmark == variant), key=lambda c: (c.group, c.data)):
            own = report.value(cell.group, bench.family, cell.data, kind)
            if own is not None:
                rows.append({"group": cell.group, "benchmark": bench.family, "variant": variant, "data": cell.data,
                             "own": own.mean, "variant_acc": cell.mean, "gap": own.mean - cell.mean,
                             "kind": "mixed-language" if bench.pair else "machine-translated"})
    return rows


def variant_markdown(rows: list[dict[str, Any]], extractor: str) -> list[str]:
    if not rows:
        return []
    out = ["## Benchmarks beside their variants", "",
           f"Accuracy ({extractor} extractor) on a benchmark's own split and on its variant: mixed-language (one half of "
           "each pair from the parallel item in another language; a large gap means the score rests on same-language "
           "surface cues more than on transfer) or machine-translated (the English items translated by the condition-5 "
           "backend; machine-translated test sets tend to overestimate low-resource languages). Gap = own minus variant.", "",
           "| condition | benchmark | variant | kind | data | own split | variant | gap |", "|---|---|---|---|---|---|---|---|"]
    out += [f"| {r['group']} | {r['benchmark']} | {r['variant']} | {r['kind']} | {r['data']} | {r['own']:.3f} | {r['variant_acc']:.3f} | "
            f"{r['gap']:+.3f} |" for r in rows]
    return out + [""]


def overlap_rows(latest: dict, extractor: str) -> dict[str, dict[str, float]]:
    """Per condition, the XNLI overlap diagnostics (evaluation.diagnostics.xnli_overlap) averaged over its cells
    and seeds: accuracy and predicted-label shares per overlap bucket, and the reverse word-overlap bias."""
    wanted = {*OVERLAP_STATS, *OVERLAP_SHARES}
    sums: dict[str, dict[str, list[float]]] = {}
    for (group, _tier, _seed, _part), run in latest.items():
        for key, value in run.data.metrics.items():
            stat = key.rsplit(".", 1)[-1]
            if key.startswith(f"gen.{extractor}.") and ".xnli." in key and stat in wanted:
                sums.setdefault(group, {}).setdefault(stat, []).append(value)
    return {g: {k: statistics.fmean(v) for k, v in stats.items()} for g, stats in sorted(sums.items())}


def overlap_markdown(rows: dict[str, dict[str, float]], extractor: str) -> list[str]:
    if not rows:
        return []
    out = ["## XNLI word overlap", "",
           f"Mean over the condition's XNLI cells ({extractor} extractor). Overlap is the share of the hypothesis's words "
           "found in the premise; low, mid and high are its tertiles over the items (the same items for every "
           "condition). Reverse overlap bias: the share of low-overlap entailment pairs answered neutral or contradiction.", "",
           "| condition | " + " | ".join(OVERLAP_LABELS) + " |", "|---|" + "---|" * len(OVERLAP_LABELS)]
    for group, stats in rows.items():
        cells = [f"{stats[k]:.3f}" if k in stats else "" for k in OVERLAP_STATS]
        out.append(f"| {group} | " + " | ".join(cells) + " |")
    shares = [(g, b) for g, stats in rows.items() for b in BUCKETS if any(overlap_share(b, lab) in stats for lab in XNLI_LABELS)]
    if shares:
        out += ["", "Predicted labels by overlap bucket: the share of the bucket's items answered with each label (the rest "
                "were unparsed). A model leaning on overlap answers entailment more as overlap rises.", "",
                "| condition | overlap | " + " | ".join(XNLI_LABELS) + " | unparsed |", "|---|---|" + "---|" * (len(XNLI_LABELS) + 1)]
        for group, b in shares:
            values = [rows[group].get(overlap_share(b, lab)) for lab in XNLI_LABELS]
            rest = 1 - sum(v for v in values if v is not None)
            out.append(f"| {group} | {b} | " + " | ".join("" if v is None else f"{v:.3f}" for v in values) + f" | {max(rest, 0.0):.3f} |")
    return out + [""]


def overlap_plot(rows: dict[str, dict[str, float]], path: Path) -> Path | None:
    """Left: accuracy per overlap bucket beside the reverse overlap bias, per condition. Right: the predicted-label
    distribution per condition and bucket, stacked."""
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(rows)
    fig, (ax, dist) = plt.subplots(1, 2, figsize=(max(9, 2.2 * len(groups)), 3.4), layout="constrained")
    width = 0.8 / len(OVERLAP_STATS)
    for i, (stat, label) in enumerate(zip(OVERLAP_STATS, OVERLAP_LABELS)):
        offset = (i - (len(OVERLAP_STATS) - 1) / 2) * width
        ax.bar([x + offset for x in range(len(groups))], [rows[g].get(stat, float("nan")) for g in groups], width, label=label)
    ax.set_xticks(range(len(groups)), groups, fontsize=7, rotation=30, ha="right")
    ax.set_ylim(0, 1)
    ax.set_title("XNLI by premise/hypothesis word overlap", fontsize=9)
    ax.legend(fontsize=6)
    bars = [(g, b) for g in groups for b in BUCKETS]
    bottom = [0.0] * len(bars)
    for label in XNLI_LABELS:
        heights = [rows[g].get(overlap_share(b, label), 0.0) for g, b in bars]
        dist.bar(range(len(bars)), heights, 0.8, bottom=bottom, label=label)
        bottom = [lo + h for lo, h in zip(bottom, heights)]
    dist.set_xticks(range(len(bars)), [f"{g} {b}" for g, b in bars], fontsize=6, rotation=60, ha="right")
    dist.set_ylim(0, 1)
    dist.set_title("Predicted labels by overlap bucket", fontsize=9)
    dist.legend(fontsize=6)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def separate_tiers(records: list[Record], *, by_tier: bool = False) -> list[Record]:
    """Refuse records that would pool tiers within a condition group, or (by_tier) name each group with its tier."""
    if by_tier:
        return [dataclasses.replace(r, group=f"{r.group}-{r.tier}") if r.tier and r.group != "baseline" else r for r in records]
    tiers: dict[str, set[str]] = collections.defaultdict(set)
    for r in records:
        if r.group != "baseline":
            tiers[r.group].add(r.tier)
    mixed = {g: sorted(t) for g, t in tiers.items() if len(t) > 1}
    if mixed:
        named = "; ".join(f"{g}: {', '.join(t)}" for g, t in sorted(mixed.items()))
        raise LangdecError(f"the report would pool tiers ({named}); pass --tier TIER for one tier, or --by-tier to "
                           "report each tier as its own condition")
    return records


# --------------------------------------------------------------------------- statistics
def _bootstrap(cond: list[float], base: list[float], rounds: int, seed: int) -> tuple[float, float]:
    import numpy as np

    rng = np.random.default_rng(seed)
    c, b = np.asarray(cond), np.asarray(base)
    picks = rng.integers(0, len(c), size=(rounds, len(c)))
    deltas = c[picks].mean(axis=1) - b[picks].mean(axis=1)
    return float(np.percentile(deltas, 2.5)), float(np.percentile(deltas, 97.5))


def build(records: list[Record], *, extractor: str = "refined", rounds: int = BOOTSTRAP, seed: int = 0,
          by_tier: bool = False, flip_threshold: float = study_tables.FLIP_THRESHOLD) -> Report:
    records = separate_tiers(records, by_tier=by_tier)
    by_cell: dict[tuple[str, str, str, str], list[Record]] = collections.defaultdict(list)
    for r in records:
        by_cell[(r.group, r.benchmark, r.data, r.kind)].append(r)
    report = Report(extractor=extractor, extractor_versions={n: extractors.get(n).version for n in EXTRACTORS})
    for (group, bench, data, kind), recs in sorted(by_cell.items()):
        per_seed: dict[str, list[bool]] = collections.defaultdict(list)
        for r in recs:
            per_seed[r.seed].append(r.correct)
        preds = collections.Counter(r.pred for r in recs if r.pred is not None)
        top = preds.most_common(1)[0][1] / len(recs) if preds else 0.0
        cell = ReportCell(group, bench, data, kind, {s: sum(v) / len(v) for s, v in per_seed.items()},
                          len({r.item_id for r in recs}), top)
        if top >= CONSTANT_LABEL_SHARE and len(preds) >= 1:
            cell.flags.append(f"mostly one label ({preds.most_common(1)[0][0]!r}, {top:.0%} of answers)")
        if group != "baseline":
            _compare(cell, recs, by_cell.get(("baseline", bench, data, kind), []), rounds, seed)
        report.cells.append(cell)
    _flag_sign_flips(report)
    report.study = study_tables.build(records, threshold=flip_threshold)
    return report


def _compare(cell: ReportCell, recs: list[Record], base_recs: list[Record], rounds: int, seed: int) -> None:
    cells = {(r.template, r.instr) for r in recs}
    base = [r for r in base_recs if (r.template, r.instr) in cells]
    if not base:
        return
    cell.baseline = sum(r.correct for r in base) / len(base)
    cond_items: dict[str, list[bool]] = collections.defaultdict(list)
    base_items: dict[str, list[bool]] = collections.defaultdict(list)
    for r in recs:
        cond_items[r.item_id].append(r.correct)
    for r in base:
        base_items[r.item_id].append(r.correct)
    paired = sorted(set(cond_items) & set(base_items))
    if not paired:
        return
    lo, hi = _bootstrap([statistics.fmean(cond_items[i]) for i in paired], [statistics.fmean(base_items[i]) for i in paired], rounds, seed)
    cell.ci = (lo, hi)
    cell.outcome = "win" if lo > 0 else "loss" if hi < 0 else "tie"


def _flag_sign_flips(report: Report) -> None:
    for cell in report.cells:
        if cell.kind != "gen.strict" or cell.delta is None:
            continue
        other = report.value(cell.group, cell.benchmark, cell.data, "gen.refined")
        if other is None or other.delta is None:
            continue
        if cell.delta * other.delta < 0 or (cell.outcome != other.outcome and "tie" not in (cell.outcome, other.outcome)):
            note = f"sign flips between extractors (strict {cell.delta:+.3f} {cell.outcome}, refined {other.delta:+.3f} {other.outcome})"
            cell.flags.append(note)
            other.flags.append(note)


# --------------------------------------------------------------------------- presentation
def _marks(cell: ReportCell) -> str:
    """One letter per kind of flag: o = mostly one label, f = the conclusion flips between extractors."""
    marks = ("o" if any(f.startswith("mostly one label") for f in cell.flags) else "") + \
            ("f" if any(f.startswith("sign flips") for f in cell.flags) else "")
    return f" {marks}" if marks else ""


def _fmt(cell: ReportCell) -> str:
    text = f"{cell.mean:.3f}" + (f"±{cell.std:.3f}" if len(cell.per_seed) > 1 else "")
    if cell.delta is not None:
        mark = {"win": " W", "loss": " L"}.get(cell.outcome, "")
        text += f" ({cell.delta:+.3f}{mark})"
    return text + _marks(cell)


def print_tables(report: Report) -> str:
    """Every table that has cells: generative, log-likelihood, and executed code."""
    kinds = [f"gen.{report.extractor}", "ll", "code.pass_at_1"]
    present = {c.kind for c in report.cells}
    parts = [print_table(report, k) for k in kinds if k in present]
    if report.study and report.study.paper:
        parts.append(study_tables.terminal(report.study))
    if report.overlap:
        parts.append(overlap_terminal(report.overlap, report.extractor))
    return "\n\n".join(parts) or "(no evaluation runs yet)"


def overlap_terminal(rows: dict[str, dict[str, float]], extractor: str) -> str:
    table = [["condition", *(label.replace(",", "") for label in OVERLAP_LABELS)]]
    table += [[g, *(f"{stats[k]:.3f}" if k in stats else "-" for k in OVERLAP_STATS)] for g, stats in rows.items()]
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in table]
    return "\n".join([f"XNLI by word overlap ({extractor} extractor, mean over cells)", lines[0],
                      "  ".join("-" * w for w in widths), *lines[1:]])


def print_table(report: Report, kind: str | None = None) -> str:
    """Terminal table: one row per (benchmark, data language), one column per condition group."""
    kind = kind or f"gen.{report.extractor}"
    groups = sorted({c.group for c in report.cells if c.kind == kind}, key=lambda g: (g != "baseline", g))
    columns = sorted({(c.benchmark, c.data) for c in report.cells if c.kind == kind})
    if not groups:
        return "(no evaluation runs yet)"
    title = (f"{kind}" + (" (executed in the sandbox)" if kind.startswith("code.") else " accuracy")
             + (" (no extractor)" if kind == "ll" else "")
             + "; (delta vs baseline, W/L = 95% bootstrap interval excludes 0; o = mostly one label, "
               "f = sign flips between extractors; n = items)")
    header = ["benchmark/data", *groups]
    body = []
    for bench, data in columns:
        n = max((c.n_items for c in report.cells if (c.benchmark, c.data, c.kind) == (bench, data, kind)), default=0)
        row = [f"{bench}/{data} n={n}"]
        for g in groups:
            cell = report.value(g, bench, data, kind)
            row.append(_fmt(cell) if cell else "")
        body.append(row)
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    lines = [title, "  ".join(h.ljust(w) for h, w in zip(header, widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in body]
    return "\n".join(lines)


def markdown(report: Report, figures: list[str], *, cell_tables: bool = True) -> str:
    """The report as Markdown; `cell_tables=False` leaves out the per-cell tables (report.md and report.json keep them)."""
    s = report.summary()
    out = ["# langdec comparison report", "",
           f"Extractor versions: {', '.join(f'{k} `{v}`' for k, v in report.extractor_versions.items())}.", "",
           f"{s['cells']} condition cells: {s['win']} wins, {s['loss']} losses, {s['tie']} ties (95% paired bootstrap "
           f"over items, {BOOTSTRAP} rounds); {s['sign_flips']} conclusions flip sign between the strict and refined "
           f"extractors; {s['mostly_one_label']} cells answer mostly one label.", "",
           "A value is the accuracy over the templates and instruction languages the condition was evaluated on, per",
           "seed, then mean ± std over seeds; the baseline is taken over exactly the same cells. Extractors: `strict` and",
           "`refined` are the study's two (its inference-time extractor and its reparse), `langdec` is langdec's own rules.", ""]
    for fig in figures:
        out += [f"![{fig}]({fig})", ""]
    kinds = [f"gen.{n}" for n in EXTRACTORS] + ["ll", "code.pass_at_1"]
    if not cell_tables:
        out += ["Every cell (condition, benchmark, data language, extractor) with its interval and flags: report.md, report.json.", ""]
    for kind in kinds if cell_tables else []:
        rows = [c for c in report.cells if c.kind == kind]
        if not rows:
            continue
        out += [f"## {kind}", "", "| condition | benchmark | data | seeds | mean ± std | baseline | delta | 95% CI | outcome | flags |",
                "|---|---|---|---|---|---|---|---|---|---|"]
        for c in sorted(rows, key=lambda c: (c.group != "baseline", c.group, c.benchmark, c.data)):
            ci = f"[{c.ci[0]:+.3f}, {c.ci[1]:+.3f}]" if c.ci else ""
            out.append(f"| {c.group} | {c.benchmark} | {c.data} | {len(c.per_seed)} | {c.mean:.3f} ± {c.std:.3f} | "
                       f"{'' if c.baseline is None else f'{c.baseline:.3f}'} | {'' if c.delta is None else f'{c.delta:+.3f}'} | "
                       f"{ci} | {c.outcome} | {'; '.join(c.flags)} |")
        out.append("")
    out += overlap_markdown(report.overlap, report.extractor)
    out += variant_markdown(variant_gaps(report), report.extractor)
    if report.study:
        out += study_tables.markdown(report.study)
    return "\n".join(out)


def _say_if_nothing(ax, values: list[list[float]]) -> None:
    """A grid of zeros looks like a broken plot: say in it that there is nothing to compare."""
    finite = [v for row in values for v in row if v == v]
    if not finite or all(abs(v) < 1e-12 for v in finite):
        ax.text(0.5, 0.5, "every delta is 0: no condition differs from the baseline here" if finite else "no comparable cells",
                transform=ax.transAxes, ha="center", va="center", fontsize=9,
                bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.9})


def html(markdown_text: str, folder: Path) -> str:
    """Markdown as one self-contained HTML page, figures embedded: MLflow's artifact viewer shows an HTML
    artifact from a blob URL, where a relative link to another artifact cannot resolve. Covers what `markdown`
    writes: headings, paragraphs, pipe tables, images, `code`."""
    import base64
    import html as escape
    import re

    def inline(text: str) -> str:
        text = escape.escape(text)
        return re.sub(r"`([^`]+)`", r"<code>\1</code>", re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", text))

    out = ["<!doctype html><html><head><meta charset='utf-8'><title>langdec report</title><style>"
           "body{font-family:sans-serif;margin:2em;max-width:100em}table{border-collapse:collapse;margin:1em 0;font-size:90%}"
           "td,th{border:1px solid #ccc;padding:2px 6px;text-align:left}img{max-width:100%}</style></head><body>"]
    lines = markdown_text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        image = re.fullmatch(r"!\[[^\]]*\]\(([^)]+)\)", line.strip())
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{inline(line[level:].strip())}</h{level}>")
        elif image and (folder / image.group(1)).is_file():
            name = image.group(1)
            src = "data:image/png;base64," + base64.b64encode((folder / name).read_bytes()).decode()
            out.append(f"<p><img alt='{escape.escape(name)}' src='{src}'></p>")
        elif line.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                if not re.fullmatch(r"\|(\s*-+\s*\|)+", lines[i].strip()):
                    rows.append([c.strip() for c in lines[i].strip().strip("|").split("|")])
                i += 1
            out.append("<table>" + "".join("<tr>" + "".join(f"<{'th' if n == 0 else 'td'}>{inline(c)}</{'th' if n == 0 else 'td'}>"
                                                             for c in row) + "</tr>" for n, row in enumerate(rows)) + "</table>")
            continue
        elif line.strip():
            paragraph = [line]
            while i + 1 < len(lines) and lines[i + 1].strip() and not lines[i + 1].startswith(("#", "|", "![")):
                i += 1
                paragraph.append(lines[i])
            out.append(f"<p>{inline(' '.join(paragraph))}</p>")
        i += 1
    out.append("</body></html>")
    return "\n".join(out)


def heatmap(report: Report, path: Path) -> Path | None:
    """Delta vs baseline per condition x (benchmark, data language): generative and log-likelihood panels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def grid(kind):
        groups = sorted({c.group for c in report.cells if c.kind == kind and c.group != "baseline"})
        columns = sorted({(c.benchmark, c.data) for c in report.cells if c.kind == kind})
        values = [[(report.value(g, b, d, kind).delta if report.value(g, b, d, kind) and report.value(g, b, d, kind).delta is not None else float("nan"))
                   for b, d in columns] for g in groups]
        return groups, columns, values

    panels = [(k, t) for k, t in ((f"gen.{report.extractor}", f"generative ({report.extractor} extractor)"), ("ll", "log-likelihood (no extractor)")) if grid(k)[0]]
    if not panels:
        return None
    rows = max(len(grid(k)[0]) for k, _ in panels)
    width = max(6, 0.6 * max(len(grid(k)[1]) for k, _ in panels))
    fig, axes = plt.subplots(len(panels), 1, figsize=(width, 1.2 + len(panels) * (0.55 * rows + 0.9)), squeeze=False, layout="constrained")
    image = None
    for ax, (kind, title) in zip(axes[:, 0], panels):
        groups, columns, values = grid(kind)
        image = ax.imshow(values, cmap="RdBu", vmin=-0.5, vmax=0.5, aspect="auto")
        ax.set_xticks(range(len(columns)), [f"{b}\n{d}" for b, d in columns], fontsize=7)
        ax.set_yticks(range(len(groups)), groups)
        for i, row in enumerate(values):
            for j, v in enumerate(row):
                if v == v:
                    cell = report.value(groups[i], columns[j][0], columns[j][1], kind)
                    mark = {"win": "\nW", "loss": "\nL"}.get(cell.outcome, "")
                    ax.text(j, i, f"{v:+.2f}{mark}", ha="center", va="center", fontsize=6)
        ax.set_title(f"Accuracy delta vs baseline: {title}", fontsize=9)
        _say_if_nothing(ax, values)
    fig.colorbar(image, ax=axes[:, 0].tolist(), label="delta vs baseline")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def heatmap_by_instruction(records: list[Record], report: Report, path: Path) -> Path | None:
    """Delta vs baseline per (condition, instruction language) x (benchmark, data language)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kind = f"gen.{report.extractor}"
    acc: dict[tuple, list[bool]] = collections.defaultdict(list)
    for r in records:
        if r.kind == kind:
            acc[(r.group, r.instr, r.benchmark, r.data)].append(r.correct)
    rows = sorted({(g, i) for g, i, _, _ in acc if g != "baseline"})
    columns = sorted({(b, d) for _, _, b, d in acc})
    if not rows or not columns:
        return None

    def mean(key):
        values = acc.get(key)
        return sum(values) / len(values) if values else float("nan")

    values = [[mean((g, i, b, d)) - mean(("baseline", i, b, d)) for b, d in columns] for g, i in rows]
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(columns)), 1.2 + 0.4 * len(rows)), layout="constrained")
    image = ax.imshow(values, cmap="RdBu", vmin=-0.5, vmax=0.5, aspect="auto")
    ax.set_xticks(range(len(columns)), [f"{b}\n{d}" for b, d in columns], fontsize=7)
    ax.set_yticks(range(len(rows)), [f"{g} | instr {i}" for g, i in rows], fontsize=7)
    ax.set_title(f"Delta vs baseline by instruction language ({report.extractor} extractor)", fontsize=9)
    _say_if_nothing(ax, values)
    fig.colorbar(image, ax=ax, label="delta vs baseline")
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def seed_spread(report: Report, path: Path) -> Path | None:
    """Per-seed accuracy of every condition group, per benchmark (mean over data languages)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kind = f"gen.{report.extractor}"
    cells = [c for c in report.cells if c.kind == kind]
    benches = sorted({c.benchmark for c in cells})
    groups = sorted({c.group for c in cells}, key=lambda g: (g != "baseline", g))
    if not cells:
        return None
    fig, axes = plt.subplots(1, len(benches), figsize=(3 * len(benches), 3), squeeze=False, layout="constrained")
    for ax, bench in zip(axes[0], benches):
        for x, group in enumerate(groups):
            seeds: dict[str, list[float]] = collections.defaultdict(list)
            for c in cells:
                if c.group == group and c.benchmark == bench:
                    for s, v in c.per_seed.items():
                        seeds[s].append(v)
            ys = [statistics.fmean(v) for v in seeds.values()]
            ax.scatter([x] * len(ys), ys, s=18)
        ax.set_xticks(range(len(groups)), groups, rotation=60, fontsize=7)
        ax.set_title(bench, fontsize=9)
        ax.set_ylim(-0.05, 1.05)
    axes[0][0].set_ylabel("accuracy per seed")
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def run_stage(experiment: str, out_dir: Path, *, extractor: str = "refined", tier: str | None = None, by_tier: bool = False,
              flip_threshold: float = study_tables.FLIP_THRESHOLD) -> tuple[Report, Path]:
    import mlflow

    latest = latest_runs(experiment, tier)
    records = separate_tiers(collect_records(experiment, tier, latest), by_tier=by_tier)  # build() then finds nothing pooled
    report = build(records, extractor=extractor, flip_threshold=flip_threshold)
    report.overlap = overlap_rows(latest, extractor)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = [p.name for p in (heatmap(report, out_dir / "delta_heatmap.png"),
                                heatmap_by_instruction(records, report, out_dir / "delta_by_instruction.png"),
                                seed_spread(report, out_dir / "seed_spread.png"),
                                overlap_plot(report.overlap, out_dir / "xnli_overlap.png")) if p]
    md_path = out_dir / "report.md"
    text = markdown(report, figures)
    write_text(md_path, text)
    write_text(out_dir / "report.html", html(text, out_dir))  # self-contained, on disk
    summary = [{"group": c.group, "benchmark": c.benchmark, "data": c.data, "kind": c.kind, "mean": c.mean, "std": c.std,
                "seeds": sorted(c.per_seed), "baseline": c.baseline, "delta": c.delta, "ci": c.ci, "outcome": c.outcome,
                "n_items": c.n_items, "top_label_share": c.top_label_share, "flags": c.flags} for c in report.cells]
    write_text(out_dir / "report.json", json.dumps({"summary": report.summary(), "extractor_versions": report.extractor_versions,
                                                    "cells": summary, "study": study_tables.as_json(report.study),
                                                    "xnli_overlap": report.overlap, "variants": variant_gaps(report)},
                                                   indent=2))
    params = {"extractor": extractor, "tier": tier or "all", "by_tier": by_tier, "flip_threshold": flip_threshold}
    with tracking.stage_run(experiment, "report", "report", params=params, tags={}, reuse=False):
        mlflow.log_metrics({f"report.{k}": v for k, v in report.summary().items()})
        mlflow.log_metric("report.study_conclusion_flips", len(report.study.flips))
        # the logged page leaves the per-cell tables to report.md/json: the artifact viewer shows it in a frame
        mlflow.log_text(html(markdown(report, figures, cell_tables=False), out_dir), "report.html")
        for name in ["report.md", "report.json", *figures]:
            mlflow.log_artifact(str(out_dir / name))
    mlflow_views.publish_quietly(experiment)  # the UI's saved views now see the runs this report covers
    return report, md_path
