"""The study's corpus, reproduced: its filter chain, near-duplicate shingles, sampling, split and idx.

`corpus.filters: study` reads each record's columns as `stream_the_stack.py` did (licences from several
columns, normalised to SPDX; stars from `star_events_count` and its alternatives; `is_generated`), and
filters in its order: licence, parses (AST), line count, stars, generated, defines a function or class
(AST), not a test file. Near-duplicates are MinHash LSH over 5-token shingles of Python's own tokens,
comments and layout left out. `corpus.sampling: study` then takes `create_subset.py`'s subset (the
sorted file paths, `random.Random(seed).sample`, sorted again), splits it with `datasets`'
`train_test_split(test_size, seed)` on the rows sorted by path, and each file's idx is its row number
in the source. The tables (columns, licences, prefixes) are data: `experiments/corpora/study_filters.yaml`."""

from __future__ import annotations

import ast
import functools
import io
import random
import tokenize
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from langdec.core import syntax
from langdec.core.paths import experiments_dir

if TYPE_CHECKING:
    from langdec.core.config import CorpusConfig
    from langdec.data.candidate import Candidate

Step = tuple[str, Callable[["Candidate"], bool]]


@functools.lru_cache(maxsize=1)
def table() -> dict[str, Any]:
    return yaml.safe_load((experiments_dir() / "corpora" / "study_filters.yaml").read_text(encoding="utf-8"))


def _first(record: dict[str, Any], columns: list[str]) -> Any:
    for column in columns:
        if record.get(column) not in (None, ""):
            return record[column]
    return None


def _flatten(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [v for nested in value.values() for v in _flatten(nested)]
    if isinstance(value, (list, tuple, set)):
        return [v for item in value for v in _flatten(item)]
    return [str(value)]


def license_of(record: dict[str, Any]) -> str | None:
    """The first permissive licence among the record's licence columns, as an SPDX id; None if none is."""
    t = table()
    for raw in _flatten(_first(record, t["license_columns"])):
        name = raw.strip().lower()
        if not name or any(p in name for p in t["reject_license_patterns"]):
            continue
        found = t["permissive_licenses"].get(name) or t["permissive_licenses"].get(name.replace("_", "-"))
        if found:
            return found
    return None


def stars_of(record: dict[str, Any]) -> int:
    """Stars from the first star column present; a missing or unreadable count is 0 (then below any minimum)."""
    value = _first(record, table()["star_columns"])
    if isinstance(value, (bool, int, float)):
        return int(value)
    try:
        return int(float(str(value).strip())) if value is not None else 0
    except ValueError:
        return 0


def _tree(code: str) -> ast.AST | None:
    try:
        return syntax.parse(code)
    except (SyntaxError, ValueError):
        return None


def defines_something(code: str) -> bool:
    tree = _tree(code)
    return tree is not None and any(
        isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) for n in ast.walk(tree)
    )


def is_generated(code: str, record: dict[str, Any]) -> bool:
    if bool(_first(record, table()["generated_columns"])):
        return True
    return any(
        line.strip().lower().startswith(tuple(table()["generated_prefixes"])) for line in code.lstrip().splitlines()[:5]
    )


def is_test_file(file_path: str) -> bool:
    path = Path(file_path)
    return path.stem.startswith(tuple(table()["test_file_prefixes"])) or any(
        p in table()["test_folders"] for p in path.parts
    )


def steps(cfg: CorpusConfig) -> list[Step]:
    """The study's filter chain, in its order; each returns True to keep the file."""
    return [
        ("license", lambda c: c.license is not None),
        ("parses", lambda c: _tree(c.code) is not None),
        ("line_range", lambda c: cfg.min_lines <= len(c.code.splitlines()) <= cfg.max_lines),
        ("stars", lambda c: (c.stars or 0) >= cfg.min_stars),
        ("auto_generated", lambda c: not is_generated(c.code, c.extra)),
        ("has_def_or_class", lambda c: defines_something(c.code)),
        ("not_test_file", lambda c: not is_test_file(c.file_path)),
    ]


_SKIPPED = {
    tokenize.ENCODING,
    tokenize.ENDMARKER,
    tokenize.NL,
    tokenize.NEWLINE,
    tokenize.INDENT,
    tokenize.DEDENT,
    tokenize.COMMENT,
}


def code_tokens(code: str) -> list[str]:
    """Python's tokens of the file without comments, newlines or indentation (what the study shingled)."""
    text = code.replace("\r\n", "\n").replace("\r", "\n")
    out: list[str] = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type not in _SKIPPED and tok.string.strip():
                out.append(tok.string.strip())
    except (tokenize.TokenError, SyntaxError, IndentationError):
        pass  # the file parsed (an earlier step), so this is an unfinished last line: keep what was read
    return out


def shingles(code: str, size: int | None = None) -> set[str]:
    size = size or table()["near_duplicates"]["shingle_size"]
    tokens = code_tokens(code)
    if not tokens:
        return set()
    if len(tokens) < size:
        return {" ".join(tokens)}
    return {" ".join(tokens[i : i + size]) for i in range(len(tokens) - size + 1)}


def sample_paths(paths: list[str], size: int, seed: int) -> list[str]:
    """create_subset.py's subset: the sorted paths, `random.Random(seed).sample`, sorted again (all if fewer)."""
    ranked = sorted(paths)
    if size >= len(ranked):
        return ranked
    chosen = random.Random(seed).sample(ranked, size)
    return sorted(chosen)


def validation_idx(idx_by_path: list[tuple[str, int]], seed: int, ratio: float) -> set[int]:
    """create_subset.py's split: the rows sorted by file path, `datasets`' train_test_split(test_size, seed)."""
    from datasets import Dataset

    rows = sorted(idx_by_path)
    if len(rows) < 2:
        return set()
    split = Dataset.from_dict({"idx": [i for _, i in rows]}).train_test_split(test_size=ratio, seed=seed)
    return set(split["test"]["idx"])
