"""Writes transpiler outcomes: a mirrored folder, one file, or Parquet/JSONL rows; always atomically."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable, Iterable

from ..atomic import atomic_dir, atomic_path, write_text
from . import packs
from .batch import VERSION, Outcome, Summary, summarise


def _row(o: Outcome, lang: str, direction: str, pack_digest: str) -> dict:
    english = o.source if direction == "forward" else o.text
    return {
        "code": o.text if direction == "forward" else o.source,
        "code_en": english,
        "language": lang,
        "file_path": o.file_path,
        "license": o.license,
        "idx": o.idx if o.idx is not None else int(hashlib.sha256((english or "").encode()).hexdigest()[:15], 16),
        "token_count": None,
        "transpiler_version": VERSION,
        "pack_digest": pack_digest,
    }


def write_outputs(outcomes: Iterable[Outcome], src: str, out: str | None, lang: str, direction: str,
                  count_tokens: Callable[[list[str]], list[int]] | None = None) -> Summary:
    """Consume outcomes, write the kept files, and return the summary (also saved beside DEST).

    Table outputs get `token_count` from `count_tokens` (the profile's tokenizer) when given."""
    summary, kept = summarise(outcomes, lang, direction)
    if out is None:
        return summary
    dest = Path(out)
    digest = packs.load(lang).digest
    if dest.suffix in (".parquet", ".jsonl"):
        rows = [_row(o, lang, direction, digest) for o in kept]
        if count_tokens is not None and rows:
            for row, count in zip(rows, count_tokens([r["code"] for r in rows])):
                row["token_count"] = count
        with atomic_path(dest) as tmp:
            if dest.suffix == ".parquet":
                import pandas as pd

                pd.DataFrame(rows, columns=list(_row(Outcome("", True), lang, direction, digest))).to_parquet(tmp, index=False)
            else:
                tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    elif dest.suffix == ".py" and len(kept) <= 1:
        if kept:
            with atomic_path(dest) as tmp:
                tmp.write_bytes(kept[0].text.encode("utf-8"))
    else:
        with atomic_dir(dest) as tmp:
            for o in kept:
                target = tmp / o.file_path
                target.parent.mkdir(parents=True, exist_ok=True)
                # bytes, not text mode: newline translation would break the exact round trip
                target.write_bytes(o.text.encode("utf-8"))
    write_text(dest.with_name(dest.name + ".report.json"), json.dumps(summary.as_dict(), indent=2, ensure_ascii=False))
    return summary
