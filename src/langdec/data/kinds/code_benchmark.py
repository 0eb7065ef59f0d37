"""`code-benchmark`: a code benchmark's train split as training files (the FLeX condition): the task as a
docstring, then the reference solution and its tests. The files are not from the English tier, so they
get their own validation split."""

from __future__ import annotations

import hashlib

import pandas as pd

from langdec.core.config import Condition, Profile
from langdec.core.errors import LangdecError
from langdec.data.kinds.base import Build, DataKind, Rows
from langdec.data.splits import validation_idx
from langdec.evaluation import code

ORIGIN = "benchmark"


def rows(b: Build) -> Rows:
    profile, cond, job = b.profile, b.cond, b.job
    if not cond.source_benchmark:
        raise LangdecError(
            f"condition {cond.name}: data code-benchmark needs source_benchmark (experiments/conditions.yaml)"
        )
    source = profile.evaluation.source
    tasks = [t for t in code.load(cond.source_benchmark, source=source, split="train") if t.reference]
    if not tasks:
        raise LangdecError(
            f"condition {cond.name}: {cond.source_benchmark} has no train tasks with reference solutions in {source}"
        )
    tasks = tasks[: profile.tier_files(job.tier)]
    bench = code.get(cond.source_benchmark)
    codes = [f'"""{t.text}"""\n{t.reference.strip()}\n\n{t.tests}\n' for t in tasks]
    frame = pd.DataFrame(
        {
            "idx": [int(hashlib.sha256(c.encode()).hexdigest()[:15], 16) for c in codes],
            "file_path": [f"{bench.name}/task_{t.id}.py" for t in tasks],
            "code": codes,
            "code_en": codes,
            "license": "cc-by-4.0",
            "language": "en",
            "origin": ORIGIN,
        }
    )
    return frame, {
        "dropped": [],
        "source_benchmark": bench.name,
        "source_split": "train",
        "source": source,
        "extra_validation": validation_idx(frame["idx"].tolist(), job.seed, profile.corpus.validation_ratio),
    }


def version(profile: Profile, cond: Condition, lang: str | None) -> str:
    return (
        f"code:{code.source_digest(cond.source_benchmark, profile.evaluation.source)}" if cond.source_benchmark else "1"
    )


KIND = DataKind("code-benchmark", needs_language=False, rows=rows, version=version, outside_tier=(ORIGIN,))
