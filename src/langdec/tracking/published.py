"""The study's published artifacts, read as langdec's own: result files and adapter folders.

Layouts (the study's scripts write them; hub ids stay the real ones):

* results, `legesher/language-decoded-experiments`:
  `phase3/conditions/<condition>/seed<N>|seednone/<condition>_seed<N>_results_template<k>.json`, each a
  JSON object of cells `template<k>_<bench>_data=<d>_instr=<i>` -> rows with `raw_output`, `gold`, `pred`,
  plus `summary` and `parse_failure_rates`; `_summary_` (the inference-time extractor) and
  `_summary_reparsed_` (the refined one) siblings carry `<cell>_acc` values.
* adapters, `legesher/language-decoded-lora`: `tiny-aya-base/condition-2-zh-5k-seed42/` (phase 3),
  `condition-2-zh-5k/` (phase 2), with suffixes such as `-native-code` or `-c4ai-aya-expanse-32b`.

`import_results` turns every canonical result file into one finished evaluation run (stage `evaluate`,
so `langdec reparse` and `langdec report` treat it like langdec's own), with every raw output as a
per-item record and the study's published cells beside langdec's re-scoring of them.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langdec.core.config import condition as get_condition
from langdec.core.digests import files_sha256
from langdec.core.errors import LangdecError

if TYPE_CHECKING:
    import pandas as pd

    from langdec.evaluation.matrix import Cell

RESULTS_REPO = "legesher/language-decoded-experiments"
ADAPTERS_REPO = "legesher/language-decoded-lora"
RESULTS_ROOT = "phase3/conditions"
IMPORT_EXPERIMENT = "imported-phase-3"

# ASCII classes and \Z throughout: `\d` takes a full-width digit and `$` a trailing newline, either of which made a
# folder or cell the study never wrote import as one more condition, seed or template
CELL = re.compile(
    r"^(?P<template>template[0-9]+)_(?P<bench>[a-z0-9]+)_data=(?P<data>[a-z]{2})_instr=(?P<instr>[a-z]{2})\Z"
)
CONDITION = re.compile(
    r"^condition-(?P<cond>[0-9]+)-(?P<lang>[a-z]{2})-(?P<tier>[1-9][0-9]*k)(?:-(?P<suffix>[a-z0-9-]+?))??"
    r"(?:-seed(?P<seed>[0-9]+))?\Z"
)
RESULTS_CONDITION = re.compile(r"^condition-(?P<cond>[0-9]+)-(?P<lang>[a-z]{2})-(?P<tier>[1-9][0-9]*k)\Z")
# the conditions the study evaluated (its results repository's folders); condition 4 has no data yet, and langdec's
# own condition-2 languages beyond the study's three are no session of its
STUDY_CONDITIONS = {"1": ("en",), "2": ("zh", "es", "ur"), "3": ("zh",), "5": ("zh", "es", "ur")}
STUDY_CONDITION_NAMES = (
    "baseline, condition-1-en-<tier>, condition-2-{zh,es,ur}-<tier>, condition-3-zh-<tier>, "
    "condition-5-{zh,es,ur}-<tier> (tier 5k, 20k, ...)"
)
BENCHMARK_NAMES = {"csqa": "xcsqa"}  # the study's name -> langdec's
STRAY_TAG = "langdec.stray"  # "true" on a stray file's run: read only by the study's per-item breakdowns (study-tables)


def is_stray(tags: dict[str, str]) -> bool:
    """Whether a run is an imported stray file (STRAY_TAG): never one of a session's parts."""
    return tags.get(STRAY_TAG) == "true"


@dataclass(frozen=True)
class StudyCondition:
    condition: str  # baseline | 1 | 2 | 3 | 5
    lang: str  # en for baseline and condition 1
    tier: str  # "" for the baseline
    seed: str | None = None
    suffix: str = ""

    @property
    def tags(self) -> dict[str, str]:
        return {
            "condition": self.condition,
            "lang": "" if self.condition in ("baseline", "1") else self.lang,
            "tier": self.tier,
        }


def parse_condition(name: str) -> StudyCondition:
    """`baseline`, `condition-2-zh-5k`, `condition-5-ur-5k-c4ai-aya-expanse-32b-seed42`, ... (adapter folders too)"""
    if name == "baseline":
        return StudyCondition("baseline", "en", "")
    found = CONDITION.match(name)
    if not found:
        raise LangdecError(
            f"{name!r} is not one of the study's condition names (baseline, condition-<n>-<lang>-<tier>[-suffix]"
            "[-seed<N>], e.g. condition-2-zh-5k-seed42)"
        )
    return StudyCondition(found["cond"], found["lang"], found["tier"], found["seed"], found["suffix"] or "")


def results_condition(name: str, where: Path | None = None) -> StudyCondition:
    """A condition folder of the study's results (`phase3/conditions/<name>/`): `baseline` or one of its conditions as
    `condition-<n>-<lang>-<tier>`, ASCII, no suffix or seed (the seed is the folder below). Anything else would import as
    a condition, or a session, the study never ran."""
    found = RESULTS_CONDITION.match(name)
    if name == "baseline":
        return StudyCondition("baseline", "en", "")
    if found is None or found["lang"] not in STUDY_CONDITIONS.get(found["cond"], ()):
        place = f"{where}: " if where is not None else ""
        adapter = CONDITION.match(name)
        hint = (
            f" (an adapter folder's name: a result's seed or variant is no part of its condition folder, e.g. "
            f"condition-{adapter['cond']}-{adapter['lang']}-{adapter['tier']}/seed{adapter['seed'] or 'N'}/)"
            if adapter and (adapter["seed"] or adapter["suffix"])
            else ""
        )
        raise LangdecError(
            f"{place}condition folder {name!r} is not one the study evaluated{hint}; its folders are "
            f"{STUDY_CONDITION_NAMES}, each holding seed<N>/ (or seednone/ for the baseline); rename or remove it"
        )
    return StudyCondition(found["cond"], found["lang"], found["tier"])


def stem(condition: str, lang: str | None, tier: str, translation_model: str = "") -> str:
    """The study's name for a condition's data config and adapter folder (`Condition.published_stem`)."""
    return get_condition(condition).published_stem(lang, tier, translation_model)


# --------------------------------------------------------------------------- locating the files
def local_copy(src: str, repo: str, patterns: list[str]) -> Path:
    """A local folder for `hf:REPO[:SUBFOLDER]` (downloaded once into the hub cache) or a folder path."""
    if not src.startswith("hf:"):
        path = Path(src)
        if not path.exists():
            raise LangdecError(f"{path}: no such folder; give a local copy laid out like {repo}, or hf:{repo}")
        return path
    repo_id, _, sub = src[3:].partition(":")
    parts = [p for p in sub.split("/") if p]
    if sub.startswith("/") or any(p in ("..", ".") for p in parts) or "\\" in sub:
        raise LangdecError(
            f"{src}: the folder after the repository must be a path inside it (no leading /, no . or ..)"
        )
    from huggingface_hub import snapshot_download

    try:
        root = Path(
            snapshot_download(
                repo_id=repo_id,
                repo_type="dataset" if repo_id == RESULTS_REPO else None,
                allow_patterns=[f"{sub.rstrip('/')}/*" if sub else p for p in patterns],
            )
        )
    except Exception as exc:
        kind = " --repo-type dataset" if repo_id == RESULTS_REPO else ""
        raise LangdecError(
            f"hf:{repo_id}: cannot download ({type(exc).__name__}: {str(exc)[:160]}). Offline? Pre-download with "
            f"`huggingface-cli download {repo_id}{kind} --local-dir DIR` (add --include to take part of it) and pass DIR, "
            "or set HF_HUB_OFFLINE=1 with a filled hub cache"
        ) from None
    return root / sub if sub else root


SEED_FOLDER = re.compile(r"^seed(?:none|[1-9][0-9]*|0)\Z")
NAME_SEED = re.compile(r"_seed([A-Za-z0-9]+)_results_")
NAME_TEMPLATE = re.compile(r"_results_(template[1-9][0-9]*)\.json\Z")
STUDY_READS = "_results_template"  # the study's per-item scripts take every such .json under phase3/conditions/


@dataclass
class Session:
    condition: str
    seed_folder: str  # seed42 | seednone
    canonical: list[Path] = field(default_factory=list)  # <condition>_<seed folder>_results_template<k>.json
    # a *_results_template*.json named for another seed (or otherwise not this folder's): the study's per-item
    # breakdown scripts count it under this folder's seed, so it is kept, flagged, for those alone
    stray: list[Path] = field(default_factory=list)
    other: list[Path] = field(default_factory=list)  # *_results_*.json no script of the study reads: listed, skipped
    links: list[Path] = field(default_factory=list)  # symbolic links: reported, never followed
    blobs: Path | None = None  # a hub cache's blob folder, whose links are the hub's own files


@dataclass
class Scan:
    sessions: list[Session]
    skipped: list[str]  # linked condition or seed folders, and why


def shown(name: str) -> str:
    """A file or folder name as one line shows it: quoted when it holds a newline or another unprintable character."""
    return name if name.isprintable() else repr(name)


def _hub_blobs(folder: Path) -> Path | None:
    """The blob folder of the hub cache `folder` lies in (snapshot files are links into it), or None."""
    for parent in folder.parents:
        if parent.name == "snapshots":
            return (parent.parent / "blobs").resolve()
    return None


def _hub_file(path: Path, blobs: Path | None) -> bool:
    """A hub cache's own link (snapshots/<rev>/... -> blobs/<hash>) to a file: read like the file it names."""
    return blobs is not None and path.is_symlink() and path.resolve().is_relative_to(blobs) and path.resolve().is_file()


def scan(root: Path, blobs: Path | None = None) -> Scan:
    """Every `<condition>/<seed folder>/` under the results root, its result files sorted into canonical ones, strays,
    files no script reads and links. Names are checked here, before anything is imported: a condition folder the
    study did not evaluate, or a seed folder other than seed<N> / seednone (`seed042`, `seed42\\n`: a copy would
    count as another seed), is refused; a linked folder is listed as skipped (links are never followed)."""
    for part in (root / "phase3", root / RESULTS_ROOT):
        if part.is_symlink():
            raise LangdecError(
                f"{part}: a symbolic link; links are never followed: give the folder itself (or a copy of it)"
            )
    base = root / RESULTS_ROOT if (root / RESULTS_ROOT).is_dir() else root
    if not base.is_dir() or not any(p.is_dir() for p in base.iterdir()):
        raise LangdecError(
            f"{root}: no {RESULTS_ROOT}/<condition>/<seed>/ folders; expected the layout of {RESULTS_REPO}"
        )
    out, skipped = [], []
    link = "a symbolic link; links are never followed (copy the folder in to import it)"
    for cond_dir in sorted(base.iterdir()):
        if cond_dir.is_symlink():
            skipped.append(f"{shown(cond_dir.name)}: {link}")
            continue
        if not cond_dir.is_dir():
            continue
        study = results_condition(cond_dir.name, base)
        for seed_dir in sorted(cond_dir.iterdir()):
            where = f"{cond_dir.name}/{shown(seed_dir.name)}"
            if seed_dir.is_symlink():
                skipped.append(f"{where}: {link}")
                continue
            if not seed_dir.is_dir():
                continue
            if not SEED_FOLDER.match(seed_dir.name):
                raise LangdecError(
                    f"{cond_dir}: seed folder {seed_dir.name!r}: a seed folder is seed<N> (no leading zero) or "
                    "seednone; rename or remove it (another name would count its files as one more seed)"
                )
            if (study.condition == "baseline") != (seed_dir.name == "seednone"):
                raise LangdecError(
                    f"{cond_dir}: seed folder {seed_dir.name!r}: the baseline's one session is seednone/, a "
                    "trained condition's are seed<N>/; move or remove it"
                )
            out.append(_session(cond_dir.name, seed_dir, blobs))
    return Scan(out, skipped)


def _session(condition: str, seed_dir: Path, blobs: Path | None) -> Session:
    session = Session(condition, seed_dir.name, blobs=blobs)
    canonical = re.compile(rf"{re.escape(condition)}_{re.escape(seed_dir.name)}_results_template[1-9][0-9]*\.json\Z")
    for path in sorted(seed_dir.glob("*_results_*.json")):
        if path.is_symlink() and not _hub_file(path, blobs):
            session.links.append(path)
        elif not path.is_file():
            raise LangdecError(
                f"{seed_dir}/{shown(path.name)}: not a file (a results file is one JSON file); remove or rename it"
            )
        elif canonical.match(path.name):
            session.canonical.append(path)
        elif STUDY_READS in path.name:
            session.stray.append(path)
        else:
            session.other.append(path)
    return session


def sibling(results: Path, kind: str) -> Path:
    """`X_results_template1.json` -> `X_summary_template1.json` (kind `summary`) or `X_summary_reparsed_...`."""
    return results.with_name(results.name.replace("_results_", f"_{kind}_", 1))


# --------------------------------------------------------------------------- one result file -> records
@dataclass(frozen=True)
class CellShape:
    """What every cell of one benchmark and data language shares: its row count and gold labels in order."""

    key: str  # the study's cell name
    bench: str
    data: str
    n: int
    golds: str  # a digest of the gold labels in row order


# the per-item columns `items.from_columns` takes, in the order records list them; tier and prompt_hash come last
ITEM_COLUMNS = (
    "cell",
    "template",
    "benchmark",
    "data",
    "instr",
    "item_id",
    "gold",
    "output",
    "study_pred",
    "cell_order",
    "position",
)


def columns_of(
    data: dict[str, Any], path: Path, tier: str, template: str | None = None
) -> tuple[dict[str, list], list[CellShape]]:
    """langdec's per-item generation records from one results file, column by column (`items.from_columns`), and each
    cell's shape; item ids are row positions (every cell of a benchmark and data language lists the same dataset rows
    in the same order), cells keep the file's order (`cell_order`). With `template`, every cell must be that
    template's: a file named template1 holding template2's cells would count one template twice and lose the other."""
    columns: dict[str, list] = {name: [] for name in ITEM_COLUMNS}
    if not isinstance(data, dict):
        raise LangdecError(
            f"{path}: a results file is a JSON object of cells, this one is a {type(data).__name__}; re-download it"
        )
    shapes: list[CellShape] = []
    path = path.parent / shown(path.name)  # as messages show it: one line
    for key, rows in data.items():
        if key in ("summary", "parse_failure_rates"):
            continue
        cell = _result_cell(path, key, rows, template)
        _check_rows(path, key, rows)
        shapes.append(_add_cell(columns, key, cell, rows, cell_order=len(shapes)))
    n = len(columns["cell"])
    if not n:
        raise LangdecError(
            f"{path}: no cell with rows (expected template<k>_<benchmark>_data=<d>_instr=<i> lists); "
            "an empty results file would import as a finished run of 0 items"
        )
    columns["tier"], columns["prompt_hash"] = [tier] * n, [""] * n
    return columns, shapes


def _result_cell(path: Path, key: str, rows: object, template: str | None) -> Cell:
    """The langdec cell a results file's `key` names, once its name, template, row list and languages are checked."""
    from langdec.evaluation import benchmarks
    from langdec.evaluation.matrix import Cell

    found = CELL.match(key)
    if not found:
        raise LangdecError(f"{path}: cell {key!r} is not template<k>_<benchmark>_data=<d>_instr=<i>")
    if template is not None and found["template"] != template:
        raise LangdecError(
            f"{path}: cell {key} is {found['template']}'s in a file named for {template}; a results file holds "
            "one template's cells (this one would count a template twice and lose the other): re-download it"
        )
    if not isinstance(rows, list):
        raise LangdecError(
            f"{path}: cell {key} holds a {type(rows).__name__}, not a list of rows; re-download the file"
        )
    bench = BENCHMARK_NAMES.get(found["bench"], found["bench"])
    known = benchmarks.get(bench)  # an unknown benchmark fails here, listing langdec's
    for side in ("data", "instr"):
        if found[side] not in known.languages:
            raise LangdecError(
                f"{path}: cell {key}: {bench} has no {side} language {found[side]!r} (it has "
                f"{', '.join(known.languages)})"
            )
    return Cell(found["template"], bench, found["data"], found["instr"])


def _check_rows(path: Path, key: str, rows: list) -> None:
    """Every row of a cell is an object with a label for `gold` and text (or null) for `raw_output`."""
    for number, row in enumerate(rows):
        if not isinstance(row, dict) or "raw_output" not in row or "gold" not in row:
            raise LangdecError(f"{path}: {key} row {number + 1} has no raw_output/gold; is this a _results_ file?")
        if (
            not isinstance(row["gold"], (str, int))
            or isinstance(row["gold"], bool)
            or not isinstance(row["raw_output"], (str, type(None)))
        ):
            raise LangdecError(
                f"{path}: {key} row {number + 1}: gold must be a label and raw_output text, got "
                f"{type(row['gold']).__name__} and {type(row['raw_output']).__name__}"
            )


def _add_cell(columns: dict[str, list], key: str, cell: Cell, rows: list[dict], cell_order: int) -> CellShape:
    """Append one checked cell's rows to `columns`; its shape, for `Shapes.check`."""
    n = len(rows)
    golds = [str(row["gold"]) for row in rows]
    for name, value in (
        ("cell", cell.name),
        ("template", cell.template),
        ("benchmark", cell.benchmark),
        ("data", cell.data),
        ("instr", cell.instr),
        ("cell_order", cell_order),
    ):
        columns[name] += [value] * n
    columns["item_id"] += [str(number) for number in range(n)]
    columns["position"] += range(n)
    columns["gold"] += golds
    columns["output"] += [str(row["raw_output"] or "") for row in rows]
    columns["study_pred"] += [None if row.get("pred") is None else str(row["pred"]) for row in rows]
    return CellShape(key, cell.benchmark, cell.data, n, hashlib.sha256("\x1f".join(golds).encode()).hexdigest())


class Shapes:
    """Across one import, the cells of a benchmark and data language list the same items in the same order (item ids
    are row positions, so runs are paired by them): a cell whose rows were repeated, cut or reordered is refused."""

    def __init__(self) -> None:
        self.first: dict[tuple[str, str], tuple[CellShape, str]] = {}

    def check(self, path: Path, shapes: list[CellShape]) -> None:
        for shape in shapes:
            first, where = self.first.setdefault((shape.bench, shape.data), (shape, f"{shown(path.name)}"))
            what = f"{shown(path.name)}: cell {shape.key}"
            if shape.n != first.n:
                raise LangdecError(
                    f"{path.parent}/{what} has {shape.n} rows where {where} cell {first.key} has {first.n}; every "
                    f"{shape.bench} data={shape.data} cell lists the same items (rows repeated or cut?): re-download it"
                )
            if shape.golds != first.golds:
                raise LangdecError(
                    f"{path.parent}/{what}: its gold labels are not in the order of {where} cell {first.key}; every "
                    f"{shape.bench} data={shape.data} cell lists the same items in the same order: re-download it"
                )


def _published_cells(path: Path, prefix: str, blobs: Path | None = None) -> dict[str, float]:
    """`published.<extractor>.<cell>.acc|unparsed` from a summary sibling, if there is one."""
    if not path.exists():
        return {}
    from langdec.evaluation.matrix import Cell

    if (path.is_symlink() and not _hub_file(path, blobs)) or not path.is_file():
        raise LangdecError(
            f"{path}: not a plain file (links are never followed); replace it with the summary file itself"
        )
    from langdec.core.jsonfile import loads

    body = loads(_read(path), where=path, what="summary file")  # nesting too deep is one line too
    summary = body.get("summary") if isinstance(body, dict) else None
    rates = body.get("parse_failure_rates", {}) if isinstance(body, dict) else None
    if not isinstance(summary, dict) or not isinstance(rates, dict):
        raise LangdecError(
            f"{path}: a summary file is a JSON object with `summary` and `parse_failure_rates` objects; re-download it"
        )

    def number(key: str, value) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise LangdecError(f"{path}: {key} is {value!r}, not a rate between 0 and 1; re-download the file")
        return float(value)

    out: dict[str, float] = {}
    for key, value in summary.items():
        found = CELL.match(key.removesuffix("_acc")) if key.endswith("_acc") else None
        if found:
            cell = Cell(
                found["template"], BENCHMARK_NAMES.get(found["bench"], found["bench"]), found["data"], found["instr"]
            )
            out[f"{prefix}.{cell.name}.acc"] = number(key, value)
            rate = rates.get(key.removesuffix("_acc"))
            if rate is not None:
                out[f"{prefix}.{cell.name}.unparsed"] = number(key.removesuffix("_acc"), rate)
    return out


@dataclass
class Imported:
    run_id: str
    reused: bool
    source: str
    cells: int
    items: int
    strict_cells_equal: int | None  # langdec's strict vs the study's _summary_ cells
    refined_cells_equal: int | None  # langdec's refined vs the study's _summary_reparsed_ cells
    published_cells: int
    stray: bool = False  # kept for the study's per-item breakdowns alone (STRAY_TAG)
    note: str = ""  # for a stray: where it lies and how it is counted


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise LangdecError(
            f"{path.parent}/{shown(path.name)}: cannot be read ({exc.strerror}); check the file"
        ) from None


def import_file(
    path: Path,
    session: Session,
    experiment: str,
    source: str,
    raw: bytes | None = None,
    *,
    stray: bool = False,
    shapes: Shapes | None = None,
) -> Imported:
    """One results file as one finished evaluation run. A canonical file's cells must be its name's template and, with
    `shapes`, list the items every other cell of their benchmark and data language lists; a stray is kept as the study's
    per-item scripts read it (its cells as they are, under its folder's seed), tagged STRAY_TAG."""
    import mlflow

    from langdec.evaluation import extractors
    from langdec.evaluation.stage import EVAL_STAGE
    from langdec.tracking import lease

    raw = _read(path) if raw is None else raw
    digest = hashlib.sha256(raw).hexdigest()
    from langdec.core.jsonfile import loads

    data = loads(raw, where=f"{path.parent}/{shown(path.name)}", what="results file")  # nesting too deep: one line too
    study = results_condition(session.condition)
    named = NAME_TEMPLATE.search(path.name)
    template = named[1] if named else ""
    columns, cell_shapes = columns_of(data, path, study.tier, None if stray else template)
    if shapes is not None:
        shapes.check(path, cell_shapes)
    names = sorted(extractors.extractors())  # a bad extractor config is refused before any run is written
    run_name, params, tags = _run_keys(path, session, study, template, digest, source)
    note = ""
    if stray:
        run_name, note = _as_stray(path, session, params, tags)
    tags["run_name"] = run_name
    with lease.stage_run(experiment, EVAL_STAGE, run_name, params=params, tags=tags, data_digest=digest) as run:
        if run.reused:
            metrics = mlflow.get_run(run.run_id).data.metrics
        else:
            metrics = _score_and_log(run.run_id, path, columns, names, session.blobs)
    return Imported(
        run.run_id,
        run.reused,
        path.name,
        len(set(columns["cell"])),
        len(columns["cell"]),
        _agreement(metrics, "strict"),
        _agreement(metrics, "refined"),
        sum(k.startswith("published.") and k.endswith(".acc") for k in metrics),
        stray,
        note,
    )


def _run_keys(
    path: Path, session: Session, study: StudyCondition, template: str, digest: str, source: str
) -> tuple[str, dict[str, str], dict[str, str]]:
    """A file's run name, params and tags as a canonical file has them (`_as_stray` flags a stray's; the run name is
    tagged last, once it is final)."""
    seed = session.seed_folder.removeprefix("seed")
    tags = {
        **study.tags,
        "seed": seed,
        "phase": "phase-3",
        "origin": "imported",
        "study_condition": session.condition,
        "langdec.part": template,
        "source_file": path.name,
        "source_sha256": digest,
        "source": source,
    }
    params = {
        "source_file": path.name,
        "source_sha256": digest,
        "condition": study.condition,
        "seed": seed,
        "template": template,
    }
    return f"{session.condition}-{session.seed_folder}-{template}", params, tags


def _as_stray(path: Path, session: Session, params: dict[str, str], tags: dict[str, str]) -> tuple[str, str]:
    """Flag a stray file's params and tags in place (STRAY_TAG, the seed its name gives); its run name, and the note
    on where it lies and how it is counted."""
    name_seed = NAME_SEED.search(path.name)
    tags.update(
        {
            STRAY_TAG: "true",
            "langdec.stray_seed": name_seed[1] if name_seed else "",
            "langdec.part": f"stray:{path.name}",
        }
    )
    params["stray"] = "true"
    run_name = f"{session.condition}-{session.seed_folder}-stray-{shown(path.stem)}"
    return run_name, (
        f"{session.condition}/{session.seed_folder}/{shown(path.name)}: kept as a stray of {session.seed_folder} (its name is "
        f"not {session.condition}_{session.seed_folder}_results_template<k>.json); only the study's per-item breakdowns "
        "count it, under this folder's seed, as its scripts do (study-tables writes them without it in langdec/ too)"
    )


def _score_and_log(
    run_id: str, path: Path, columns: dict[str, list], names: list[str], blobs: Path | None
) -> dict[str, float]:
    """Score a file's records with extractors `names`, add the study's published cells beside them and log it all."""
    from langdec.evaluation import records as items
    from langdec.evaluation.stage import log_scored, score_items, summary_metrics

    labelled = items.from_columns(columns, names)
    metrics, rows = score_items(labelled, names)
    metrics.update(summary_metrics(metrics))
    for kind, prefix in (("summary", "published.strict"), ("summary_reparsed", "published.refined")):
        metrics.update(_published_cells(sibling(path, kind), prefix, blobs))
    metrics["eval.items"] = float(len(columns["cell"]))
    log_scored(run_id, metrics, labelled, rows, names, sorted(set(columns["benchmark"])))
    return metrics


def _agreement(metrics: dict[str, float], extractor: str) -> int | None:
    published = {
        k.removeprefix(f"published.{extractor}."): v
        for k, v in metrics.items()
        if k.startswith(f"published.{extractor}.") and k.endswith(".acc")
    }
    if not published:
        return None
    return sum(abs(metrics.get(f"gen.{extractor}.{k}", -1.0) - v) < 1e-9 for k, v in published.items())


def import_results(src: str, experiment: str = IMPORT_EXPERIMENT) -> tuple[list[Imported], list[str]]:
    """Import every canonical results file, and every stray flagged as one; returns what was imported and what was
    skipped (with why). All or nothing: folder names are checked before any file is read, and a file refused later
    takes back the runs this import had written before it (runs of an earlier import stay), so a refused import
    leaves the store as it found it and importing again after the fix is complete."""
    root = local_copy(src, RESULTS_REPO, [f"{RESULTS_ROOT}/**"])
    found = scan(root, _hub_blobs(root) if src.startswith("hf:") else None)  # every folder name checked first
    imported: list[Imported] = []
    skipped = list(found.skipped)
    first_of: dict[str, str] = {}  # content digest -> where it was seen first: a copy is not another session
    shapes = Shapes()
    try:
        for session in found.sessions:
            where = f"{session.condition}/{session.seed_folder}"
            for other in session.other:
                skipped.append(
                    f"{where}/{shown(other.name)}: not a results file the study's scripts read "
                    f"({session.condition}_{session.seed_folder}_results_template<k>.json, or another seed's)"
                )
            for link in session.links:
                skipped.append(
                    f"{where}/{shown(link.name)}: a symbolic link; links are reported, never followed (copy the file in)"
                )
            for path in session.canonical:
                raw = _read(path)
                digest = hashlib.sha256(raw).hexdigest()
                if digest in first_of:
                    skipped.append(
                        f"{where}/{path.name}: the same bytes as {first_of[digest]}; a copy is not another session"
                    )
                    continue
                first_of[digest] = f"{where}/{path.name}"
                imported.append(import_file(path, session, experiment, src, raw, shapes=shapes))
            for path in session.stray:
                imported.append(import_file(path, session, experiment, src, stray=True))
    except BaseException as exc:
        kept = _take_back([i.run_id for i in imported if not i.reused])
        if type(exc) is LangdecError:
            raise LangdecError(f"{exc} (nothing of this import was kept{kept})") from None
        raise
    return imported, skipped


def _take_back(run_ids: list[str]) -> str:
    """Delete the runs a refused import had written; '' or what could not be deleted, for the message."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    left = []
    for run_id in run_ids:
        try:
            MlflowClient().delete_run(run_id)
        except MlflowException:
            left.append(run_id)
    return f"; delete runs {', '.join(left)} by hand" if left else ""


# --------------------------------------------------------------------------- adapters
@dataclass(frozen=True)
class PublishedAdapter:
    path: Path  # the local adapter folder (adapter_config.json + weights)
    folder: str  # its published name: tiny-aya-base/condition-2-zh-5k-seed42 or condition-2-zh-5k
    source: str  # hf:REPO:FOLDER or the local path given
    study: StudyCondition
    phase: str
    digest: str  # sha256 over the adapter's files, so an evaluation of the same weights is reused

    def tags(self) -> dict[str, str]:
        return {
            "origin": "published",
            "published_folder": self.folder,
            "published_source": self.source,
            "study_condition": self.folder.rsplit("/", 1)[-1],
            "adapter_sha256": self.digest,
        }


def _check_adapter_folder(path: Path) -> None:
    """An adapter folder langdec will load and register: no link anywhere in it (a link's target would be copied
    into the registered version), a JSON-object adapter_config.json, safetensors weights that open."""
    if not path.is_dir():
        raise LangdecError(
            f"{path}: not a folder; give an adapter folder such as tiny-aya-base/condition-2-zh-5k-seed42"
        )
    links = [p for p in [path, *path.rglob("*")] if p.is_symlink()]
    if links:
        raise LangdecError(
            f"{links[0]}: a symbolic link in the adapter folder; links are never followed (copy the file in)"
        )
    config = path / "adapter_config.json"
    if not config.is_file():
        raise LangdecError(
            f"{path}: no adapter_config.json; give an adapter folder such as tiny-aya-base/condition-2-zh-5k-seed42"
        )
    try:
        body = json.loads(config.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LangdecError(f"{config}: not a JSON file ({exc}); re-download the adapter") from None
    if not isinstance(body, dict) or not isinstance(body.get("peft_type"), str):
        raise LangdecError(f"{config}: a PEFT adapter config is a JSON object with peft_type; re-download the adapter")
    weights = path / "adapter_model.safetensors"
    if not weights.is_file():
        pickled = [p.name for p in path.glob("adapter_model*.bin")]
        raise LangdecError(
            f"{path}: no adapter_model.safetensors"
            + (
                f" (only {', '.join(pickled)}: pickled weights can run code "
                "when loaded, so langdec does not load them; convert them to safetensors)"
                if pickled
                else ""
            )
        )
    try:
        from safetensors import safe_open

        with safe_open(str(weights), framework="numpy") as opened:
            if not list(opened.keys()):
                raise ValueError("no tensors")
    except Exception as exc:
        raise LangdecError(
            f"{weights}: not a readable safetensors file ({type(exc).__name__}: {str(exc)[:120]}); re-download it"
        ) from None


def _digest(folder: Path) -> str:
    return files_sha256(folder, (p for p in folder.rglob("*") if p.is_file()))


def resolve_adapter(spec: str) -> PublishedAdapter:
    """`hf:legesher/language-decoded-lora:tiny-aya-base/condition-2-zh-5k-seed42`, or a local folder in that layout."""
    if spec.startswith("hf:"):
        repo, _, folder = spec[3:].partition(":")
        if not folder:
            raise LangdecError(
                f"{spec}: name the adapter folder, e.g. hf:{ADAPTERS_REPO}:tiny-aya-base/condition-2-zh-5k-seed42"
            )
        path = local_copy(spec, repo, [])
    else:
        path = Path(spec)
        parent = path.parent.name
        folder = (
            f"{parent}/{path.name}"
            if parent
            and not parent.startswith("condition-")
            and path.name.startswith("condition-")
            and parse_condition(path.name).seed
            else path.name
        )
    folder = folder.strip("/")
    _check_adapter_folder(path)
    study = parse_condition(folder.rsplit("/", 1)[-1])
    if study.condition == "baseline":
        raise LangdecError(f"{spec}: the baseline has no adapter")
    # phase 3 folders carry the seed and sit under the base model's name; phase 2's are flat
    phase = "phase-3" if study.seed else "phase-2"
    return PublishedAdapter(path, folder, spec, study, phase, _digest(path))


# --------------------------------------------------------------------------- training data
def data_frames(source: str, config_name: str) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """The study's train and validation rows of one condition config, exactly as published: from the hub
    (`hf:legesher/language-decoded-data`, one config per condition) or a local copy laid out as
    `<folder>/<config>/{train,validation}.parquet`. Returns the frames and where they came from."""
    import pandas as pd

    if source.startswith("hf:"):
        import datasets

        repo = source[3:]
        try:
            frames = [
                datasets.load_dataset(repo, config_name, split=split).to_pandas() for split in ("train", "validation")
            ]
        except Exception as exc:
            raise LangdecError(
                f"{source} ({config_name}): cannot load ({type(exc).__name__}: {str(exc)[:160]}). Offline? Pre-download with "
                f"`huggingface-cli download {repo} --repo-type dataset --local-dir DIR` and set corpus.published=DIR, or set "
                "HF_HUB_OFFLINE=1 with a filled hub cache"
            ) from None
        return frames[0], frames[1], f"{source}:{config_name}"
    folder = Path(source) / config_name
    frames = []
    for split in ("train", "validation"):
        files = sorted(folder.glob(f"{split}.parquet")) or sorted(folder.glob(f"{split}-*.parquet"))
        if not files:
            configs = sorted(p.name for p in Path(source).iterdir() if p.is_dir()) if Path(source).is_dir() else []
            raise LangdecError(
                f"{folder}: no {split}.parquet; configs there: {', '.join(configs) or '(none)'} "
                f"(expected {source}/<config>/train.parquet and validation.parquet)"
            )
        try:
            frames.append(pd.concat([pd.read_parquet(f) for f in files], ignore_index=True))
        except Exception as exc:
            raise LangdecError(
                f"{files[0]}: not a readable Parquet file ({type(exc).__name__}); re-download it"
            ) from None
    return frames[0], frames[1], str(folder)
