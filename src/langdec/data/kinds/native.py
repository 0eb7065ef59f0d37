"""Condition 3: code people wrote in the target language, blended with condition-2 files to the tier size.

The native source (a folder, Parquet/JSONL export or `hf:ID[:config]`, from
`corpus.native.<lang>` in the profile) goes through the same filters and exact +
near dedup as the English corpus, and the same seeded sample. If it has fewer
files than the tier, the rest is filled with the tier's condition-2 files in a
seeded order, as the study did; the manifest records how many came from each.
Native files may be written with translated keywords: a file that does not parse
as it is, but parses once the language pack reverses its keywords, is kept.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from langdec.core.config import Condition, Profile
from langdec.core.errors import LangdecError
from langdec.core.languages import target_script_share
from langdec.core.paths import project_root
from langdec.data import study_corpus
from langdec.data.corpus import Candidate, build_tier, filter_steps, iter_source, select
from langdec.data.kinds import transpiled
from langdec.data.kinds.base import Build, DataKind, Rows, reverse_keywords
from langdec.data.splits import validation_idx
from langdec.data.transpiler.engine import parses, reverse
from langdec.data.transpiler.packs import load as load_pack

ORIGIN = "native"
POOL_ORIGIN = "condition-2-pool"  # the study's blend: condition-2 files from outside the tier


def source_for(profile: Profile, lang: str) -> str:
    if lang not in profile.corpus.native:
        raise LangdecError(
            f"condition 3 needs native code for {lang!r}: add corpus.native.{lang} (a folder, .parquet/.jsonl, "
            f"or hf:ID) to the profile {profile.path or profile.name}; configured: {sorted(profile.corpus.native) or 'none'}"
        )
    spec = profile.corpus.native[lang]
    if spec.startswith("hf:") or Path(spec).exists():
        return spec
    anchored = project_root() / spec
    return str(anchored) if anchored.exists() else spec


def source_key(profile: Profile, lang: str) -> str:
    """Changes when the native files change (a local source is hashed; a hub id is taken as named)."""
    spec = source_for(profile, lang)
    path = Path(spec)
    h = hashlib.sha256(spec.encode())
    if path.is_dir():
        for file in sorted(path.rglob("*.py")):
            h.update(file.relative_to(path).as_posix().encode() + b"\0" + file.read_bytes())
    elif path.is_file():
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


def _parses_with_pack(code: str, lang: str) -> bool:
    if parses(code):
        return True
    try:
        return parses(reverse(code, load_pack(lang)))
    except Exception:  # a file the pack cannot lex is simply not Python in this language
        return False


def rows(b: Build) -> Rows:
    """The native files blended with condition-2 files to the tier's size (`corpus.blend`)."""
    return (_study_blend if b.profile.corpus.blend == "study" else _langdec_blend)(b)


def _langdec_blend(b: Build) -> Rows:
    """langdec's blend: the native files through the English corpus's filters and dedup, sampled to the tier size,
    filled with condition-2 files of the same tier in a seeded order."""
    condition_2, processing = transpiled.rows(b)
    profile, tier, lang, seed, progress = b.profile, b.tier, b.job.lang, b.job.seed, b.progress
    source = source_for(profile, lang)
    size = len(tier.frame)
    # langdec's filters and keyed sampling: a native file's idx comes from its content, so it never meets the tier's
    cfg = dataclasses.replace(profile.corpus, filters="langdec", sampling="keyed")
    # the same filters, except that "parses" accepts code written with the language's keywords
    steps = [
        (name, (lambda c: _parses_with_pack(c.code, lang)) if name == "parses" else keep)
        for name, keep in filter_steps(cfg)
    ]
    rows = tqdm(iter_source(source), desc=f"native {lang}", unit="file", disable=not progress, leave=False)
    chosen, report = select(rows, cfg, size, seed, steps=steps)
    if not chosen:
        raise LangdecError(
            f"condition 3: no native {lang} file in {source} survived the filters ({report.removed}); "
            "check corpus.native and the corpus limits (min_lines, max_lines, licences)"
        )
    native = _native_frame(chosen, lang)
    need = max(0, size - len(native))
    order = sorted(condition_2["idx"].tolist(), key=lambda i: hashlib.sha256(f"blend:{seed}:{i}".encode()).hexdigest())
    fill = condition_2.set_index("idx").loc[order[:need]].reset_index().assign(origin="condition-2")
    frame = pd.concat([native, fill[native.columns]], ignore_index=True)
    blend_record = {
        "blend": "langdec",
        "native_source": source,
        "native_files": len(native),
        "condition_2_files": len(fill),
        "tier_size": size,
        "native_filters": dataclasses.asdict(report),
        "native_paths": native["file_path"].tolist(),
    }
    return frame, {
        **processing,
        "blend": blend_record,
        "extra_validation": validation_idx(native["idx"].tolist(), seed, cfg.validation_ratio),
    }


def _native_frame(chosen, lang: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "idx": [c.idx for c in chosen],
            "file_path": [f"native/{c.file_path}" for c in chosen],
            "code": [c.code for c in chosen],
            "code_en": [None] * len(chosen),
            "license": [c.license for c in chosen],
            "language": lang,
            "origin": ORIGIN,
        }
    )


def _study_blend(b: Build) -> Rows:
    """create_condition3_blend.py: every native file as published, then condition-2 files from outside the tier
    (the pool tier `corpus.blend_pool` without this tier's paths, so conditions 2 and 3 share no file), sorted
    by path and sampled with `random.Random(seed).sample`; the blend is split on its own, as the study split it."""
    profile, tier, lang, seed, progress = b.profile, b.tier, b.job.lang, b.job.seed, b.progress
    source = source_for(profile, lang)
    size = len(tier.frame)
    natives = []
    for row in tqdm(iter_source(source), desc=f"native {lang}", unit="file", disable=not progress, leave=False):
        try:
            code = row.text()
        except UnicodeDecodeError:
            continue  # counted below: every native file the source holds is listed, read or not
        natives.append(Candidate(row.file_path, code, row.license, hashlib.sha256(code.encode("utf-8")).hexdigest()))
    if not natives:
        raise LangdecError(f"condition 3: {source} holds no native {lang} file; check corpus.native.{lang}")
    native = _native_frame(natives, lang)
    need = max(0, size - len(native))
    pool_tier = build_tier(profile, profile.corpus.blend_pool, seed, progress=progress)
    available = pool_tier.frame[~pool_tier.frame["file_path"].isin(set(tier.frame["file_path"]))]
    available = available.sort_values("file_path").reset_index(drop=True)
    if need > len(available):
        raise LangdecError(
            f"condition 3: the blend needs {need} condition-2 files from outside tier {b.job.tier}, but tier "
            f"{profile.corpus.blend_pool} (corpus.blend_pool) has only {len(available)} others; use a larger pool"
        )
    picked = available.iloc[sorted(random.Random(seed).sample(range(len(available)), need))]
    condition_2, processing = transpiled.rows(dataclasses.replace(b, tier=dataclasses.replace(pool_tier, frame=picked)))
    fill = condition_2.assign(origin=POOL_ORIGIN)
    frame = pd.concat([native, fill[native.columns]], ignore_index=True)
    held_out = study_corpus.validation_idx(
        list(zip(frame["file_path"], frame["idx"])), seed, profile.corpus.validation_ratio
    )
    blend_record = {
        "blend": "study",
        "native_source": source,
        "native_files": len(native),
        "condition_2_files": len(fill),
        "tier_size": size,
        "pool_tier": profile.corpus.blend_pool,
        "pool_available": len(available),
        "native_paths": native["file_path"].tolist(),
    }
    return frame, {**processing, "blend": blend_record, "validation": held_out}


def version(profile: Profile, cond: Condition, lang: str | None) -> str:
    blend = "" if profile.corpus.blend == "langdec" else f":blend-{profile.corpus.blend}-{profile.corpus.blend_pool}"
    return f"{transpiled.version(profile, cond, lang)}:native:{source_key(profile, lang)}{blend}"


def derive(frame: pd.DataFrame) -> None:
    # native files may use English or translated keywords; blended condition-2 files use translated ones
    frame["reverse_parses"] = [
        parses(str(c)) or parses(reverse_keywords(str(c), l)) for c, l in zip(frame["code"], frame["language"])
    ]
    # measured on the native part only (null elsewhere, which expectations skip): blended condition-2
    # files keep their English identifiers by design
    origin = frame["origin"] if "origin" in frame else pd.Series(ORIGIN, index=frame.index)
    frame["native_script_share"] = [
        target_script_share(str(c), l) if o == ORIGIN else None
        for c, l, o in zip(frame["code"], frame["language"], origin)
    ]


KIND = DataKind(
    ORIGIN, needs_language=True, rows=rows, version=version, derive=derive, outside_tier=(ORIGIN, POOL_ORIGIN)
)
