"""Writes transpiler outcomes: a mirrored folder, one file, or Parquet/JSONL rows; always atomically."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from pathlib import Path

from langdec.core.atomic import write_files_or_rows, write_text
from langdec.data.transpiler import packs
from langdec.data.transpiler.batch import VERSION, Outcome, Summary, summarise


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


def write_outputs(
    outcomes: Iterable[Outcome],
    src: str,
    out: str | None,
    lang: str,
    direction: str,
    count_tokens: Callable[[list[str]], list[int]] | None = None,
    *,
    replace: bool = False,
) -> Summary:
    """Consume outcomes, write the kept files, and return the summary (also saved beside DEST).

    Table outputs get `token_count` from `count_tokens` (the profile's tokenizer) when given."""
    summary, kept = summarise(outcomes, lang, direction)
    if out is None:
        return summary
    dest = Path(out)
    digest = packs.load(lang).digest
    rows = [_row(o, lang, direction, digest) for o in kept] if dest.suffix in (".parquet", ".jsonl") else []
    if count_tokens is not None and rows:
        for row, count in zip(rows, count_tokens([r["code"] for r in rows])):
            row["token_count"] = count
    write_files_or_rows(
        dest,
        [(o.file_path, o.text) for o in kept],
        rows,
        list(_row(Outcome("", True), lang, direction, digest)),
        replace=replace,
    )
    write_text(dest.with_name(dest.name + ".report.json"), json.dumps(summary.as_dict(), indent=2, ensure_ascii=False))
    return summary
