"""The comparison report: each condition against the baseline, cell by cell, honestly.

Built from per-item records (every finished evaluation run's items.parquet, each answer
labelled once by every extractor at evaluate/import/reparse time, and its log-likelihood
choices), not from pre-averaged metrics, and aggregated with pandas, so that:

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
import json
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import items, mlflow_views, published, study_tables, tracking
from .atomic import write_text
from .errors import LangdecError
from .evaluation import extractors
from .evaluation.diagnostics import BUCKETS, REVERSE_OVERLAP_BIAS, XNLI_LABELS, overlap_acc, overlap_share
from .evaluation.stage import CODE_RESULTS, EVAL_STAGE, LOGLIKELIHOOD

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

EXTRACTORS = ("strict", "refined", "langdec")  # the study's two, then langdec's own rules
CONSTANT_LABEL_SHARE = 0.8
BOOTSTRAP = 2000


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


# --------------------------------------------------------------------------- per-item frames
GEN_COLUMNS = ("benchmark", "data", "template", "instr", "item_id")
RUN_COLUMNS = ("group", "seed", "tier")


@dataclass
class Frames:
    """Every per-item record a report reads, one row per item: generations (each extractor's label and
    whether it is the gold, read from the runs' items.parquet), log-likelihood choices and executed code.
    `group`, `seed` and `tier` name the run a row comes from."""
    gen: "pd.DataFrame"
    ll: "pd.DataFrame"
    code: "pd.DataFrame"
    versions: dict[str, str] = field(default_factory=dict)  # extractor -> the version its labels were read by

    @classmethod
    def from_gen(cls, gen: "pd.DataFrame", versions: dict[str, str] | None = None) -> "Frames":
        """Frames of generations only, from a frame with the run and cell columns and pred/correct per extractor."""
        empty = _ll_frame([], "", "", "")
        return cls(_categorical(gen.copy()), empty, empty, dict(versions or {}))

    def kinds(self) -> list[str]:
        out = [f"gen.{n}" for n in EXTRACTORS if items.correct(n) in self.gen.columns and len(self.gen)]
        return out + [k for k, f in (("ll", self.ll), ("code.pass_at_1", self.code)) if len(f)]

    def view(self, kind: str) -> "pd.DataFrame":
        """One kind of score as rows of (group, seed, tier, benchmark, data, template, instr, item_id, correct, pred)."""
        if kind.startswith("gen."):
            name = kind[4:]
            return self.gen[[*RUN_COLUMNS, *GEN_COLUMNS, items.correct(name), items.pred(name)]].rename(
                columns={items.correct(name): "correct", items.pred(name): "pred"})
        return self.ll if kind == "ll" else self.code


def _categorical(frame: "pd.DataFrame") -> "pd.DataFrame":
    for column in (*RUN_COLUMNS, *GEN_COLUMNS):
        if column in frame.columns and frame[column].dtype != "category":
            frame[column] = frame[column].astype("category")
    return frame


def frames_of(group: str, seed: str, generations: list[dict], loglikelihood: list[dict] | None = None,
              code_results: list[dict] | None = None, tier: str = "") -> Frames:
    """A run's frames from its records as dicts, labelled here by every extractor (as evaluate stores them):
    for a run held in memory, e.g. a test's."""
    import pandas as pd

    gen = [{"cell": f"{r['template']}.{r['benchmark']}.data:{r['data']}.instr:{r['instr']}", **r} for r in generations]
    labelled = items.table(gen, EXTRACTORS).to_pandas() if gen else pd.DataFrame(columns=list(GEN_COLUMNS))
    return Frames(_with_run(labelled, group, seed, tier), _ll_frame(loglikelihood or [], group, seed, tier),
                  _code_frame(code_results or [], group, seed, tier), {n: extractors.get(n).version for n in EXTRACTORS})


def concat(parts: list[Frames]) -> Frames:
    versions: dict[str, str] = {}
    for part in parts:
        versions.update(part.versions)
    return Frames(_stack([p.gen for p in parts]), _stack([p.ll for p in parts]), _stack([p.code for p in parts]), versions)


def _stack(frames: list["pd.DataFrame"]) -> "pd.DataFrame":
    """Frames one under the other, categories merged (for the small frames of tests, ll and code results)."""
    import pandas as pd

    frames = [f for f in frames if len(f)] or frames[:1]
    if len(frames) == 1:
        return frames[0]
    return _categorical(pd.concat([f.astype({c: object for c in f.columns if f[c].dtype == "category"}) for f in frames],
                                  ignore_index=True))


def _with_run(frame: "pd.DataFrame", group: str, seed: str, tier: str) -> "pd.DataFrame":
    frame = frame.assign(group=group, seed=seed, tier=tier)
    return _categorical(frame)


def _ll_frame(records: list[dict], group: str, seed: str, tier: str) -> "pd.DataFrame":
    import pandas as pd

    rows = [{"benchmark": r["benchmark"], "data": r["data"], "template": "template1", "instr": "en", "item_id": str(r["item_id"]),
             "correct": r["pred"] == r["gold"], "pred": r["pred"]} for r in records]
    return _with_run(pd.DataFrame(rows, columns=[*GEN_COLUMNS, "correct", "pred"]), group, seed, tier)


def _code_frame(records: list[dict], group: str, seed: str, tier: str) -> "pd.DataFrame":
    """One row per executed sample: the mean over a task's samples is its unbiased pass@1."""
    import pandas as pd

    rows = [{"benchmark": r["benchmark"], "data": r.get("language", "code"), "template": "-", "instr": "-", "item_id": str(r["task_id"]),
             "correct": bool(r["passed"]), "pred": None} for r in records]
    return _with_run(pd.DataFrame(rows, columns=[*GEN_COLUMNS, "correct", "pred"]), group, seed, tier)


def _artifact_lines(run_id: str, name: str, artifact_uri: str | None = None) -> list[dict]:
    path = items.local_artifact(run_id, name, artifact_uri)
    if path is None:
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def latest_runs(experiment: str, tier: str | None = None) -> dict[tuple[str, str, str, str], Any]:
    """The newest finished evaluation run of every (group, tier, seed, part)."""
    from mlflow.tracking import MlflowClient

    found = MlflowClient().get_experiment_by_name(experiment)
    if found is None:
        raise LangdecError(f"no experiment {experiment!r} in the tracking store; run an evaluation (or import-results) first, "
                           "or list langdec's experiments with `langdec ui --no-serve`")
    runs = MlflowClient().search_runs([found.experiment_id],
                                      f"tags.`langdec.stage` = '{EVAL_STAGE}' and attributes.status = 'FINISHED'",
                                      order_by=["attributes.start_time DESC"], max_results=50000)
    latest: dict[tuple[str, str, str, str], Any] = {}
    for run in runs:
        tags = run.data.tags
        if tier and tags.get("condition") != "baseline" and tags.get("tier") != tier:
            continue
        if published.is_stray(tags):  # the study's per-item breakdowns read it; no report does
            continue
        # an imported result file holds one template: its runs are parts of one evaluation, not rivals
        latest.setdefault((group_of(tags), tags.get("tier", ""), tags.get("seed", ""), tags.get("langdec.part", "")), run)
    return latest


def check_tiers(latest: dict, *, by_tier: bool = False) -> None:
    """Refuse, from the runs' tags alone (before any record is read), runs that would pool tiers in a group."""
    if by_tier:
        return
    tiers: dict[str, set[str]] = collections.defaultdict(set)
    for (group, tier, _seed, _part) in latest:
        if group != "baseline":
            tiers[group].add(tier)
    _refuse_mixed(tiers)


def _refuse_mixed(tiers: dict[str, set[str]]) -> None:
    mixed = {g: sorted(t) for g, t in tiers.items() if len(t) > 1}
    if mixed:
        named = "; ".join(f"{g}: {', '.join(t)}" for g, t in sorted(mixed.items()))
        raise LangdecError(f"the report would pool tiers ({named}); pass --tier TIER for one tier, or --by-tier to "
                           "report each tier as its own condition")


def checked_runs(latest: dict, experiment: str = "") -> items.Checked:
    """The runs' records checked by the one reader `study-tables` uses too (`items.check`): readable, each extractor's
    labels of the right types and of one version across the runs (refused otherwise, with what rebuilds them), and a
    run that lost its records refused rather than reported as empty."""
    return items.check([items.RunRef.of(run, experiment) for run in latest.values()], EXTRACTORS, experiment=experiment)


def collect(experiment: str, tier: str | None = None, latest: dict | None = None, *, by_tier: bool = False) -> Frames:
    """The frames of the newest finished evaluation run of every (group, tier, seed, part): only the columns a
    report reads, string columns as categories."""
    import pyarrow as pa

    latest = latest if latest is not None else latest_runs(experiment, tier)
    check_tiers(latest, by_tier=by_tier)
    checked = checked_runs(latest, experiment)  # every run's records checked before any row is read
    readable = {ref.run_id: ref for ref in checked.runs}
    wanted = [*GEN_COLUMNS, *(c for n in EXTRACTORS for c in (items.pred(n), items.correct(n)))]
    tables, lls, codes = [], [], []
    for (group, run_tier, seed, _part), run in latest.items():
        run_tier = "" if group == "baseline" else run_tier
        name = f"{group}-{run_tier}" if by_tier and run_tier and group != "baseline" else group
        if run.info.run_id in readable:
            data = items.read_checked(readable[run.info.run_id], wanted)
            n = data.num_rows
            for column, value in (("group", name), ("seed", seed), ("tier", run_tier)):
                data = data.append_column(column, pa.DictionaryArray.from_arrays(pa.array([0] * n, pa.int32()), pa.array([value])))
            tables.append(data)
        else:
            print(f"note: evaluation run {run.info.run_id} ({run.info.run_name}) stored no per-item generations; "
                  "its metrics are shown by MLflow, the report leaves it out", file=sys.stderr)
        lls.append(_ll_frame(_artifact_lines(run.info.run_id, LOGLIKELIHOOD, run.info.artifact_uri), name, seed, run_tier))
        codes.append(_code_frame(_artifact_lines(run.info.run_id, CODE_RESULTS, run.info.artifact_uri), name, seed, run_tier))
    if tables:
        gen = _categorical(pa.concat_tables(tables, promote_options="permissive").unify_dictionaries().to_pandas())
    else:
        import pandas as pd

        gen = pd.DataFrame(columns=[*RUN_COLUMNS, *wanted])
    empty = _ll_frame([], "", "", "")
    return Frames(gen, _stack(lls or [empty]), _stack(codes or [empty]), checked.versions)


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


def separate_tiers(frames: Frames, *, by_tier: bool = False) -> Frames:
    """Refuse frames that would pool tiers within a condition group, or (by_tier) name each group with its tier."""
    parts = []
    for frame in (frames.gen, frames.ll, frames.code):
        if not len(frame):
            parts.append(frame)
            continue
        pairs = frame.groupby(["group", "tier"], observed=True).size().index
        if not by_tier:
            tiers: dict[str, set[str]] = collections.defaultdict(set)
            for group, tier in pairs:
                if group != "baseline":
                    tiers[str(group)].add(str(tier))
            _refuse_mixed(tiers)
            parts.append(frame)
            continue
        import numpy as np
        import pandas as pd

        # ngroup numbers the (group, tier) pairs in the order of `pairs`
        names = [f"{g}-{t}" if t and g != "baseline" else str(g) for g, t in pairs]
        unique = list(dict.fromkeys(names))
        codes = np.array([unique.index(n) for n in names])[frame.groupby(["group", "tier"], observed=True, sort=True).ngroup().to_numpy()]
        parts.append(frame.assign(group=pd.Categorical.from_codes(codes, categories=unique)))
    return Frames(*parts, versions=frames.versions)


# --------------------------------------------------------------------------- statistics
def _bootstrap(deltas: "np.ndarray", rounds: int, seed: int) -> tuple[float, float]:
    """95% percentile interval of the mean of paired per-item deltas over `rounds` resamples of the items.
    Resampling n items with replacement is drawing multinomial counts of the distinct delta values, which
    is the same distribution at a fraction of the work (deltas take few distinct values)."""
    import numpy as np

    values, counts = np.unique(deltas, return_counts=True)
    rng = np.random.default_rng(seed)
    drawn = rng.multinomial(len(deltas), counts / counts.sum(), size=rounds)
    means = drawn @ values / len(deltas)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def build(frames: Frames, *, extractor: str = "refined", rounds: int = BOOTSTRAP, seed: int = 0,
          by_tier: bool = False, flip_threshold: float = study_tables.FLIP_THRESHOLD) -> Report:
    frames = separate_tiers(frames, by_tier=by_tier)
    report = Report(extractor=extractor, extractor_versions=dict(frames.versions))
    shapes: dict[int, _Shape] = {}  # the generation kinds share their rows, so their shape is computed once
    for kind in frames.kinds():
        view = frames.view(kind)
        source = id(frames.gen) if kind.startswith("gen.") else id(view)
        shape = shapes.setdefault(source, _Shape.of(view))
        report.cells += _cells(view, shape, kind, rounds, seed)
    report.cells.sort(key=lambda c: (c.group, c.benchmark, c.data, c.kind))
    _flag_sign_flips(report)
    report.study = study_tables.build(study_tables.counts(frames.gen), threshold=flip_threshold)
    return report


KEYS = ["group", "benchmark", "data"]


@dataclass
class _Shape:
    """What a kind of score's cells have regardless of the answers: their size, distinct items, and which
    (template, instruction language) combinations each holds; `signature` numbers each cell's combination set
    so that a baseline restricted to it is computed once per set."""
    size: "pd.Series"
    n_items: "pd.Series"
    combos: dict[tuple[str, str, str], frozenset[tuple[str, str]]]
    signature: dict[tuple[str, str, str], int]

    @classmethod
    def of(cls, view: "pd.DataFrame") -> "_Shape":
        combos: dict[tuple[str, str, str], set[tuple[str, str]]] = collections.defaultdict(set)
        for g, b, d, t, i in view.groupby([*KEYS, "template", "instr"], observed=True).size().index:
            combos[(str(g), str(b), str(d))].add((str(t), str(i)))
        frozen = {k: frozenset(v) for k, v in combos.items()}
        numbers: dict[frozenset, int] = {}
        signature = {k: numbers.setdefault(v, len(numbers)) for k, v in frozen.items()}
        return cls(view.groupby(KEYS, observed=True).size(), view.groupby(KEYS, observed=True)["item_id"].nunique(), frozen, signature)


def _cells(view: "pd.DataFrame", shape: _Shape, kind: str, rounds: int, seed: int) -> list[ReportCell]:
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
    baseline, intervals = _baselines(view, shape, rounds, seed)
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


def _baselines(view: "pd.DataFrame", shape: _Shape, rounds: int, seed: int
               ) -> tuple[dict[tuple, float], dict[tuple, tuple[float, float]]]:
    """Per condition cell: the baseline's accuracy over exactly the condition's (template, instruction language)
    combinations, and the paired bootstrap interval of the per-item delta (item accuracy over the condition's
    rows minus over those baseline rows). Keys are joined by their category codes, never as strings."""
    import numpy as np
    import pandas as pd

    is_base = (view["group"] == "baseline").to_numpy()
    if not is_base.any():
        return {}, {}
    codes = pd.DataFrame({c: view[c].cat.codes.to_numpy() for c in (*KEYS, "template", "instr", "item_id")})
    codes["correct"] = view["correct"].to_numpy(dtype=bool)
    cats = {c: list(map(str, view[c].cat.categories)) for c in ("group", "benchmark", "data", "template", "instr")}
    at = {c: {name: n for n, name in enumerate(values)} for c, values in cats.items()}
    base = codes[is_base].groupby(["benchmark", "data", "template", "instr", "item_id"])["correct"].agg(["sum", "count"]).reset_index()
    totals = base.groupby(["benchmark", "data", "template", "instr"])[["sum", "count"]].sum()
    combo_total = {(cats["benchmark"][b], cats["data"][d], cats["template"][t], cats["instr"][i]): (int(r["sum"]), int(r["count"]))
                   for (b, d, t, i), r in totals.iterrows()}
    baseline: dict[tuple, float] = {}
    for key, combos in shape.combos.items():
        g, b, d = key
        found = [combo_total[(b, d, t, i)] for t, i in combos if (b, d, t, i) in combo_total]
        if g != "baseline" and found:
            baseline[key] = sum(c for c, _ in found) / sum(n for _, n in found)
    # the baseline per item, restricted to each combination set a condition cell holds
    pieces = []
    for b, d, sig in sorted({(b, d, shape.signature[(g, b, d)]) for (g, b, d) in shape.combos if g != "baseline"}):
        if b not in at["benchmark"] or d not in at["data"]:
            continue
        combos = next(v for k, v in shape.combos.items() if shape.signature[k] == sig)
        rows = base[(base["benchmark"] == at["benchmark"][b]) & (base["data"] == at["data"][d])]
        keep = np.zeros(len(rows), dtype=bool)
        for t, i in combos:
            if t in at["template"] and i in at["instr"]:
                keep |= ((rows["template"] == at["template"][t]) & (rows["instr"] == at["instr"][i])).to_numpy()
        per_item = rows[keep].groupby("item_id")[["sum", "count"]].sum()
        pieces.append(pd.DataFrame({"benchmark": at["benchmark"][b], "data": at["data"][d], "signature": sig,
                                    "item_id": per_item.index.to_numpy(), "base": (per_item["sum"] / per_item["count"]).to_numpy(float)}))
    if not pieces:
        return baseline, {}
    cond = codes[~is_base].groupby([*KEYS, "item_id"])["correct"].agg(["sum", "count"]).reset_index()
    cells = cond[KEYS].drop_duplicates()
    cells["signature"] = [shape.signature.get((cats["group"][g], cats["benchmark"][b], cats["data"][d]), -1)
                          for g, b, d in zip(cells["group"], cells["benchmark"], cells["data"])]
    cond = cond.merge(cells, on=KEYS).merge(pd.concat(pieces, ignore_index=True), on=["benchmark", "data", "signature", "item_id"])
    cond["delta"] = np.round(cond["sum"] / cond["count"] - cond["base"], 12)
    intervals = {}
    for (g, b, d), deltas in cond.groupby(KEYS, sort=False)["delta"]:
        intervals[(cats["group"][g], cats["benchmark"][b], cats["data"][d])] = _bootstrap(deltas.to_numpy(float), rounds, seed)
    return baseline, intervals


def _flag_sign_flips(report: Report) -> None:
    at = {(c.group, c.benchmark, c.data, c.kind): c for c in report.cells}
    for cell in report.cells:
        if cell.kind != "gen.strict" or cell.delta is None:
            continue
        other = at.get((cell.group, cell.benchmark, cell.data, "gen.refined"))
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
    interval = f" [{cell.ci[0]:+.3f}, {cell.ci[1]:+.3f}]" if cell.ci else ""  # the delta's, so a reader sees its width
    return text + _marks(cell) + interval


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
             + "; (delta vs baseline) [its 95% paired bootstrap interval], W/L = the interval excludes 0; o = mostly one label, "
               "f = sign flips between extractors; n = items, a cell's own where it differs)")
    header = ["benchmark/data", *groups]
    body = []
    for bench, data in columns:
        n = max((c.n_items for c in report.cells if (c.benchmark, c.data, c.kind) == (bench, data, kind)), default=0)
        row = [f"{bench}/{data} n={n}"]
        for g in groups:
            cell = report.value(g, bench, data, kind)
            # a cell's own n where it differs from the row's (e.g. a condition scored on fewer instruction languages)
            row.append(_fmt(cell) + (f" n={cell.n_items}" if cell.n_items != n else "") if cell else "")
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


def heatmap_by_instruction(frames: Frames, report: Report, path: Path) -> Path | None:
    """Delta vs baseline per (condition, instruction language) x (benchmark, data language)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kind = f"gen.{report.extractor}"
    if kind not in frames.kinds():
        return None
    acc = {tuple(str(v) for v in key): float(value) for key, value in
           frames.view(kind).groupby(["group", "instr", "benchmark", "data"], observed=True)["correct"].mean().items()}
    rows = sorted({(g, i) for g, i, _, _ in acc if g != "baseline"})
    columns = sorted({(b, d) for _, _, b, d in acc})
    if not rows or not columns:
        return None

    def mean(key):
        return acc.get(key, float("nan"))

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

    extractors.get(extractor)  # an unknown name fails first, listing the valid ones
    latest = latest_runs(experiment, tier)
    check_tiers(latest, by_tier=by_tier)  # a refusal comes before any record is read
    frames = collect(experiment, tier, latest, by_tier=by_tier)  # groups named with their tier when by_tier
    report = build(frames, extractor=extractor, flip_threshold=flip_threshold)
    report.overlap = overlap_rows(latest, extractor)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = [p.name for p in (heatmap(report, out_dir / "delta_heatmap.png"),
                                heatmap_by_instruction(frames, report, out_dir / "delta_by_instruction.png"),
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
