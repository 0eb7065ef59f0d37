"""`transpiled`: the tier's files with Python's reserved vocabulary in the target language (condition 2).

This kind also owns the source-file control: a file that fails to transpile in any condition-2
language is dropped from conditions 1 and 2 alike (`aligned_idx`), so they train on the same files."""

from __future__ import annotations

import hashlib
import json

from langdec.core.atomic import write_text
from langdec.core.config import Condition, Profile, conditions
from langdec.data.corpus import Tier
from langdec.data.kinds.base import Build, DataKind, Rows, reverse_keywords
from langdec.data.sources import SourceRow
from langdec.data.transpiler import batch
from langdec.data.transpiler.engine import english_keywords_left, parses
from langdec.data.transpiler.packs import load as load_pack

NAME = "transpiled"


def rows(b: Build) -> Rows:
    english = b.tier.frame
    lang = b.job.lang
    source = [SourceRow(r.file_path, r.code_en, r.license, int(r.idx)) for r in english.itertuples()]
    outcomes = list(batch.run(source, lang, progress=b.progress, total=len(source)))
    kept = {o.idx: o.text for o in outcomes if o.ok}
    dropped = [
        {"idx": o.idx, "file_path": o.file_path, "reason": o.reason, "detail": o.detail} for o in outcomes if not o.ok
    ]
    frame = english[english["idx"].isin(kept)].copy()
    frame["code"] = frame["idx"].map(kept)
    frame["language"] = lang
    return frame, {"dropped": dropped, "transpiler_version": batch.VERSION, "pack_digest": load_pack(lang).digest}


def version(profile: Profile, cond: Condition, lang: str | None) -> str:
    return f"{batch.VERSION}:{load_pack(lang).digest}" if lang else "1"


def derive(frame) -> None:
    reversed_code = [reverse_keywords(str(c), l) for c, l in zip(frame["code"], frame["language"])]
    frame["reverses_to_source"] = [r == e for r, e in zip(reversed_code, frame["code_en"])]
    frame["reverse_parses"] = [parses(r) for r in reversed_code]
    frame["english_keywords_left"] = [english_keywords_left(str(c)) for c in frame["code"]]


KIND = DataKind(NAME, needs_language=True, rows=rows, version=version, derive=derive)


def alignment_languages() -> list[str]:
    """Languages whose condition-2 data must share one idx set with condition 1 (source-file control)."""
    langs: set[str] = set()
    for cond in conditions().values():
        if cond.available and cond.data == NAME:
            langs.update(cond.languages)
    return sorted(langs)


def alignment_key() -> str:
    return hashlib.sha256(
        json.dumps([batch.VERSION, [(l, load_pack(l).digest) for l in alignment_languages()]]).encode()
    ).hexdigest()[:12]


def aligned_idx(tier: Tier, *, progress: bool = False) -> tuple[set[int], list[dict]]:
    """The tier's files every aligned condition can use, and what each language lost.

    Cached beside the tier, keyed by the transpiler version and every pack's digest; the loss is
    listed, never silent."""
    key = alignment_key()
    cache = tier.path / f"alignment-{key}.json"
    if cache.exists():
        saved = json.loads(cache.read_text())
        return set(saved["aligned"]), saved["lost"]
    source = [SourceRow(r.file_path, r.code_en, r.license, int(r.idx)) for r in tier.frame.itertuples()]
    lost: list[dict] = []
    for lang in alignment_languages():
        for o in batch.run(source, lang, progress=progress, total=len(source)):
            if not o.ok:
                lost.append(
                    {"idx": o.idx, "file_path": o.file_path, "language": lang, "reason": o.reason, "detail": o.detail}
                )
    dropped = {entry["idx"] for entry in lost}
    aligned = sorted(set(tier.frame["idx"].tolist()) - dropped)
    write_text(cache, json.dumps({"aligned": aligned, "lost": lost, "languages": alignment_languages()}, indent=2))
    return set(aligned), lost
