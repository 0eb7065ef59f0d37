"""Benchmarks declared as data (experiments/benchmarks/*.yaml) and their loaders.

A benchmark file names its task, label set, languages, hub source and local
file format. Reading a file is generic (TSV with or without header, JSONL,
Parquet, hub); turning one record into an `Item` is the one small function per
benchmark in `_TO_ITEM`, which accepts both the hub's and the original files' schema.
"""

from __future__ import annotations

import csv
import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from .. import languages
from ..config import build, experiments_dir
from ..errors import LangdecError, did_you_mean

TASKS = ("classification", "multiple_choice", "numeric")


@dataclass
class LocalSource:
    format: str  # tsv | jsonl | parquet
    path: str
    header: bool = True
    columns: list[str] = field(default_factory=list)


@dataclass
class HubSource:
    id: str
    config: str
    split: str
    items: int | None = None  # published rows per language in that split: a short download is flagged, and benchmarks/ sizes the matrix


@dataclass
class Benchmark:
    name: str
    task: str
    labels: list[str]
    languages: list[str]
    hub: HubSource
    local: LocalSource
    path: Path | None = None

    def placeholders(self, lang: str) -> dict[str, str]:
        return {"code": lang, "flores": languages.flores(lang)}


@dataclass
class Item:
    id: str
    fields: dict[str, str]  # what the prompt templates format in
    label: str  # gold: a label word, a letter, or a number as text
    options: list[str]  # closed label set for log-likelihood scoring ([] for numeric)


def benchmarks_dir() -> Path:
    return experiments_dir() / "benchmarks"


def fixtures_dir() -> Path:
    return benchmarks_dir() / "fixtures"


@functools.lru_cache(maxsize=1)
def _all() -> dict[str, Benchmark]:
    out = {}
    for path in sorted(benchmarks_dir().glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        bench = build(Benchmark, data, str(path))
        if bench.task not in TASKS:
            raise LangdecError(f"{path}: task {bench.task!r}; valid tasks: {', '.join(TASKS)}")
        if bench.name != path.stem:
            raise LangdecError(f"{path}: name {bench.name!r} must match the file name")
        bench.languages = [languages.normalise(l) for l in bench.languages]
        bench.path = path
        out[bench.name] = bench
    return out


def benchmark_names() -> list[str]:
    return sorted(_all())


def get(name: str) -> Benchmark:
    found = _all().get(name)
    if found is None:
        raise did_you_mean("benchmark", name, _all())
    return found


# --------------------------------------------------------------------------- readers
def _read_tsv(path: Path, local: LocalSource) -> list[dict[str, Any]]:
    # newline="" keeps csv in charge of CRLF; QUOTE_NONE because these files never quote.
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        rows = [r for r in reader if r]
    if local.header:
        header, rows = rows[0], rows[1:]
    else:
        header = local.columns
    out = []
    for number, row in enumerate(rows, start=2 if local.header else 1):
        if len(row) < len(header):
            raise LangdecError(f"{path}:{number}: expected {len(header)} tab-separated columns ({', '.join(header)}), got {len(row)}")
        out.append(dict(zip(header, row)))
    return out


def _read_jsonl(path: Path, local: LocalSource) -> list[dict[str, Any]]:
    out = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise LangdecError(f"{path}:{number}: invalid JSON ({exc.msg})") from None
    return out


def _read_parquet(path: Path, local: LocalSource) -> list[dict[str, Any]]:
    import pandas as pd

    return pd.read_parquet(path).to_dict("records")


_READERS: dict[str, Callable[[Path, LocalSource], list[dict[str, Any]]]] = {
    "tsv": _read_tsv,
    "jsonl": _read_jsonl,
    "parquet": _read_parquet,
}


def _read_hub(bench: Benchmark, lang: str) -> list[dict[str, Any]]:
    import datasets

    config = bench.hub.config.format(**bench.placeholders(lang))
    try:
        data = datasets.load_dataset(bench.hub.id, config, split=bench.hub.split)
    except Exception as exc:
        raise LangdecError(
            f"{bench.name}: cannot load {bench.hub.id} ({config}, {bench.hub.split}): {type(exc).__name__}: {str(exc)[:200]}. "
            "Offline? Pre-download with `huggingface-cli download --repo-type dataset`, set HF_HUB_OFFLINE=1, "
            "or use the shipped fixtures (evaluation.source=fixtures) or --source PATH."
        ) from None
    rows = list(data)
    if bench.hub.items and len(rows) != bench.hub.items:
        import warnings

        warnings.warn(f"{bench.name} ({lang}): {bench.hub.id} {config}/{bench.hub.split} has {len(rows)} rows, the published "
                      f"split has {bench.hub.items}; scores are not comparable with the study's until that is explained "
                      f"(another dataset revision?)", stacklevel=2)
    return rows


def load(name: str, lang: str, *, source: str = "fixtures", limit: int | None = None) -> list[Item]:
    """Items of one benchmark in one language from `fixtures`, `hub`, or a file/folder path."""
    bench = get(name)
    lang = languages.normalise(lang)
    if lang not in bench.languages:
        raise LangdecError(f"{name} has no language {lang!r}; it has {', '.join(bench.languages)}")
    if source == "hub":
        records = _read_hub(bench, lang)
        where = f"{bench.hub.id}"
    else:
        root = fixtures_dir() if source == "fixtures" else Path(source)
        path = root if root.is_file() else root / bench.local.path.format(**bench.placeholders(lang))
        if not path.exists():
            raise LangdecError(f"{name}/{lang}: no file at {path} (expected {bench.local.format} laid out as {bench.local.path})")
        fmt = {".parquet": "parquet", ".jsonl": "jsonl"}.get(path.suffix, bench.local.format)
        records = _READERS[fmt](path, bench.local)
        where = str(path)
    convert = _TO_ITEM[bench.name]
    items = []
    for number, record in enumerate(records):
        try:
            items.append(convert(bench, record, number))
        except (KeyError, ValueError, IndexError, TypeError) as exc:
            raise LangdecError(f"{where}: record {number + 1}: cannot read {bench.name} fields ({type(exc).__name__}: {exc})") from None
    return items[:limit] if limit else items


# --------------------------------------------------------------------------- one function per benchmark
def _xnli(bench: Benchmark, r: dict, n: int) -> Item:
    label = r["label"]
    label = bench.labels[int(label)] if isinstance(label, int) or str(label).isdigit() else str(label).strip()
    if label not in bench.labels:
        raise ValueError(f"label {label!r} not in {bench.labels}")
    return Item(str(r.get("id", n)), {"premise": r["premise"], "hypothesis": r["hypothesis"]}, label, list(bench.labels))


def _sib200(bench: Benchmark, r: dict, n: int) -> Item:
    label = str(r["category"]).strip()
    if label not in bench.labels:
        raise ValueError(f"category {label!r} not in {bench.labels}")
    return Item(str(r.get("index_id", n)), {"text": r["text"]}, label, list(bench.labels))


def _letters(options: list[str]) -> str:
    return "\n".join(f"{chr(65 + i)}. {text}" for i, text in enumerate(options))


def _belebele(bench: Benchmark, r: dict, n: int) -> Item:
    options = [r[f"mc_answer{k}"] for k in range(1, 5)]
    gold = chr(64 + int(r["correct_answer_num"]))
    item_id = f"{r.get('link', '')}#{r.get('question_number', n)}"
    return Item(item_id, {"passage": r["flores_passage"], "question": r["question"], "choices": _letters(options)}, gold, list(bench.labels))


def _xcsqa(bench: Benchmark, r: dict, n: int) -> Item:
    choices = r["question"]["choices"]
    if isinstance(choices, dict):  # the hub stores {"label": [...], "text": [...]}
        texts = list(choices["text"])
    else:
        texts = [c["text"] for c in sorted(choices, key=lambda c: c["label"])]
    return Item(str(r.get("id", n)), {"question": r["question"]["stem"], "choices": _letters(texts)}, str(r["answerKey"]).strip(), list(bench.labels[: len(texts)]))


def _mgsm(bench: Benchmark, r: dict, n: int) -> Item:
    answer = str(r["answer_number"]).replace(",", "").strip()
    float(answer)  # validates
    answer = answer[:-2] if answer.endswith(".0") else answer
    return Item(str(n), {"question": r["question"]}, answer, [])


_TO_ITEM: dict[str, Callable[[Benchmark, dict, int], Item]] = {
    "xnli": _xnli,
    "sib200": _sib200,
    "belebele": _belebele,
    "xcsqa": _xcsqa,
    "mgsm": _mgsm,
}


def label_distribution(items: list[Item]) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        out[item.label] = out.get(item.label, 0) + 1
    return dict(sorted(out.items()))
