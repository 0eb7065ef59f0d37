"""The one collector of evaluation runs and their per-item records, for `report` and `study-tables` alike.

`evaluation_runs` is the MLflow query (an experiment's finished evaluation runs, newest first); `records`
checks every run's records with `items.check` (readable, each extractor's labels of the right types and of one
version across the runs, a run that lost its records refused) before any row is read, then reads them. The report
keeps the newest run of every (condition group, tier, seed, part) (`latest_runs`) and reads them into its
frames (`collect`); the study's tables keep the newest of every session of the study
(`langdec.analysis.study.data`).
"""

from __future__ import annotations

import collections
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from langdec.analysis.frames import (
    EXTRACTORS,
    GEN_COLUMNS,
    RUN_COLUMNS,
    Frames,
    categorical,
    code_frame,
    ll_frame,
    refuse_mixed,
    stack,
)
from langdec.core.errors import LangdecError
from langdec.evaluation import records as items
from langdec.evaluation.stage import CODE_RESULTS, EVAL_STAGE, LOGLIKELIHOOD
from langdec.tracking import published

if TYPE_CHECKING:
    import pyarrow as pa

RunKey = tuple[str, str, str, str]  # condition group, tier, seed, part


def evaluation_runs(experiment: str) -> list[Any]:
    """Every finished evaluation run of the experiment, newest first."""
    from mlflow.tracking import MlflowClient

    found = MlflowClient().get_experiment_by_name(experiment)
    if found is None:
        raise LangdecError(
            f"no experiment {experiment!r} in the tracking store; run an evaluation (or `langdec import-results`) "
            "first, or list langdec's experiments with `langdec ui --no-serve`"
        )
    return MlflowClient().search_runs(
        [found.experiment_id],
        f"tags.`langdec.stage` = '{EVAL_STAGE}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=50000,
    )


@dataclass
class Records:
    """The runs' per-item records, every run checked (`records`) before any is read."""

    checked: items.Checked

    def __post_init__(self) -> None:
        self._readable = {ref.run_id: ref for ref in self.checked.runs}

    @property
    def versions(self) -> dict[str, str]:
        return self.checked.versions

    def has(self, run_id: str) -> bool:
        return run_id in self._readable

    def read(self, run_id: str, columns: list[str]) -> "pa.Table | None":
        """The run's records, only `columns`; None for a run that never stored any."""
        ref = self._readable.get(run_id)
        return None if ref is None else items.read_checked(ref, columns)


def records(runs: Iterable[Any], experiment: str) -> Records:
    return Records(items.check([items.RunRef.of(run, experiment) for run in runs], EXTRACTORS, experiment=experiment))


def group_of(tags: dict[str, str]) -> str:
    """A run's condition group in the report: baseline, cond1, cond2-zh, cond2-zh-ARM, cond2-zh@published."""
    cond = tags.get("condition", "?")
    if cond == "baseline":
        return "baseline"
    lang = tags.get("lang")
    group = f"cond{cond}-{lang}" if lang and cond != "1" and lang != "en" else f"cond{cond}"
    if tags.get("arm"):
        group = f"{group}-{tags['arm']}"
    # the study's own adapters, evaluated by langdec, sit beside the re-trained ones of the same condition
    return f"{group}@published" if tags.get("origin") == "published" else group


def latest_runs(experiment: str, tier: str | None = None) -> dict[RunKey, Any]:
    """The newest finished evaluation run of every (group, tier, seed, part)."""
    latest: dict[RunKey, Any] = {}
    for run in evaluation_runs(experiment):
        tags = run.data.tags
        if tier and tags.get("condition") != "baseline" and tags.get("tier") != tier:
            continue
        if published.is_stray(tags):  # the study's per-item breakdowns read it; no report does
            continue
        # an imported result file holds one template: its runs are parts of one evaluation, not rivals
        latest.setdefault(
            (group_of(tags), tags.get("tier", ""), tags.get("seed", ""), tags.get("langdec.part", "")), run
        )
    return latest


def check_tiers(latest: dict[RunKey, Any], *, by_tier: bool = False) -> None:
    """Refuse, from the runs' tags alone (before any record is read), runs that would pool tiers in a group."""
    if by_tier:
        return
    tiers: dict[str, set[str]] = collections.defaultdict(set)
    for group, tier, _seed, _part in latest:
        if group != "baseline":
            tiers[group].add(tier)
    refuse_mixed(tiers)


def _artifact_lines(run_id: str, name: str, artifact_uri: str | None = None) -> list[dict]:
    path = items.local_artifact(run_id, name, artifact_uri)
    if path is None:
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _with_labels(data: "pa.Table", labels: dict[str, str]) -> "pa.Table":
    """The run's columns (group, seed, tier) appended as one-value dictionary columns."""
    import pyarrow as pa

    n = data.num_rows
    for column, value in labels.items():
        data = data.append_column(
            column, pa.DictionaryArray.from_arrays(pa.array([0] * n, pa.int32()), pa.array([value]))
        )
    return data


def collect(experiment: str, tier: str | None = None, latest: dict | None = None, *, by_tier: bool = False) -> Frames:
    """The frames of the newest finished evaluation run of every (group, tier, seed, part): only the columns a
    report reads, string columns as categories."""
    import pyarrow as pa

    latest = latest if latest is not None else latest_runs(experiment, tier)
    check_tiers(latest, by_tier=by_tier)
    found = records(latest.values(), experiment)  # every run's records checked before any row is read
    wanted = [*GEN_COLUMNS, *(c for n in EXTRACTORS for c in (items.pred(n), items.correct(n)))]
    tables, lls, codes = [], [], []
    for (group, run_tier, seed, _part), run in latest.items():
        run_tier = "" if group == "baseline" else run_tier
        name = f"{group}-{run_tier}" if by_tier and run_tier and group != "baseline" else group
        data = found.read(run.info.run_id, wanted)
        if data is not None:
            tables.append(_with_labels(data, {"group": name, "seed": seed, "tier": run_tier}))
        else:
            print(
                f"note: evaluation run {run.info.run_id} ({run.info.run_name}) stored no per-item generations; "
                "its metrics are shown by MLflow, the report leaves it out",
                file=sys.stderr,
            )
        lls.append(
            ll_frame(_artifact_lines(run.info.run_id, LOGLIKELIHOOD, run.info.artifact_uri), name, seed, run_tier)
        )
        codes.append(
            code_frame(_artifact_lines(run.info.run_id, CODE_RESULTS, run.info.artifact_uri), name, seed, run_tier)
        )
    if tables:
        gen = categorical(pa.concat_tables(tables, promote_options="permissive").unify_dictionaries().to_pandas())
    else:
        import pandas as pd

        gen = pd.DataFrame(columns=[*RUN_COLUMNS, *wanted])
    empty = ll_frame([], "", "", "")
    return Frames(gen, stack(lls or [empty]), stack(codes or [empty]), found.versions)
