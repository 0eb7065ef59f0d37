"""Evaluation runs as the study's sessions: its condition names, seeds, templates, benchmark names and cells.

A session is one (condition folder, seed folder, template) of the study's published layout; an imported run is
one session, a langdec evaluation run holds both templates of its session. Each run's items are read once: its
cells are counted (n, correct and unanswered under the study's two extractors and langdec's), and the rows the
per-item breakdowns need are kept (SIB-200 answers, XNLI labels with the refined rule that read them).

Order follows the study's scripts, which walk sorted folders and then a file's cells in the order it lists them:
sessions by (condition, seed folder name, template), cells by their place in the run (`cell_order`; for
langdec's own runs, the study's run order: data language en, zh, es, ur, then instruction language, then
benchmark xnli, csqa, sib200, belebele).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from langdec.analysis import collect
from langdec.analysis.frames import EXTRACTORS
from langdec.core.errors import LangdecError
from langdec.evaluation import records as items
from langdec.tracking import published

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

STUDY_BENCH = {
    "xnli": "xnli",
    "xcsqa": "csqa",
    "sib200": "sib200",
    "belebele": "belebele",
}  # langdec's name -> the study's
LANG_ORDER = ("en", "zh", "es", "ur")  # the study's run order
BENCH_RUN_ORDER = ("xnli", "csqa", "sib200", "belebele")
ORIGINS = ("imported", "published", "trained")
CJK_FRAME = re.compile(r"[\u3001-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")  # from U+3001: U+3000 is a space


@dataclass(frozen=True)
class Source:
    """One finished evaluation run as the study's session(s)."""

    run_id: str
    artifact_uri: str
    condition: str  # the study's folder name: baseline, condition-2-zh-5k, ...
    seed: str  # the seed folder without its prefix: 42, none
    origin: str  # imported | published | trained
    part: str  # the template an imported run holds ("" for a run holding both)
    run: Any = field(default=None, compare=False, hash=False, repr=False)  # the MLflow run (its name and tags)
    stray: str = ""  # an imported stray file's name (published.STRAY_TAG): read by the per-item breakdowns alone


@dataclass
class StudyData:
    cells: (
        "pd.DataFrame"  # one row per session cell: condition, seed, template, t, benchmark, data, instr, order, counts
    )
    # per-item rows, stray files' included (`stray`), each with the results file it is in as the study names it (`file`)
    sib200: "pd.DataFrame"  # SIB-200 rows: condition, seed, file, stray, t, data, instr, order, position, gold, output, pred
    xnli: "pd.DataFrame"  # XNLI rows: condition, seed, file, stray, t, data, instr, order, position, gold, pred, rule, cjk
    sources: list[Source] = field(default_factory=list)
    strays: list[Source] = field(default_factory=list)  # stray files kept by import-results
    skipped: list[str] = field(default_factory=list)  # runs that are not one of the study's sessions, and why


def study_name(tags: dict[str, str]) -> tuple[str, str] | None:
    """(condition folder, seed) of the run's session, or None when the run is no session of the study's matrix."""
    cond, tier, lang = tags.get("condition", ""), tags.get("tier", ""), tags.get("lang", "")
    if cond == "baseline":
        return "baseline", "none"
    if cond not in ("1", "2", "3", "5") or not tier:
        return None
    name = f"condition-1-en-{tier}" if cond == "1" else f"condition-{cond}-{lang}-{tier}"
    return name, tags.get("seed", "") or "none"


def origin_of(tags: dict[str, str]) -> str:
    return {"imported": "imported", "published": "published"}.get(tags.get("origin", ""), "trained")


def sources(experiment: str, origin: str | None = None) -> tuple[list[Source], list[str], list[Source]]:
    """The newest finished evaluation run of every session in the experiment; runs that are no session (an arm,
    a condition outside the study's matrix) are listed as skipped. Two origins for one session are refused
    unless `origin` picks one. Imported stray files (each a results file in its folder) come apart, third."""
    if origin is not None and origin not in ORIGINS:
        raise LangdecError(f"--origin {origin!r}: valid origins are {', '.join(ORIGINS)}")
    runs = collect.evaluation_runs(experiment)
    chosen: dict[tuple[str, str, str, str], Source] = {}
    strays: dict[tuple[str, str, str], Source] = {}
    skipped = []
    for run in runs:
        tags = run.data.tags
        name = study_name(tags)
        run_origin = origin_of(tags)
        if published.is_stray(tags):
            if name is not None and origin in (None, run_origin):
                file = tags.get("source_file", "")
                strays.setdefault(
                    (*name, file), Source(run.info.run_id, run.info.artifact_uri, *name, run_origin, "", run, file)
                )
        elif tags.get("arm"):
            skipped.append(f"{run.info.run_id}: a variant ({tags['arm']}), not one of the study's sessions")
        elif name is None:
            skipped.append(f"{run.info.run_id}: condition {tags.get('condition')!r} is not in the study's matrix")
        elif origin is None or run_origin == origin:
            part = tags.get("langdec.part", "")
            chosen.setdefault(
                (*name, part, run_origin), Source(run.info.run_id, run.info.artifact_uri, *name, run_origin, part, run)
            )
    by_session: dict[tuple[str, str], set[str]] = {}
    for condition, seed, _part, run_origin in chosen:
        by_session.setdefault((condition, seed), set()).add(run_origin)
    clashes = {k: sorted(v) for k, v in by_session.items() if len(v) > 1}
    if clashes:
        (condition, seed), kinds = sorted(clashes.items())[0]
        raise LangdecError(
            f"{condition} seed {seed} has runs of {len(kinds)} origins ({', '.join(kinds)}) in {experiment}; "
            f"pick one with --origin {'|'.join(kinds)} ({len(clashes)} session(s) affected)"
        )
    if not chosen:
        raise LangdecError(
            f"experiment {experiment} has no finished evaluation run of the study's sessions"
            + (f" of origin {origin}" if origin else "")
        )
    ordered = sorted(chosen.values(), key=lambda s: (s.condition, f"seed{s.seed}", s.part))
    return ordered, skipped, sorted(strays.values(), key=lambda s: (s.condition, f"seed{s.seed}", s.stray))


COLUMNS = [
    "template",
    "benchmark",
    "data",
    "instr",
    "cell_order",
    "position",
    "gold",
    *(items.pred(e) for e in EXTRACTORS),
    *(items.correct(e) for e in EXTRACTORS),
    items.rule("refined"),
]


# the per-item rows the breakdowns read, before the refined label and rule are renamed pred and rule
SIB200_ROWS = [
    "condition",
    "seed",
    "file",
    "stray",
    "t",
    "data",
    "instr",
    "cell_order",
    "position",
    "gold",
    "output",
    items.pred("refined"),
]
XNLI_ROWS = [
    "condition",
    "seed",
    "file",
    "stray",
    "t",
    "data",
    "instr",
    "cell_order",
    "position",
    "gold",
    items.pred("refined"),
    items.rule("refined"),
    "cjk",
]


def load(experiment: str, origin: str | None = None) -> StudyData:
    import pandas as pd

    found, skipped, strays = sources(experiment, origin)
    cells, sib, xnli = [], [], []
    # the collector `report` uses: types, extractor versions (one per extractor across runs) and lost records checked
    # for every run before any row is read
    records = collect.records([source.run for source in [*found, *strays]], experiment)
    for source in [*found, *strays]:
        data = records.read(source.run_id, [*COLUMNS, "output"])
        if data is None:
            skipped.append(
                f"{source.run_id}: stored no per-item generations ({source.condition} seed {source.seed}"
                + (f", stray {source.stray})" if source.stray else ")")
            )
            (strays if source.stray else found).remove(source)
            continue
        data, frame = _session(source, data)
        if not source.stray:  # a stray is no cell of any table: the per-item breakdowns alone read it
            cells.append(_count(frame))
        _keep_rows(data, frame, sib, xnli)
    if not cells:
        raise LangdecError(
            f"no session of the study in {experiment} stored per-item generations; re-run its evaluations"
        )
    table = pd.concat(cells, ignore_index=True)
    table = table.sort_values(["condition", "seed_folder", "template", "cell_order"], kind="stable").reset_index(
        drop=True
    )
    return StudyData(
        table, _stacked(sib, SIB200_ROWS), _stacked(xnli, XNLI_ROWS), sources=found, skipped=skipped, strays=strays
    )


def _session(source: Source, data: "pa.Table") -> tuple["pa.Table", "pd.DataFrame"]:
    """The run's rows of the study's benchmarks (with their outputs) and as a frame under the study's names."""
    import pyarrow as pa
    import pyarrow.compute as pc

    data = data.filter(pc.is_in(data.column("benchmark"), value_set=pa.array(list(STUDY_BENCH))))
    frame = data.drop(["output"]).to_pandas()
    for column in ("template", "benchmark", "data", "instr", "gold"):
        frame[column] = frame[column].astype(str)
    for column in (items.pred("refined"), items.rule("refined")):  # no answer is None, as the study's scripts see it
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    frame["benchmark"] = frame["benchmark"].map(STUDY_BENCH)
    if source.origin != "imported":  # langdec's own matrix order is not the study's: re-number as the study ran
        frame["cell_order"] = _study_order(frame)
    frame = frame.assign(condition=source.condition, seed=source.seed, t=frame["template"].str.removeprefix("template"))
    # the results file as the study's scripts walk them (sorted paths): a stray by its name, a session's by the study's
    frame["file"] = source.stray or (
        source.condition + "_seed" + source.seed + "_results_" + frame["template"] + ".json"
    )
    frame["stray"] = bool(source.stray)
    return data, frame


def _keep_rows(data: "pa.Table", frame: "pd.DataFrame", sib: list["pd.DataFrame"], xnli: list["pd.DataFrame"]) -> None:
    """The SIB-200 rows with their outputs, and the XNLI rows with whether a glued answer opens in a CJK frame."""
    import pyarrow.compute as pc

    is_sib = (frame["benchmark"] == "sib200").to_numpy()
    if is_sib.any():
        outputs = data.filter(pc.equal(data.column("benchmark"), "sib200")).column("output").to_pylist()
        sib.append(frame[is_sib].assign(output=outputs)[SIB200_ROWS])
    is_xnli = (frame["benchmark"] == "xnli").to_numpy()
    if is_xnli.any():
        rows = frame[is_xnli]
        outputs = data.filter(pc.equal(data.column("benchmark"), "xnli")).column("output").to_pylist()
        glued = rows[items.rule("refined")].to_numpy(dtype=object) == "tier2_glued"
        cjk = [bool(g) and bool(CJK_FRAME.search(o.strip().split("\n")[0].strip())) for g, o in zip(glued, outputs)]
        xnli.append(rows.assign(cjk=cjk)[XNLI_ROWS])


def _stacked(parts: list["pd.DataFrame"], columns: list[str]) -> "pd.DataFrame":
    import pandas as pd

    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)
    return frame.rename(columns={items.pred("refined"): "pred", items.rule("refined"): "rule"})


def _study_order(frame: "pd.DataFrame") -> "pd.Series":
    """The place of each row's cell in the study's run order within its template."""
    import numpy as np

    def rank(values: "pd.Series", order: tuple[str, ...]) -> "np.ndarray":
        return values.map({v: n for n, v in enumerate(order)}).fillna(len(order)).to_numpy(int)

    return (
        rank(frame["data"], LANG_ORDER) * 100
        + rank(frame["instr"], LANG_ORDER) * 10
        + rank(frame["benchmark"], BENCH_RUN_ORDER)
    )


def _count(frame: "pd.DataFrame") -> "pd.DataFrame":
    """n, correct and unanswered per cell under each extractor."""
    keys = ["condition", "seed", "template", "t", "benchmark", "data", "instr"]
    named: dict[str, Any] = {"cell_order": ("cell_order", "min"), "n": ("gold", "size")}
    work = frame[[*keys, "cell_order", "gold"]].copy()
    for e in EXTRACTORS:
        work[f"correct_{e}"] = frame[items.correct(e)].to_numpy(dtype=bool)
        work[f"none_{e}"] = frame[items.pred(e)].isna().to_numpy()
        named[f"correct_{e}"] = (f"correct_{e}", "sum")
        named[f"none_{e}"] = (f"none_{e}", "sum")
    # answers the refined extractor leaves unread that langdec's reads, and of those the right ones
    work["recovered"] = work["none_refined"] & ~work["none_langdec"]
    work["recovered_correct"] = work["recovered"] & work["correct_langdec"]
    named.update(recovered=("recovered", "sum"), recovered_correct=("recovered_correct", "sum"))
    out = work.groupby(keys, sort=False).agg(**named).reset_index()
    out["seed_folder"] = "seed" + out["seed"]
    return out
