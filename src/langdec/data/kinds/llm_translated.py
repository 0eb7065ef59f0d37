"""`llm-translated`: condition-2 files whose identifiers, comments and strings an LLM translated (condition 5).

The tier's aligned files are translated into every condition-5 language at once; only files that
succeeded in all of them are kept, so the languages train on the same files, and the loss is listed."""

from __future__ import annotations

import json

import pandas as pd

from langdec.core.atomic import atomic_path
from langdec.core.config import Condition, Profile
from langdec.core.errors import LangdecError
from langdec.core.languages import target_script_share
from langdec.data.kinds import transpiled
from langdec.data.kinds.base import Build, DataKind, Rows, reverse_keywords
from langdec.data.sources import SourceRow
from langdec.data.translation import stage
from langdec.data.transpiler.engine import parses


def rows(b: Build) -> Rows:
    profile, tier, cond, lang = b.profile, b.tier, b.cond, b.job.lang
    if lang not in cond.languages:
        raise LangdecError(
            f"condition {cond.name} is defined for {', '.join(cond.languages)}, not {lang!r} (experiments/conditions.yaml)"
        )
    aligned2, _ = transpiled.aligned_idx(tier, progress=b.progress)
    cache = stage.alignment_cache(tier.path, profile.translation, cond.languages, transpiled.alignment_key())
    per_lang = {l: cache.with_name(f"{cache.stem}-{l}.parquet") for l in cond.languages}
    if not (cache.exists() and all(p.exists() for p in per_lang.values())):
        english = tier.frame[tier.frame["idx"].isin(aligned2)]
        source = [SourceRow(r.file_path, r.code_en, r.license, int(r.idx)) for r in english.itertuples()]
        results = stage.translate_tier(profile, source, cond.languages, progress=b.progress)
        aligned = stage.align(results)
        for l, (kept, _, _) in results.items():
            with atomic_path(per_lang[l]) as tmp:
                pd.DataFrame({"idx": list(kept), "code": list(kept.values())}, columns=["idx", "code"]).to_parquet(
                    tmp, index=False
                )
        stage.save_alignment(cache, results, aligned)
    saved = json.loads(cache.read_text())
    aligned = set(saved["aligned"])
    translated = pd.read_parquet(per_lang[lang])
    codes = dict(zip(translated["idx"].tolist(), translated["code"].tolist()))
    frame = tier.frame[tier.frame["idx"].isin(aligned)].copy()
    frame["code"] = frame["idx"].map(codes)
    frame["language"] = lang
    return frame, {
        "dropped": saved["lost"],
        "translation": {
            **stage.describe(profile.translation),
            "languages": cond.languages,
            "input_files": len(aligned2),
            "aligned_files": len(aligned),
            "reports": saved["reports"],
        },
    }


def version(profile: Profile, cond: Condition, lang: str | None) -> str:
    return f"{transpiled.version(profile, cond, lang)}:llm:{stage.settings_key(profile.translation)}:{sorted(cond.languages)}"


def derive(frame: pd.DataFrame) -> None:
    frame["reverse_parses"] = [parses(reverse_keywords(str(c), l)) for c, l in zip(frame["code"], frame["language"])]
    frame["target_script_share"] = [target_script_share(str(c), l) for c, l in zip(frame["code"], frame["language"])]


KIND = DataKind(
    "llm-translated",
    needs_language=True,
    rows=rows,
    version=version,
    derive=derive,
    registry_tags=lambda profile: {"translation_model": profile.translation.model},
)  # part of the published name
