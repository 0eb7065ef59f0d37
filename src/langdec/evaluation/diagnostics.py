"""Per-cell evaluation diagnostics, by name: what, beyond accuracy, each cell's predictions say.

A diagnostic reads a cell's predictions and gold labels (and, when it needs them, the items it was
scored on) and returns named statistics, logged as `gen.<extractor>.<cell>.<stat>`. They are computed
from the stored per-item records, so re-scored and imported runs get them too. A new diagnostic is
one function and its line in DIAGNOSTICS."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from langdec.core.registry import Registry
from langdec.evaluation.benchmarks import Item
from langdec.evaluation.matrix import CellScore, score


@dataclass(frozen=True)
class CellView:
    benchmark: str
    data: str
    predictions: Sequence[str | None]
    gold: Sequence[str]
    items: Sequence[Item] | None = None  # aligned with predictions; None when the items cannot be found
    all_items: Sequence[Item] | None = None  # every item of (benchmark, data language): fixes bucket edges
    score: CellScore | None = None  # the cell's accuracy and counts (matrix.score), computed when not given

    def __post_init__(self) -> None:
        if self.score is None:
            object.__setattr__(self, "score", score(list(self.predictions), list(self.gold)))


@dataclass(frozen=True)
class Diagnostic:
    name: str
    compute: Callable[[CellView], dict[str, float]]
    benchmarks: tuple[str, ...] | None = None  # None: every benchmark
    needs_items: bool = False


def unparsed(view: CellView) -> dict[str, float]:
    return {"unparsed": view.score.unparsed}


def top_label_share(view: CellView) -> dict[str, float]:
    """The most frequent predicted label's share of all items: near 1 means one answer for everything."""
    return {"top_label_share": view.score.top_label_share}


_WORD = re.compile(r"\w+", re.UNICODE)
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


def tokens(text: str, lang: str) -> set[str]:
    """Word tokens (lower-cased `\\w+` runs); for Chinese, which has no spaces, its CJK characters plus any
    Latin-script words."""
    lowered = text.lower()
    if lang == "zh":
        return set(_CJK.findall(lowered)) | {w for w in _WORD.findall(_CJK.sub(" ", lowered))}
    return set(_WORD.findall(lowered))


@functools.lru_cache(
    maxsize=65536
)  # every cell of a data language reads the same pairs (extractors x templates x instr)
def overlap(premise: str, hypothesis: str, lang: str) -> float:
    """Lexical overlap of an NLI pair: the share of the hypothesis's distinct tokens that also occur in the
    premise (McCoy et al.'s overlap rate), 0 for an empty hypothesis."""
    h = tokens(hypothesis, lang)
    return len(h & tokens(premise, lang)) / len(h) if h else 0.0


def tertile_edges(values: Sequence[float]) -> tuple[float, float]:
    """The 1/3 and 2/3 quantiles (nearest rank) of the values."""
    ranked = sorted(values)
    if not ranked:
        return (0.0, 0.0)
    return ranked[(len(ranked) - 1) // 3], ranked[2 * (len(ranked) - 1) // 3]


def bucket(value: float, edges: tuple[float, float]) -> str:
    return "low" if value <= edges[0] else "mid" if value <= edges[1] else "high"


XNLI_LABELS = ("entailment", "neutral", "contradiction")
BUCKETS = ("low", "mid", "high")
REVERSE_OVERLAP_BIAS = "reverse_overlap_bias"


def overlap_acc(bucket: str) -> str:
    """The name of a bucket's accuracy statistic (the report reads the same names)."""
    return f"overlap_{bucket}_acc"


def overlap_share(bucket: str, label: str) -> str:
    """The name of the share of a bucket's items predicted as `label`."""
    return f"overlap_{bucket}_pred_{label}"


def xnli_overlap(view: CellView) -> dict[str, float]:
    """Accuracy and predicted-label distribution by premise/hypothesis overlap bucket, and the reverse word-overlap bias.

    Buckets are the tertiles of overlap over every item of the benchmark in this data language, so they
    are the same for every condition, template and instruction language (fixed on the items the baseline
    is scored on). Per bucket: `overlap_<bucket>_acc`, and `overlap_<bucket>_pred_<label>` for each XNLI
    label, the share of the bucket's items predicted as that label (an unparsed answer counts in the
    denominator, so the three shares sum to 1 minus the bucket's unparsed share). `reverse_overlap_bias`:
    among low-overlap items whose gold is entailment, the share predicted as non-entailment (neutral or
    contradiction)."""
    if view.items is None:
        return {}
    values = [overlap(it.fields["premise"], it.fields["hypothesis"], view.data) for it in view.items]
    pool = view.all_items or view.items
    edges = tertile_edges([overlap(it.fields["premise"], it.fields["hypothesis"], view.data) for it in pool])
    buckets = [bucket(v, edges) for v in values]
    out: dict[str, float] = {}
    for name in BUCKETS:
        pairs = [(p, g) for b, p, g in zip(buckets, view.predictions, view.gold) if b == name]
        if not pairs:
            continue
        out[overlap_acc(name)] = sum(p == g for p, g in pairs) / len(pairs)
        for label in XNLI_LABELS:
            out[overlap_share(name, label)] = sum(p == label for p, _ in pairs) / len(pairs)
    low_entailment = [p for b, p, g in zip(buckets, view.predictions, view.gold) if b == "low" and g == "entailment"]
    if low_entailment:
        out[REVERSE_OVERLAP_BIAS] = sum(p in ("neutral", "contradiction") for p in low_entailment) / len(low_entailment)
    return out


DIAGNOSTICS: Registry[Diagnostic] = Registry(
    "diagnostic",
    {
        d.name: d
        for d in (
            Diagnostic("unparsed", unparsed),
            Diagnostic("top_label_share", top_label_share),
            Diagnostic("xnli_overlap", xnli_overlap, benchmarks=("xnli",), needs_items=True),
        )
    },
)
get = DIAGNOSTICS.get


def for_benchmark(benchmark: str) -> list[Diagnostic]:
    return [d for d in DIAGNOSTICS.values() if d.benchmarks is None or benchmark in d.benchmarks]


def run_all(view: CellView) -> dict[str, float]:
    out: dict[str, float] = {}
    for d in for_benchmark(view.benchmark):
        out.update(d.compute(view))
    return out
