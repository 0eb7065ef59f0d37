"""Per-item records: every generation of an evaluation run as one columnar table, labelled once.

An evaluation run (langdec's own or an imported result file) carries `items.parquet`: one row per
generation with its cell (template, benchmark, data and instruction language), its place in the run
(`cell_order`, the cell's position among the run's cells; `position`, the row's position in its cell),
the item id, gold label, raw output and, per extractor, the label it read (`pred.<name>`, null = no
answer), whether that is the gold (`correct.<name>`) and the rule that read it (`rule.<name>`). The
extractor versions that wrote those columns are in the file's metadata. Labels are computed here, at
evaluate, import or reparse time, and read back by every report: a report never runs an extractor.

Extraction is a pure function of (benchmark, output), so each distinct answer is read once per run.

Runs written before this file existed carry `generations.jsonl`; `load` labels them once with the
current extractors and stores the table in the run (saying so), so every run reads the same way.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable
from urllib.parse import unquote, urlparse

from .errors import LangdecError

if TYPE_CHECKING:
    import pyarrow as pa

ITEMS = "items.parquet"
LEGACY = "generations.jsonl"  # runs before items.parquet
FORMAT = 1
META = b"langdec.items"
KEYS = ("cell", "template", "benchmark", "data", "instr")
STRINGS = ("cell", "template", "benchmark", "data", "instr", "item_id", "gold", "output", "prompt_hash", "tier", "study_pred")


def pred(name: str) -> str:
    return f"pred.{name}"


def correct(name: str) -> str:
    return f"correct.{name}"


def rule(name: str) -> str:
    return f"rule.{name}"


# --------------------------------------------------------------------------- building a run's table
def table(records: list[dict[str, Any]], extractor_names: Iterable[str]) -> "pa.Table":
    """The labelled table of generation records (dicts with cell, template, benchmark, data, instr, item_id,
    gold, output; optionally tier, prompt_hash, study_pred, cell_order, position). Without `cell_order` a cell's
    place is where the records first name it; without `position` a row's is its place among its cell's records."""
    order: dict[str, int] = {}
    seen: dict[str, int] = {}
    places = []
    for rec in records:
        cell = rec["cell"]
        order.setdefault(cell, len(order))
        seen[cell] = seen.get(cell, -1) + 1
        places.append((order[cell], seen[cell]))
    columns: dict[str, list] = {name: [rec.get(name) for rec in records] for name in STRINGS}
    columns["cell_order"] = [rec.get("cell_order", place[0]) for rec, place in zip(records, places)]
    columns["position"] = [rec.get("position", place[1]) for rec, place in zip(records, places)]
    return from_columns(columns, extractor_names)


def from_columns(columns: dict[str, list], extractor_names: Iterable[str]) -> "pa.Table":
    """The labelled table of generation records given column by column (the names of `table`)."""
    import pyarrow as pa

    n = len(columns["cell"])
    arrays = {}
    for name in STRINGS:
        values = columns.get(name) or [None] * n
        if name != "study_pred":
            values = ["" if v is None else v if isinstance(v, str) else str(v) for v in values]
        arrays[name] = pa.array(values, type=pa.string())
    arrays["cell_order"] = pa.array(columns["cell_order"], type=pa.int32())
    arrays["position"] = pa.array(columns["position"], type=pa.int32())
    return label(pa.table(arrays), extractor_names)


def label(data: "pa.Table", extractor_names: Iterable[str]) -> "pa.Table":
    """`data` with each extractor's pred/correct/rule columns (re)computed, and their versions in its metadata.
    A column of another version already there is kept beside as `<column>@<old version>`."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    from .evaluation import extractors

    names = list(extractor_names)
    versions = versions_of(data)
    benches = data.column("benchmark").to_numpy(zero_copy_only=False).astype(object)
    outputs = data.column("output").to_numpy(zero_copy_only=False).astype(object)
    gold = data.column("gold").to_numpy(zero_copy_only=False).astype(object)
    for name in names:
        ex = extractors.get(name)
        preds = np.empty(len(outputs), dtype=object)
        rules = np.empty(len(outputs), dtype=object)
        for bench in pd.unique(benches):
            rows = np.flatnonzero(benches == bench)
            codes, distinct = pd.factorize(outputs[rows], use_na_sentinel=False)
            read = [ex.trace(bench, text) for text in distinct]
            preds[rows] = np.array([r[0] for r in read], dtype=object)[codes]
            rules[rows] = np.array([r[1] for r in read], dtype=object)[codes]
        hit = np.array([p is not None and p == g for p, g in zip(preds, gold)], dtype=bool)
        old = versions.get(name)
        superseded = old is not None and old != ex.version
        for column in (pred(name), correct(name), rule(name)):
            if column in data.column_names:  # an earlier version's labels stay, renamed; the same version's are redone
                data = (data.rename_columns([f"{c}@{old}" if c == column else c for c in data.column_names]) if superseded
                        else data.remove_column(data.column_names.index(column)))
        data = data.append_column(pred(name), pa.array(preds, type=pa.string()))
        data = data.append_column(correct(name), pa.array(hit, type=pa.bool_()))
        data = data.append_column(rule(name), pa.array(rules, type=pa.string()))
        if superseded:
            versions[f"{name}@{old}"] = old
        versions[name] = ex.version
    meta = dict(data.schema.metadata or {})
    meta[META] = json.dumps({"format": FORMAT, "extractors": versions}).encode()
    return data.replace_schema_metadata(meta)


def versions_of(data: "pa.Table | pa.Schema") -> dict[str, str]:
    schema = data if hasattr(data, "names") and not hasattr(data, "column") else data.schema
    raw = (schema.metadata or {}).get(META)
    return dict(json.loads(raw)["extractors"]) if raw else {}


# --------------------------------------------------------------------------- storing and reading in a run
def log(run_id: str, data: "pa.Table") -> None:
    """Store the table as the run's items.parquet (replacing an earlier one)."""
    import pyarrow.parquet as pq
    from mlflow.tracking import MlflowClient

    with tempfile.TemporaryDirectory(prefix="langdec-items-") as tmp:
        path = Path(tmp) / ITEMS
        pq.write_table(data, path, compression="zstd")
        MlflowClient().log_artifact(run_id, str(path))


def local_artifact(run_id: str, name: str, artifact_uri: str | None = None) -> Path | None:
    """The artifact's path when the run's artifacts are on this machine's disk (read in place, no copy);
    otherwise a downloaded copy; None when the run has no such artifact."""
    import mlflow

    uri = artifact_uri or mlflow.get_run(run_id).info.artifact_uri
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        path = Path(unquote(parsed.path) if parsed.scheme else uri) / name
        return path if path.is_file() else None
    try:
        return Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=name))
    except Exception:
        return None


def schema(run_id: str, artifact_uri: str | None = None) -> "pa.Schema | None":
    """The run's items schema (column names and extractor versions) without reading a row; None for a run
    that has only the older generations.jsonl (or nothing)."""
    import pyarrow.parquet as pq

    path = local_artifact(run_id, ITEMS, artifact_uri)
    return pq.read_schema(path) if path else None


def has_records(run_id: str, artifact_uri: str | None = None) -> bool:
    """Whether the run stored per-item generations at all (items.parquet, or the older generations.jsonl)."""
    return local_artifact(run_id, ITEMS, artifact_uri) is not None or local_artifact(run_id, LEGACY, artifact_uri) is not None


def read(run_id: str, columns: list[str] | None = None, *, artifact_uri: str | None = None,
         migrate: bool = True) -> "pa.Table":
    """The run's items (only `columns`, string keys dictionary-encoded); a run that has only generations.jsonl
    is labelled with every current extractor and stored once (`migrate`)."""
    import pyarrow.parquet as pq

    path = local_artifact(run_id, ITEMS, artifact_uri)
    if path is None:
        if not migrate:
            raise LangdecError(f"run {run_id} has no {ITEMS}")
        migrated(run_id, artifact_uri)
        path = local_artifact(run_id, ITEMS, artifact_uri)
    dictionary = [c for c in ("cell", "template", "benchmark", "data", "instr", "gold", "tier", "item_id")
                  if columns is None or c in columns]
    try:
        return pq.read_table(path, columns=columns, read_dictionary=dictionary)
    except (OSError, ValueError) as exc:
        raise LangdecError(f"run {run_id}: {ITEMS} cannot be read ({type(exc).__name__}: {str(exc)[:160]}); "
                           f"re-score it with `langdec reparse {run_id} --extractor refined`") from None


def migrated(run_id: str, artifact_uri: str | None = None) -> "pa.Table":
    """Label an older run's generations.jsonl once and store it as items.parquet in the run."""
    from .evaluation import extractors
    from .locks import hold

    with hold(f"items-{run_id}", f"labelling run {run_id}'s items"):
        if local_artifact(run_id, ITEMS, artifact_uri):  # another process did it while we waited
            return read(run_id, artifact_uri=artifact_uri, migrate=False)
        path = local_artifact(run_id, LEGACY, artifact_uri)
        if path is None:
            raise LangdecError(f"run {run_id} has no {ITEMS} and no {LEGACY}; it cannot be scored without re-running "
                               "the model (langdec evaluate with the same arguments)")
        try:
            records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise LangdecError(f"run {run_id}: {LEGACY} is damaged ({exc}); re-run its evaluation") from None
        data = table(records, sorted(extractors.extractors()))
        log(run_id, data)
        print(f"note: run {run_id}: its {LEGACY} was labelled by every extractor once and stored as {ITEMS}", file=sys.stderr)
        return data
