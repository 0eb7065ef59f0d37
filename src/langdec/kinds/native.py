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
from pathlib import Path

import pandas as pd

from tqdm import tqdm

from ..config import Condition, Profile
from ..corpus import filter_steps, iter_source, select
from ..errors import LangdecError
from ..languages import target_script_share
from ..paths import project_root
from ..splits import validation_idx
from ..transpiler.engine import parses, reverse
from ..transpiler.packs import load as load_pack
from . import transpiled
from .base import Build, DataKind, Rows, reverse_keywords

ORIGIN = "native"


def source_for(profile: Profile, lang: str) -> str:
    if lang not in profile.corpus.native:
        raise LangdecError(f"condition 3 needs native code for {lang!r}: add corpus.native.{lang} (a folder, .parquet/.jsonl, "
                           f"or hf:ID) to the profile {profile.path or profile.name}; configured: {sorted(profile.corpus.native) or 'none'}")
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
    """The native files, then condition-2 files of the tier to fill it (the study's blend)."""
    condition_2, processing = transpiled.rows(b)
    profile, tier, lang, seed, progress = b.profile, b.tier, b.job.lang, b.job.seed, b.progress
    source = source_for(profile, lang)
    size = len(tier.frame)
    # langdec's filters and keyed sampling whatever the profile says: the study's blend (create_condition3_blend.py)
    # is not reproduced yet, and its row-number idx would collide with the English tier's
    cfg = dataclasses.replace(profile.corpus, filters="langdec", sampling="keyed")
    # the same filters, except that "parses" accepts code written with the language's keywords
    steps = [(name, (lambda c: _parses_with_pack(c.code, lang)) if name == "parses" else keep) for name, keep in filter_steps(cfg)]
    rows = tqdm(iter_source(source), desc=f"native {lang}", unit="file", disable=not progress, leave=False)
    chosen, report = select(rows, cfg, size, seed, steps=steps)
    if not chosen:
        raise LangdecError(f"condition 3: no native {lang} file in {source} survived the filters ({report.removed}); "
                           "check corpus.native and the corpus limits (min_lines, max_lines, licences)")
    native = pd.DataFrame({"idx": [c.idx for c in chosen], "file_path": [f"native/{c.file_path}" for c in chosen],
                           "code": [c.code for c in chosen], "code_en": [None] * len(chosen),
                           "license": [c.license for c in chosen], "language": lang, "origin": ORIGIN})
    need = max(0, size - len(native))
    order = sorted(condition_2["idx"].tolist(), key=lambda i: hashlib.sha256(f"blend:{seed}:{i}".encode()).hexdigest())
    fill = condition_2.set_index("idx").loc[order[:need]].reset_index().assign(origin="condition-2")
    frame = pd.concat([native, fill[native.columns]], ignore_index=True)
    blend_record = {"native_source": source, "native_files": len(native), "condition_2_files": len(fill), "tier_size": size,
                    "native_filters": dataclasses.asdict(report), "native_paths": native["file_path"].tolist()}
    return frame, {**processing, "blend": blend_record,
                   "extra_validation": validation_idx(native["idx"].tolist(), seed, cfg.validation_ratio)}


def version(profile: Profile, cond: Condition, lang: str | None) -> str:
    return f"{transpiled.version(profile, cond, lang)}:native:{source_key(profile, lang)}"


def derive(frame: pd.DataFrame) -> None:
    # native files may use English or translated keywords; blended condition-2 files use translated ones
    frame["reverse_parses"] = [parses(str(c)) or parses(reverse_keywords(str(c), l)) for c, l in zip(frame["code"], frame["language"])]
    # measured on the native part only (null elsewhere, which expectations skip): blended condition-2
    # files keep their English identifiers by design
    origin = frame["origin"] if "origin" in frame else pd.Series(ORIGIN, index=frame.index)
    frame["native_script_share"] = [target_script_share(str(c), l) if o == ORIGIN else None
                                    for c, l, o in zip(frame["code"], frame["language"], origin)]


KIND = DataKind(ORIGIN, needs_language=True, rows=rows, version=version, derive=derive, outside_tier=ORIGIN)
