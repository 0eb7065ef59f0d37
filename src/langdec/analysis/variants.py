"""Benchmarks beside their variants, computed from a report's cells: per condition and data language, accuracy
on a benchmark's own split against a `pair:` variant (mixed-language, e.g. xnli_mixed) or a `translate:` one
(machine-translated, e.g. sib200_mt)."""

from __future__ import annotations

from typing import Any

from langdec.analysis.comparison import Report


def variant_gaps(report: Report) -> list[dict[str, Any]]:
    """Per condition and data language, accuracy on a benchmark's own split against its variant (a `pair:` benchmark
    such as xnli_mixed, or a `translate:` one such as sib200_mt): the gap is own minus variant."""
    from langdec.evaluation import benchmarks

    kind = f"gen.{report.extractor}"
    rows = []
    for variant in sorted({c.benchmark for c in report.cells if c.kind == kind}):
        bench = benchmarks.get(variant)
        if not (bench.pair or bench.translate):
            continue
        for cell in sorted(
            (c for c in report.cells if c.kind == kind and c.benchmark == variant), key=lambda c: (c.group, c.data)
        ):
            own = report.value(cell.group, bench.family, cell.data, kind)
            if own is not None:
                rows.append(
                    {
                        "group": cell.group,
                        "benchmark": bench.family,
                        "variant": variant,
                        "data": cell.data,
                        "own": own.mean,
                        "variant_acc": cell.mean,
                        "gap": own.mean - cell.mean,
                        "kind": "mixed-language" if bench.pair else "machine-translated",
                    }
                )
    return rows
