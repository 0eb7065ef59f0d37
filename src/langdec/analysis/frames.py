"""The per-item frames a report reads, one row per item: generations (each extractor's label and whether it is
the gold), log-likelihood choices and executed code, each row naming the run it comes from (group, seed, tier);
built from records held in memory (`frames_of`, `concat`) or by the collector (`langdec.analysis.collect`).
Also the rule that a condition group never pools tiers (`separate_tiers`, `refuse_mixed`)."""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from langdec.core.errors import LangdecError
from langdec.evaluation import extractors
from langdec.evaluation import records as items

if TYPE_CHECKING:
    import pandas as pd

EXTRACTORS = ("strict", "refined", "langdec")  # the study's two, then langdec's own rules
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
        empty = ll_frame([], "", "", "")
        return cls(categorical(gen.copy()), empty, empty, dict(versions or {}))

    def kinds(self) -> list[str]:
        out = [f"gen.{n}" for n in EXTRACTORS if items.correct(n) in self.gen.columns and len(self.gen)]
        return out + [k for k, f in (("ll", self.ll), ("code.pass_at_1", self.code)) if len(f)]

    def view(self, kind: str) -> "pd.DataFrame":
        """One kind of score as rows of (group, seed, tier, benchmark, data, template, instr, item_id, correct, pred)."""
        if kind.startswith("gen."):
            name = kind[4:]
            return self.gen[[*RUN_COLUMNS, *GEN_COLUMNS, items.correct(name), items.pred(name)]].rename(
                columns={items.correct(name): "correct", items.pred(name): "pred"}
            )
        return self.ll if kind == "ll" else self.code


def categorical(frame: "pd.DataFrame") -> "pd.DataFrame":
    for column in (*RUN_COLUMNS, *GEN_COLUMNS):
        if column in frame.columns and frame[column].dtype != "category":
            frame[column] = frame[column].astype("category")
    return frame


def frames_of(
    group: str,
    seed: str,
    generations: list[dict],
    loglikelihood: list[dict] | None = None,
    code_results: list[dict] | None = None,
    tier: str = "",
) -> Frames:
    """A run's frames from its records as dicts, labelled here by every extractor (as evaluate stores them):
    for a run held in memory, e.g. a test's."""
    import pandas as pd

    gen = [{"cell": f"{r['template']}.{r['benchmark']}.data:{r['data']}.instr:{r['instr']}", **r} for r in generations]
    labelled = items.table(gen, EXTRACTORS).to_pandas() if gen else pd.DataFrame(columns=list(GEN_COLUMNS))
    return Frames(
        _with_run(labelled, group, seed, tier),
        ll_frame(loglikelihood or [], group, seed, tier),
        code_frame(code_results or [], group, seed, tier),
        {n: extractors.get(n).version for n in EXTRACTORS},
    )


def concat(parts: list[Frames]) -> Frames:
    versions: dict[str, str] = {}
    for part in parts:
        versions.update(part.versions)
    return Frames(stack([p.gen for p in parts]), stack([p.ll for p in parts]), stack([p.code for p in parts]), versions)


def stack(frames: list["pd.DataFrame"]) -> "pd.DataFrame":
    """Frames one under the other, categories merged (for the small frames of tests, ll and code results)."""
    import pandas as pd

    frames = [f for f in frames if len(f)] or frames[:1]
    if len(frames) == 1:
        return frames[0]
    return categorical(
        pd.concat(
            [f.astype({c: object for c in f.columns if f[c].dtype == "category"}) for f in frames], ignore_index=True
        )
    )


def _with_run(frame: "pd.DataFrame", group: str, seed: str, tier: str) -> "pd.DataFrame":
    frame = frame.assign(group=group, seed=seed, tier=tier)
    return categorical(frame)


def ll_frame(records: list[dict], group: str, seed: str, tier: str) -> "pd.DataFrame":
    import pandas as pd

    rows = [
        {
            "benchmark": r["benchmark"],
            "data": r["data"],
            "template": "template1",
            "instr": "en",
            "item_id": str(r["item_id"]),
            "correct": r["pred"] == r["gold"],
            "pred": r["pred"],
        }
        for r in records
    ]
    return _with_run(pd.DataFrame(rows, columns=[*GEN_COLUMNS, "correct", "pred"]), group, seed, tier)


def code_frame(records: list[dict], group: str, seed: str, tier: str) -> "pd.DataFrame":
    """One row per executed sample: the mean over a task's samples is its unbiased pass@1."""
    import pandas as pd

    rows = [
        {
            "benchmark": r["benchmark"],
            "data": r.get("language", "code"),
            "template": "-",
            "instr": "-",
            "item_id": str(r["task_id"]),
            "correct": bool(r["passed"]),
            "pred": None,
        }
        for r in records
    ]
    return _with_run(pd.DataFrame(rows, columns=[*GEN_COLUMNS, "correct", "pred"]), group, seed, tier)


def refuse_mixed(tiers: dict[str, set[str]]) -> None:
    """Refuse condition groups seen at more than one tier (the baseline is left out by the callers)."""
    mixed = {g: sorted(t) for g, t in tiers.items() if len(t) > 1}
    if mixed:
        named = "; ".join(f"{g}: {', '.join(t)}" for g, t in sorted(mixed.items()))
        raise LangdecError(
            f"the report would pool tiers ({named}); pass --tier TIER for one tier, or --by-tier to "
            "report each tier as its own condition"
        )


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
            refuse_mixed(tiers)
            parts.append(frame)
            continue
        import numpy as np
        import pandas as pd

        # ngroup numbers the (group, tier) pairs in the order of `pairs`
        names = [f"{g}-{t}" if t and g != "baseline" else str(g) for g, t in pairs]
        unique = list(dict.fromkeys(names))
        codes = np.array([unique.index(n) for n in names])[
            frame.groupby(["group", "tier"], observed=True, sort=True).ngroup().to_numpy()
        ]
        parts.append(frame.assign(group=pd.Categorical.from_codes(codes, categories=unique)))
    return Frames(*parts, versions=frames.versions)
