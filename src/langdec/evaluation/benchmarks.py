"""Benchmarks declared as data (experiments/benchmarks/*.yaml) and their loaders.

A benchmark file names its task, label set, languages, hub source and local file format, and
maps a record's fields onto an `Item` (`record:`): the prompt fields, the gold label and how to
read it, the answer options. It also owns its wording per template set (`prompts:`) and its
extractor chains (`extractors:`), and pulls shared parts (its task kind's chains, shared
wording) in with `include:` (`core.includes`). Reading is generic (TSV with or without header,
JSONL, Parquet, hub), and one mapping accepts both the hub's and the original files' schema, so a
new benchmark in a known format is one YAML file (docs/architecture.md, "A new benchmark").
"""

from __future__ import annotations

import csv
import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langdec.core import languages
from langdec.core.errors import LangdecError, did_you_mean
from langdec.core.includes import read_with_includes
from langdec.core.paths import experiments_dir
from langdec.core.schema import build

TASKS = ("classification", "multiple_choice", "numeric")
# how evaluation.max_items cuts a benchmark language: stratified = a seeded sample stratified by gold label, so a
# slice keeps the benchmark's label mix (a file sorted by label, as SIB-200's is, makes its first N rows one
# label); head = the first N rows, as runs were scored before slices were sampled
SLICES = ("stratified", "head")
SLICE_SEED = 42


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
    items: int | None = (
        None  # published rows per language in that split: a short download is flagged, and benchmarks/ sizes the matrix
    )


@dataclass
class RecordMapping:
    """Where an item's parts are in a record. A path is a key, or dotted keys into nested records
    (`question.stem`); a list of paths takes the first that is present."""

    fields: dict[str, list[str]]  # prompt placeholder -> path(s)
    label: list[str]  # path(s) of the gold answer
    # label: a label word or its index in `labels`; letter: a 1-based number -> A, B, ...; text: as written; number: numeric text
    label_kind: str = "label"
    choices: list[str] = field(default_factory=list)  # paths of the options, or one path to a list of them
    choices_field: str = "choices"  # the placeholder the lettered options fill ("A. ...\nB. ...")
    id: str = "{_row}"  # item id: a format string over the record's keys; a missing key gives the row number


@dataclass
class Pair:
    """A cross-lingual variant: `field` of each item comes from the parallel item (same row) in `language`
    (in `fallback` when the item's own language is `language`)."""

    field: str
    language: str = "en"
    fallback: str = "zh"


@dataclass
class Translated:
    """A machine-translated variant: the items of `source_language`, their `fields` translated into each
    language by the profile's condition-5 translation backend (evaluation.machine_translation)."""

    source_language: str = "en"
    fields: list[str] = field(default_factory=lambda: ["text"])


@dataclass
class Benchmark:
    name: str
    task: str = ""
    labels: list[str] = field(default_factory=list)
    languages: list[str] = field(default_factory=list)
    hub: HubSource | None = None
    local: LocalSource | None = None
    record: RecordMapping | None = None
    # a variant of another benchmark: its items, prompts, extractor chains and answer words are that one's
    like: str | None = None
    pair: Pair | None = None
    translate: Translated | None = None
    # template set -> {source: where the wording comes from, template -> instruction language -> text}
    prompts: dict[str, dict[str, dict[str, str] | str]] = field(default_factory=dict)
    extractors: dict[str, list[str]] = field(default_factory=dict)  # extractor name -> its chain of steps
    path: Path | None = None

    @property
    def family(self) -> str:
        return self.like or self.name

    def templates(self, set_name: str) -> dict[str, dict[str, str]]:
        """template -> instruction language -> text of one template set's wording ({} if the set has none)."""
        return {name: by_lang for name, by_lang in self.prompts.get(set_name, {}).items() if isinstance(by_lang, dict)}

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
    variants = []
    for path in sorted(benchmarks_dir().glob("*.yaml")):
        bench = build(Benchmark, read_with_includes(path), str(path))
        bench.path = path
        if bench.like:
            if bench.prompts or bench.extractors:
                raise LangdecError(
                    f"{path}: a variant (like: {bench.like}) uses its family's prompts and extractor chains; "
                    "remove its `prompts:` and `extractors:`"
                )
            variants.append(bench)
            continue
        _check(bench)
        out[bench.name] = bench
    for variant in variants:
        base = out.get(variant.like)
        if base is None:
            raise did_you_mean(f"{variant.path}: like: benchmark", str(variant.like), out)
        languages_ = [languages.normalise(l) for l in variant.languages] or base.languages
        out[variant.name] = Benchmark(
            variant.name,
            base.task,
            list(base.labels),
            languages_,
            base.hub,
            base.local,
            base.record,
            like=base.name,
            pair=variant.pair,
            translate=variant.translate,
            path=variant.path,
        )
    return out


def _check(bench: Benchmark) -> None:
    """A family's declaration is complete and its names are known; its languages and prompts normalised."""
    path = bench.path
    if bench.hub is None or bench.local is None or bench.record is None:
        raise LangdecError(f"{path}: a benchmark needs hub, local and record (or `like:` another benchmark)")
    if bench.task not in TASKS:
        raise LangdecError(
            f"{path}: task {bench.task!r}; valid tasks: {', '.join(TASKS)} (or include shared/<task>.yaml)"
        )
    if bench.name != path.stem:
        raise LangdecError(f"{path}: name {bench.name!r} must match the file name")
    if bench.record.label_kind not in LABEL_KINDS:
        raise did_you_mean("label_kind", bench.record.label_kind, LABEL_KINDS)
    bench.languages = [languages.normalise(l) for l in bench.languages]
    bench.prompts = {set_name: _wording(path, set_name, wording) for set_name, wording in bench.prompts.items()}


def _wording(path: Path, set_name: str, wording: dict[str, dict[str, str] | str]) -> dict[str, dict[str, str] | str]:
    """One template set's wording of a benchmark: a `source:` line, then template -> instruction language -> text."""
    if not isinstance(wording.get("source"), str):
        raise LangdecError(f"{path}: prompts.{set_name} needs `source:`, a line naming where its wording comes from")
    out: dict[str, dict[str, str] | str] = {"source": wording["source"]}
    for template, by_lang in wording.items():
        if template == "source":
            continue
        if not isinstance(by_lang, dict) or not by_lang:
            raise LangdecError(f"{path}: prompts.{set_name}.{template} must map instruction languages to text")
        out[template] = {languages.normalise(lang): text for lang, text in by_lang.items()}
    if len(out) == 1:
        raise LangdecError(f"{path}: prompts.{set_name} has no template (give e.g. `template1: {{en: ...}}`)")
    return out


def family(name: str) -> str:
    """The benchmark whose prompts, extractor chains and answer words a benchmark uses (itself, or the one it is like)."""
    return get(name).family


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
            raise LangdecError(
                f"{path}:{number}: expected {len(header)} tab-separated columns ({', '.join(header)}), got {len(row)}"
            )
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

        warnings.warn(
            f"{bench.name} ({lang}): {bench.hub.id} {config}/{bench.hub.split} has {len(rows)} rows, the published "
            f"split has {bench.hub.items}; scores are not comparable with the study's until that is explained "
            f"(another dataset revision?)",
            stacklevel=2,
        )
    return rows


def load(
    name: str,
    lang: str,
    *,
    source: str = "fixtures",
    limit: int | None = None,
    slice: str = "stratified",
    seed: int = SLICE_SEED,
) -> list[Item]:
    """Items of one benchmark in one language from `fixtures`, `hub`, or a file/folder path; with `limit`, the
    slice of that many that `slice` and `seed` pick (`slice_items`)."""
    bench = get(name)
    if bench.translate:
        raise LangdecError(
            f"{name} is machine-translated: its items come from evaluation.machine_translation.items, "
            "which needs the profile's translation backend"
        )
    if bench.like:
        items = (
            _paired(bench, languages.normalise(lang), source) if bench.pair else load(bench.like, lang, source=source)
        )
        return slice_items(items, limit, slice=slice, seed=seed, stratify=bench.task != "numeric")
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
            raise LangdecError(
                f"{name}/{lang}: no file at {path} (expected {bench.local.format} laid out as {bench.local.path})"
            )
        fmt = {".parquet": "parquet", ".jsonl": "jsonl"}.get(path.suffix, bench.local.format)
        records = _READERS[fmt](path, bench.local)
        where = str(path)
    items = []
    for number, record in enumerate(records):
        try:
            items.append(to_item(bench, record, number))
        except (KeyError, ValueError, IndexError, TypeError) as exc:
            raise LangdecError(
                f"{where}: record {number + 1}: cannot read {bench.name} fields ({type(exc).__name__}: {exc})"
            ) from None
    return slice_items(items, limit, slice=slice, seed=seed, stratify=bench.task != "numeric")


# --------------------------------------------------------------------------- slices (evaluation.max_items)
def slice_items(
    items: list[Item], limit: int | None, *, slice: str = "stratified", seed: int = SLICE_SEED, stratify: bool = True
) -> list[Item]:
    """At most `limit` of `items`, kept in file order. stratified: each gold label gets its share of `limit`
    (`allocate`), and within a label the items ranked first by a keyed hash of (seed, item id) are taken, so
    the same seed draws the same ids from every run and from every language whose rows share ids (the same
    items in every cell of an experiment); `stratify=False` (numeric answers, nearly one label per item)
    draws from all items as one stratum. head: the first `limit` rows."""
    if slice not in SLICES:
        raise did_you_mean("evaluation.slice", slice, SLICES)
    if not limit or limit >= len(items):
        return list(items)
    if slice == "head":
        return items[:limit]
    strata: dict[str, list[int]] = {}
    for index, item in enumerate(items):
        strata.setdefault(item.label if stratify else "", []).append(index)
    quota = allocate({label: len(rows) for label, rows in strata.items()}, limit, seed=seed)
    chosen: list[int] = []
    for label, rows in strata.items():
        chosen += sorted(rows, key=lambda i: (_rank(seed, items[i].id), i))[: quota[label]]
    return [items[i] for i in sorted(chosen)]


def allocate(counts: dict[str, int], n: int, *, seed: int = SLICE_SEED) -> dict[str, int]:
    """`n` shared among labels in proportion to their counts by largest remainders (Hamilton), every label at
    least one when `n` is at least the number of labels (taken back from the labels furthest above their
    share). Ties go to the larger label, then by a keyed hash of the label, never by its name."""
    from fractions import Fraction

    total = sum(counts.values())
    if n >= total:
        return dict(counts)
    share = {label: Fraction(n * count, total) for label, count in counts.items()}
    out = {label: int(q) for label, q in share.items()}
    if n >= len(counts):
        out = {label: max(1, k) for label, k in out.items()}

    def tie(label: str) -> tuple:
        return (-counts[label], _rank(seed, f"label:{label}"))

    while sum(out.values()) > n:  # the floor of one overshot: the label most above its share gives one back
        label = min((l for l in out if out[l] > 1), key=lambda l: (share[l] - out[l], *tie(l)))
        out[label] -= 1
    while sum(out.values()) < n:  # the largest remainder gets the next item
        label = min((l for l in out if out[l] < counts[l]), key=lambda l: (out[l] - share[l], *tie(l)))
        out[label] += 1
    return out


def _rank(seed: int, key: str) -> bytes:
    import hashlib

    return hashlib.sha256(f"{seed}\0{key}".encode()).digest()


def describe_slice(limit: int | None, slice: str, seed: int) -> str:
    """The slice as a run records it (param `slice`): full, head, or stratified:seed=N."""
    return "full" if not limit else "head" if slice == "head" else f"stratified:seed={seed}"


def parse_slice(recorded: str | None) -> tuple[str, int]:
    """(slice, seed) from a run's `slice` param; a run from before the param took the first rows (head)."""
    if not recorded or recorded in ("full", "head"):
        return "head", SLICE_SEED
    method, _, seed = recorded.partition(":seed=")
    return method, int(seed) if seed.lstrip("-").isdigit() else SLICE_SEED


def slice_record(items: dict[tuple[str, str], list[Item]], described: str) -> dict[str, Any]:
    """What a sliced run keeps of its items: per benchmark and data language the ids and label counts, and one
    digest over them all (two runs with the same digest were scored on the same items)."""
    import hashlib

    cells = {
        f"{bench}/{data}": {"ids": [item.id for item in its], "labels": label_distribution(its)}
        for (bench, data), its in sorted(items.items())
    }
    text = "\n".join(f"{cell}\t{item_id}" for cell, body in cells.items() for item_id in body["ids"])
    return {"slice": described, "digest": hashlib.sha256(text.encode()).hexdigest()[:16], "cells": cells}


# --------------------------------------------------------------------------- records -> items
def _at(record: dict, paths: list[str]) -> Any:
    for path in paths:
        value: Any = record
        for key in path.split("."):
            if not isinstance(value, dict) or key not in value:
                break
            value = value[key]
        else:
            return value
    raise KeyError(" or ".join(paths))


def _letters(options: list[str]) -> str:
    return "\n".join(f"{chr(65 + i)}. {text}" for i, text in enumerate(options))


def _choices(record: dict, paths: list[str]) -> list[str]:
    if len(paths) > 1:
        return [str(_at(record, [p])) for p in paths]
    found = _at(record, paths)
    if isinstance(found, dict):  # the hub's columnar {"label": [...], "text": [...]}
        return [str(t) for t in found["text"]]
    if found and isinstance(found[0], dict):  # the original files' [{"label": "A", "text": ...}, ...]
        return [str(c["text"]) for c in sorted(found, key=lambda c: c["label"])]
    return [str(t) for t in found]


def _label_word(bench: Benchmark, value: Any) -> str:
    label = bench.labels[int(value)] if isinstance(value, int) or str(value).isdigit() else str(value).strip()
    if label not in bench.labels:
        raise ValueError(f"label {label!r} not in {bench.labels}")
    return label


def _number(bench: Benchmark, value: Any) -> str:
    answer = str(value).replace(",", "").strip()
    float(answer)  # validates
    return answer[:-2] if answer.endswith(".0") else answer


LABEL_KINDS: dict[str, Callable[[Benchmark, Any], str]] = {
    "label": _label_word,
    "letter": lambda bench, value: chr(64 + int(value)),
    "text": lambda bench, value: str(value).strip(),
    "number": _number,
}


class _RowDefault(dict):
    def __init__(self, record: dict, row: int) -> None:
        super().__init__(record)
        self.row = row

    def __missing__(self, key: str) -> Any:
        return self.row


def to_item(bench: Benchmark, record: dict, row: int) -> Item:
    """One record as an item, by the benchmark's `record` mapping."""
    m = bench.record
    fields = {name: str(_at(record, paths)) for name, paths in m.fields.items()}
    options = list(bench.labels)
    if m.choices:
        texts = _choices(record, m.choices)
        fields[m.choices_field] = _letters(texts)
        options = options[: len(texts)]
    label = LABEL_KINDS[m.label_kind](bench, _at(record, m.label))
    return Item(m.id.format_map(_RowDefault({**record, "_row": row}, row)), fields, label, options)


def _paired(bench: Benchmark, lang: str, source: str) -> list[Item]:
    """Each item with `pair.field` taken from the parallel item in the other language; the rows must be parallel
    (same count, same gold label row by row), as XNLI's are. Paired whole, so a slice is taken of the pairs."""
    pair = bench.pair
    other = pair.language if lang != pair.language else pair.fallback
    own, theirs = load(bench.like, lang, source=source), load(bench.like, other, source=source)
    if len(own) != len(theirs):
        raise LangdecError(
            f"{bench.name}: {bench.like} has {len(own)} items in {lang} but {len(theirs)} in {other}; "
            "a mixed pair needs parallel rows"
        )
    out = []
    for number, (mine, parallel) in enumerate(zip(own, theirs)):
        if mine.label != parallel.label:
            raise LangdecError(
                f"{bench.name}: row {number + 1} is {mine.label!r} in {lang} but {parallel.label!r} in {other}; "
                "the rows are not parallel"
            )
        out.append(Item(mine.id, {**mine.fields, pair.field: parallel.fields[pair.field]}, mine.label, mine.options))
    return out


def label_distribution(items: list[Item]) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        out[item.label] = out.get(item.label, 0) + 1
    return dict(sorted(out.items()))
