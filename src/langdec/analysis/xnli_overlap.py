"""The report's XNLI word-overlap section, computed: per condition group, the overlap diagnostics each evaluation
run logged (`langdec.evaluation.diagnostics`) averaged over its cells and seeds."""

from __future__ import annotations

import statistics
from typing import Any

from langdec.evaluation.diagnostics import BUCKETS, REVERSE_OVERLAP_BIAS, XNLI_LABELS, overlap_acc, overlap_share

OVERLAP_STATS = (*(overlap_acc(b) for b in BUCKETS), REVERSE_OVERLAP_BIAS)
OVERLAP_LABELS = (*(f"acc, {b} overlap" for b in BUCKETS), "reverse overlap bias")  # one per statistic
OVERLAP_SHARES = tuple(overlap_share(b, label) for b in BUCKETS for label in XNLI_LABELS)


def overlap_rows(latest: dict[Any, Any], extractor: str) -> dict[str, dict[str, float]]:
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
