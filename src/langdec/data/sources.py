"""Streams source files from a file, a directory tree, Parquet/JSONL, or a Hugging Face dataset.

Every source yields `SourceRow`s one at a time; nothing is materialised whole, so
a 100k-file corpus or a streamed hub dataset costs the memory of one batch.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langdec.core.errors import LangdecError

CODE_COLUMNS = ("code", "content", "text")


@dataclass
class SourceRow:
    file_path: str
    data: bytes | str  # bytes from disk (decoding is checked later), str from tables
    license: str | None = None
    idx: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def text(self) -> str:
        if isinstance(self.data, str):
            return self.data
        return self.data.decode("utf-8")  # UnicodeDecodeError is reported by the caller


def iter_rows(src: str | Path, *, code_column: str | None = None, limit: int | None = None) -> Iterator[SourceRow]:
    spec = str(src)
    if spec.startswith("hf:"):
        rows = _hub(spec[3:], code_column)
    else:
        path = Path(spec)
        if not path.exists():
            raise LangdecError(
                f"{path}: no such file or directory (sources: a .py file, a folder, .parquet, .jsonl, or hf:ID[:config])"
            )
        if path.is_dir():
            rows = _tree(path)
        elif path.suffix == ".parquet":
            rows = _parquet(path, code_column)
        elif path.suffix in (".jsonl", ".json"):
            rows = _jsonl(path, code_column)
        else:
            rows = iter([SourceRow(path.name, path.read_bytes())])
    for count, row in enumerate(rows):
        if limit is not None and count >= limit:
            return
        yield row


def _tree(root: Path) -> Iterator[SourceRow]:
    """Every .py file under root. Symbolic links are never followed (a loop never ends, and a link can point
    outside the folder); each one skipped is reported on stderr, so nothing is dropped silently."""
    found: list[Path] = []
    skipped: list[str] = []
    for folder, dirs, files in os.walk(root, followlinks=False):
        here = Path(folder)
        for name in sorted(dirs):
            if (here / name).is_symlink():
                skipped.append(f"{(here / name).relative_to(root).as_posix()}/ (a symbolic link to a folder)")
        for name in files:
            path = here / name
            if not name.endswith(".py"):
                continue
            if path.is_symlink():
                skipped.append(f"{path.relative_to(root).as_posix()} (a symbolic link)")
            elif path.is_file():
                found.append(path)
    for line in sorted(skipped):
        sys.stderr.write(f"langdec: {root}: skipped {line}; not followed\n")
    for path in sorted(found):
        yield SourceRow(path.relative_to(root).as_posix(), path.read_bytes())


def _pick_column(columns, wanted: str | None, where: str) -> str | None:
    """The code column; None for the-stack-v2's rows, which name a blob (`blob_id`) to fetch instead."""
    if wanted:
        if wanted not in columns:
            raise LangdecError(f"{where}: no column {wanted!r}; columns are {sorted(columns)}")
        return wanted
    for name in CODE_COLUMNS:
        if name in columns:
            return name
    if "blob_id" in columns:
        return None
    raise LangdecError(f"{where}: no code column (looked for {', '.join(CODE_COLUMNS)}); pass --code-column")


# the columns a source row keeps beside its code: what the corpus filters read (the study's licence, star,
# path and generated columns among them) and condition 2's English original
RECORD_COLUMNS = (
    "stars",
    "max_stars_count",
    "star_events_count",
    "star_count",
    "repo_name",
    "max_stars_repo_name",
    "code_en",
    "detected_licenses",
    "gha_license_id",
    "max_stars_repo_licenses",
    "licenses",
    "max_stars_repo_license",
    "is_generated",
    "max_stars_repo_path",
    "path",
    "blob_id",
    "src_encoding",
)


def _from_record(record: dict[str, Any], column: str, number: int, where: str) -> SourceRow:
    path = record.get("file_path") or record.get("path") or record.get("max_stars_repo_path") or f"row-{number}"
    idx = record.get("idx")
    code = record[column] if column is not None and record[column] is not None else ""
    if not isinstance(code, (str, bytes)):
        raise LangdecError(
            f"{where}: column {column!r} holds a {type(code).__name__}, not the file's text; fix the row "
            "or pass --code-column"
        )
    try:
        idx = int(idx) if idx is not None else None
    except (TypeError, ValueError):
        raise LangdecError(f"{where}: idx {idx!r} is not an integer; fix the row or drop the column") from None
    return SourceRow(
        file_path=str(path),
        data=code,
        license=record.get("license") or _first(record.get("licenses") or record.get("max_stars_repo_licenses")),
        idx=idx,
        extra={k: v for k, v in record.items() if k in RECORD_COLUMNS},
    )


def _first(value):
    if isinstance(value, (list, tuple)) and value:
        return str(value[0])
    return value if isinstance(value, str) else None


def _parquet(path: Path, column: str | None) -> Iterator[SourceRow]:
    import pyarrow.parquet as pq

    try:
        handle = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for corrupt files
        raise LangdecError(
            f"{path}: not a readable Parquet file ({exc}); re-export it or pass another source"
        ) from None
    column = _pick_column(handle.schema_arrow.names, column, str(path))
    number = 0
    batches = handle.iter_batches(batch_size=256)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except Exception as exc:  # a corrupt data page surfaces only when its batch is read
            raise LangdecError(
                f"{path}: rows from {number + 1} on cannot be read ({type(exc).__name__}: {str(exc)[:160]}); "
                "the file is damaged: re-export it"
            ) from None
        for record in batch.to_pylist():
            yield _from_record(record, column, number, f"{path}: row {number + 1}")
            number += 1


def _jsonl(path: Path, column: str | None) -> Iterator[SourceRow]:
    with path.open("rb") as handle:
        for number, raw in enumerate(handle):
            where = f"{path}:{number + 1}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise LangdecError(
                    f"{where}: not UTF-8 (byte {exc.start} of the line); re-encode the file as UTF-8"
                ) from None
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise LangdecError(f"{where}: not valid JSON ({exc.msg}); fix or remove the line") from None
            if not isinstance(record, dict):
                raise LangdecError(
                    f"{where}: a row must be a JSON object with a code column, got {type(record).__name__}"
                )
            yield _from_record(record, _pick_column(record, column, where), number, where)


def _hub(spec: str, column: str | None) -> Iterator[SourceRow]:
    import datasets

    name, _, config = spec.partition(":")
    try:
        stream = datasets.load_dataset(name, config or None, split="train", streaming=True)
    except Exception as exc:
        raise LangdecError(
            f"hf:{spec}: cannot open the dataset ({type(exc).__name__}: {str(exc)[:200]}). Offline? "
            "Pre-download it with `huggingface-cli download --repo-type dataset` and set HF_HUB_OFFLINE=1, "
            "or export it to Parquet and pass the file."
        ) from None
    chosen = None
    for number, record in enumerate(stream):
        chosen = chosen or _pick_column(record, column, f"hf:{spec}")
        yield _from_record(record, chosen, number, f"hf:{spec}: row {number + 1}")
