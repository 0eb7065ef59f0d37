"""The report as data (report.json): its summary, every cell, the study's units, the XNLI overlap section and
benchmarks beside their variants; nan written as null."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from langdec.analysis.comparison import Report
from langdec.analysis.study_tables import StudyTables
from langdec.analysis.variants import variant_gaps


def report_json(report: Report) -> str:
    cells = [
        {
            "group": c.group,
            "benchmark": c.benchmark,
            "data": c.data,
            "kind": c.kind,
            "mean": c.mean,
            "std": c.std,
            "seeds": sorted(c.per_seed),
            "baseline": c.baseline,
            "delta": c.delta,
            "ci": c.ci,
            "outcome": c.outcome,
            "n_items": c.n_items,
            "top_label_share": c.top_label_share,
            "flags": c.flags,
        }
        for c in report.cells
    ]
    return json.dumps(
        {
            "summary": report.summary(),
            "extractor_versions": report.extractor_versions,
            "cells": cells,
            "study": study_json(report.study),
            "xnli_overlap": report.overlap,
            "variants": variant_gaps(report),
        },
        indent=2,
    )


def _clean(value: Any) -> Any:
    return None if isinstance(value, float) and value != value else value


def study_json(tables: StudyTables) -> dict[str, Any]:
    return {
        "extractor": tables.extractor,
        "flip_threshold": tables.threshold,
        "cells_compared": tables.cells_compared,
        "bonferroni_p": _clean(tables.bonferroni_p),
        "paper": [asdict(r) for r in tables.paper],
        "flips": [asdict(f) for f in tables.flips],
        "headline": [asdict(h) for h in tables.headline],
        "significance": [{k: _clean(v) for k, v in asdict(s).items()} for s in tables.significance],
    }
