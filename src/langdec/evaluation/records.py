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
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from langdec.core.errors import LangdecError

if TYPE_CHECKING:
    import pyarrow as pa

ITEMS = "items.parquet"
LEGACY = "generations.jsonl"  # runs before items.parquet
FORMAT = 1
META = b"langdec.items"
KEYS = ("cell", "template", "benchmark", "data", "instr")
STRINGS = (
    "cell",
    "template",
    "benchmark",
    "data",
    "instr",
    "item_id",
    "gold",
    "output",
    "prompt_hash",
    "tier",
    "study_pred",
)


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

    from langdec.evaluation import extractors

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
                data = (
                    data.rename_columns([f"{c}@{old}" if c == column else c for c in data.column_names])
                    if superseded
                    else data.remove_column(data.column_names.index(column))
                )
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
    """{extractor: version} from the table's `langdec.items` metadata ({} when it has none); damaged metadata is
    a LangdecError (`metadata_damage` says how)."""
    schema = data if hasattr(data, "names") and not hasattr(data, "column") else data.schema
    raw = (schema.metadata or {}).get(META)
    if not raw:
        return {}
    problem = metadata_damage(raw)
    if problem:
        raise LangdecError(f"{ITEMS}: {problem}")
    return dict(json.loads(raw)["extractors"])


def metadata_damage(raw: bytes) -> str | None:
    """What is wrong with a `langdec.items` metadata value, or None: it is a JSON object whose `extractors` maps
    each extractor's name to its version."""
    try:
        meta = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return f"its {META.decode()} metadata is not JSON"
    if not isinstance(meta, dict) or not isinstance(meta.get("extractors"), dict):
        return f"its {META.decode()} metadata is {type(meta).__name__}, not an object with an `extractors` object"
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in meta["extractors"].items()):
        return f"its {META.decode()} metadata names extractor versions that are not strings"
    return None


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
    return (
        local_artifact(run_id, ITEMS, artifact_uri) is not None
        or local_artifact(run_id, LEGACY, artifact_uri) is not None
    )


def read(
    run_id: str, columns: list[str] | None = None, *, artifact_uri: str | None = None, migrate: bool = True
) -> "pa.Table":
    """The run's items (only `columns`, string keys dictionary-encoded); a run that has only generations.jsonl
    is labelled with every current extractor and stored once (`migrate`)."""
    import pyarrow.parquet as pq

    path = local_artifact(run_id, ITEMS, artifact_uri)
    if path is None:
        if not migrate:
            raise LangdecError(f"run {run_id} has no {ITEMS}")
        migrated(run_id, artifact_uri)
        path = local_artifact(run_id, ITEMS, artifact_uri)
    problem = file_damage(path, columns)  # a damaged file is named with what rebuilds it, never a traceback
    if problem:
        ref = RunRef.lookup(run_id)
        raise refusal(ref, problem, rebuild(ref))
    dictionary = [
        c
        for c in ("cell", "template", "benchmark", "data", "instr", "gold", "tier", "item_id")
        if columns is None or c in columns
    ]
    try:
        return pq.read_table(path, columns=columns, read_dictionary=dictionary)
    except (OSError, ValueError) as exc:  # pages damaged past the footer
        ref = RunRef.lookup(run_id)
        raise refusal(ref, f"cannot be read ({type(exc).__name__}: {str(exc)[:120]})", rebuild(ref)) from None


def migrated(run_id: str, artifact_uri: str | None = None) -> "pa.Table":
    """Label an older run's generations.jsonl once and store it as items.parquet in the run."""
    from langdec.core.locks import hold
    from langdec.evaluation import extractors

    with hold(f"items-{run_id}", f"labelling run {run_id}'s items"):
        if local_artifact(run_id, ITEMS, artifact_uri):  # another process did it while we waited
            return read(run_id, artifact_uri=artifact_uri, migrate=False)
        path = local_artifact(run_id, LEGACY, artifact_uri)
        if path is None:
            raise LangdecError(
                f"run {run_id} has no {ITEMS} and no {LEGACY}; it cannot be scored without re-running "
                "the model (langdec evaluate with the same arguments)"
            )
        try:
            records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise LangdecError(f"run {run_id}: {LEGACY} is damaged ({exc}); re-run its evaluation") from None
        data = table(records, sorted(extractors.extractors()))
        log(run_id, data)
        print(
            f"note: run {run_id}: its {LEGACY} was labelled by every extractor once and stored as {ITEMS}",
            file=sys.stderr,
        )
        return data


# --------------------------------------------------------------------------- the one checked reader (report, study-tables)
# Every reader of labels goes through these checks, so a damaged or mislabelled file is refused the same way in
# every command: one line naming the run and what rebuilds it. Labels are rebuilt by `langdec reparse` from the
# file's own outputs; a file whose rows, keys or metadata are damaged is rebuilt from the run's source instead
# (its results file, or the model), since reparse would read the same damaged file.
BASE_TYPES = {**{name: "string" for name in STRINGS}, "cell_order": "integer", "position": "integer"}
REQUIRED = (*KEYS, "item_id", "gold", "output")  # what every reader needs, whatever else it reads


@dataclass(frozen=True)
class RunRef:
    """An evaluation run as its records' readers name it: id, name, where its artifacts are, and the tags that
    say what rebuilds it."""

    run_id: str
    name: str
    artifact_uri: str
    experiment: str = ""
    tags: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def of(cls, run: Any, experiment: str = "") -> "RunRef":
        tags = dict(run.data.tags)
        return cls(
            run.info.run_id, run.info.run_name or tags.get("run_name", ""), run.info.artifact_uri, experiment, tags
        )

    @classmethod
    def lookup(cls, run_id: str) -> "RunRef":
        """The run by its id (only to name it in an error: a store that cannot say gives the id alone)."""
        from mlflow.tracking import MlflowClient

        try:
            run = MlflowClient().get_run(run_id)
            experiment = MlflowClient().get_experiment(run.info.experiment_id).name
        except Exception:
            return cls(run_id, "", "")
        return cls.of(run, experiment)

    def named(self) -> str:
        return (
            f"run {self.run_id}"
            + (f" ({self.name})" if self.name else "")
            + (f" in {self.experiment}" if self.experiment else "")
        )


def refusal(ref: RunRef, problem: str, fix: str) -> LangdecError:
    return LangdecError(f"{ref.named()}: its {ITEMS} {problem}; {fix}")


def relabel(ref: RunRef, extractor: str) -> str:
    """The command that rebuilds one extractor's labels from the run's stored outputs."""
    return f"rebuild its labels with `langdec reparse {ref.run_id} --extractor {extractor}`"


def rebuild(ref: RunRef) -> str:
    """What rebuilds a run's items from its source, not from its items.parquet (reparse reads that file): the run is
    deleted, so that importing or evaluating again does not reuse it, then made again."""
    delete = f"`mlflow runs delete --run-id {ref.run_id}`"
    tags = ref.tags
    if tags.get("origin") == "imported":
        source = tags.get("source") or "SRC"
        again = f"`langdec import-results {source}" + (f" --experiment {ref.experiment}`" if ref.experiment else "`")
        return f"rebuild it from its results file: delete the run ({delete}), then {again}"
    if tags.get("origin") == "published":
        again = f"`langdec evaluate --adapter {tags.get('published_source') or 'ADAPTER'}` with the same options"
    else:
        flags = " ".join(
            f"--{key} {tags[key]}" for key in ("condition", "lang", "tier", "seed", "profile", "phase") if tags.get(key)
        )
        again = f"`langdec evaluate {flags}`" + (" with the same --set options" if tags.get("arm") else "")
    return f"rebuild it by evaluating again: delete the run ({delete}), then {again}"


def _kind(arrow_type: Any) -> str:
    import pyarrow as pa

    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "string"
    if pa.types.is_boolean(arrow_type):
        return "boolean"
    if pa.types.is_integer(arrow_type):
        return "integer"
    if pa.types.is_null(arrow_type):
        return "null"
    return str(arrow_type)


def file_damage(path: Path, columns: Iterable[str] | None = None) -> str | None:
    """What makes the file unreadable as a run's items, or None: a file that does not open as Parquet, damaged
    `langdec.items` metadata, or a row column (keys, ids, outputs; the labels are `label_damage`'s) missing or of
    another type. `columns`: the columns a reader wants (None: all it has)."""
    schema = read_schema(path)
    return schema if isinstance(schema, str) else schema_damage(schema, columns)


def read_schema(path: Path) -> "pa.Schema | str":
    """The file's schema, or what keeps it from being read (a truncated file, or not Parquet at all)."""
    import pyarrow.parquet as pq

    try:
        return pq.read_schema(path)
    except (OSError, ValueError) as exc:  # ArrowInvalid is a ValueError
        return f"cannot be read ({type(exc).__name__}: {str(exc)[:120]})"


def schema_damage(schema: "pa.Schema", columns: Iterable[str] | None = None) -> str | None:
    """`file_damage` of a schema already read."""
    raw = (schema.metadata or {}).get(META)
    if raw is None:
        return f"has no {META.decode()} metadata (the versions of the extractors that labelled it)"
    problem = metadata_damage(raw)
    if problem:
        return problem
    wanted = [c for c in (schema.names if columns is None else columns) if c in BASE_TYPES]
    for name in dict.fromkeys([*REQUIRED, *wanted]):
        if name not in schema.names:
            if name in REQUIRED or columns is not None:
                return f"has no column {name!r} (its columns: {', '.join(schema.names[:12])})"
            continue
        found = _kind(schema.field(name).type)
        if found != BASE_TYPES[name] and not (found == "null" and name == "study_pred"):
            return f"has column {name!r} of type {schema.field(name).type}, not {BASE_TYPES[name]}"
    return None


def label_damage(schema: "pa.Schema", extractor: str) -> str | None:
    """What is wrong with one extractor's labels in an items schema, or None: its version is recorded, and its
    pred/rule columns are strings and its correct column boolean."""
    expected = {pred(extractor): "string", correct(extractor): "boolean", rule(extractor): "string"}
    if extractor not in versions_of(schema):
        return f"carries no labels of extractor {extractor!r}"
    for name, kind in expected.items():
        if name not in schema.names:
            return f"has no column {name!r}"
        found = _kind(schema.field(name).type)
        if found != kind and not (found == "null" and kind == "string"):
            return f"has column {name!r} of type {schema.field(name).type}, not {kind}"
    return None


@dataclass
class Checked:
    """Runs whose records a report may read, with the one version of each extractor they all carry."""

    runs: list[RunRef]
    versions: dict[str, str]
    without: list[RunRef]  # never stored per-item records (before records existed, or code benchmarks only)


def lost(ref: RunRef) -> bool:
    """A run that stored its items (its scores name the extractors that labelled them) and has them no more."""
    return any(k.startswith("langdec.extractor.") for k in ref.tags)


def check(refs: Iterable[RunRef], extractor_names: Iterable[str], *, experiment: str = "") -> Checked:
    """Every run's items checked before any row is read: readable, every extractor in `extractor_names` labelled
    with the right column types, and by one version of it across the runs (labels of two versions are not
    comparable). A run that lost its records is refused: a report without them would look like an empty one."""
    from langdec.evaluation import extractors

    names = list(extractor_names)
    refs = list(refs)
    with_records, without, gone = [], [], []
    for ref in refs:
        if has_records(ref.run_id, ref.artifact_uri):
            with_records.append(ref)
        else:
            (gone if lost(ref) else without).append(ref)
    if gone:
        raise _lost_records(gone, len(refs), experiment)
    seen: dict[str, dict[str, list[RunRef]]] = {name: {} for name in names}
    for ref in with_records:
        path = local_artifact(ref.run_id, ITEMS, ref.artifact_uri)
        if path is None:  # only the older generations.jsonl: labelled by the current extractors when read
            versions = {name: extractors.get(name).version for name in names}
        else:
            versions = _label_versions(ref, path, names)
        for name in names:
            seen[name].setdefault(versions[name], []).append(ref)
    return Checked(with_records, _one_version_each(seen, experiment), without)


def _lost_records(gone: list[RunRef], total: int, experiment: str) -> LangdecError:
    first = gone[0]
    return LangdecError(
        f"{len(gone)} of {total} evaluation runs"
        + (f" in {experiment}" if experiment else "")
        + f" lost their per-item records ({ITEMS} is gone from their artifacts), e.g. {first.named()}"
        + f"; {rebuild(first)}"
        + (
            f" (and the same for {', '.join(r.run_id for r in gone[1:4])}" + (", ..." if len(gone) > 4 else "") + ")"
            if len(gone) > 1
            else ""
        )
    )


def _label_versions(ref: RunRef, path: Path, names: list[str]) -> dict[str, str]:
    """{extractor: version} of the labels in the run's items file, refused when the file or a label is damaged."""
    schema = read_schema(path)
    problem = schema if isinstance(schema, str) else schema_damage(schema)
    if problem:
        raise refusal(ref, problem, rebuild(ref))
    for name in names:
        problem = label_damage(schema, name)
        if problem:
            raise refusal(ref, problem, relabel(ref, name))
    return versions_of(schema)


def _one_version_each(seen: dict[str, dict[str, list[RunRef]]], experiment: str) -> dict[str, str]:
    """{extractor: the one version its labels carry across the runs}; refused when the runs carry several."""
    out = {}
    for name, by_version in seen.items():
        if len(by_version) > 1:
            listed = ", ".join(
                f"{v} ({len(r)} runs, e.g. {min(r, key=lambda ref: ref.run_id).run_id} "
                f"({min(r, key=lambda ref: ref.run_id).name}))"
                for v, r in sorted(by_version.items())
            )
            raise LangdecError(
                f"the runs carry labels of different versions of extractor {name!r}: {listed}; re-label them all "
                f"with `langdec reparse --experiment {experiment or 'EXPERIMENT'} --extractor {name}`"
            )
        if by_version:
            out[name] = next(iter(by_version))
    return out


def read_checked(ref: RunRef, columns: list[str]) -> "pa.Table":
    """A checked run's items (`check` first): only `columns`, and a boolean label with a missing value refused."""
    data = read(ref.run_id, columns, artifact_uri=ref.artifact_uri)
    for name in data.column_names:
        if name.startswith("correct.") and data.column(name).null_count:
            raise refusal(
                ref, f"has {data.column(name).null_count} empty values in {name!r}", relabel(ref, name.split(".", 1)[1])
            )
    return data
