"""Saved views of the MLflow UI's run list, declared in experiments/views.yaml.

MLflow's UI opens an experiment on whatever the browser last used (a fresh one: the GenAI view and its
assistant), with three default columns, nested runs folded under their ladder run and a run-name column
too narrow for `cond5-ur-5k-s42-eval`. Its saved views fix all of that per experiment: the UI lists every
experiment tag `mlflow.sharedViewState.<id>` in its "Views" menu and applies one from the URL parameter
`viewStateShareKey=<id>`. The tag holds an envelope {name, createdAt, updatedAt, state} whose `state` is
the JSON of the run list's search facets (searchFilter, orderByKey, ...) and UI state (selectedColumns,
columnOrder, columnWidths, groupBy, ...), in the layout of MLflow 3's front end (`mlflow/server/js`,
saved-views envelope and `ExperimentPageUIState`). A shared view carries no per-run state (which runs are
unfolded, pinned or hidden): the UI drops it, so views sort by run name, where the UI lists runs flat.

A view's columns can name metric prefixes (`metric:summary.*`), so a view is rebuilt from the runs the
experiment holds whenever it is published: by `langdec ui`, and after every ladder and report."""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from langdec.core.errors import LangdecError
from langdec.core.paths import experiments_dir
from langdec.core.schema import build, read_yaml

TAG_PREFIX = "mlflow.sharedViewState."
RUN_NAME_COLUMN = "attributes.`Run Name`"  # the grid's column ids, as the page's DOM names them
CREATED_COLUMN = "runDateAndNestInfo"
# a column id and a sort key are `<entity>.\`<key>\``, the entity as the search syntax names it
_GROUPS = {"tag": "tags", "param": "params", "metric": "metrics", "attribute": "attributes"}


@dataclass(frozen=True)
class View:
    name: str  # shown in the UI's Views menu
    about: str = ""
    filter: str = ""
    columns: list[str] = field(default_factory=list)
    group_by: list[str] = field(default_factory=list)
    # by run name: the UI then lists runs flat (it folds them under their parent only when sorting by date)
    order_by: str = "tag:mlflow.runName"
    ascending: bool = True
    name_width: int = 340
    id: str = ""  # the key in views.yaml: the tag suffix and the URL's viewStateShareKey


def views_file() -> Path:
    return experiments_dir() / "views.yaml"


def _kind_and_key(entry: str, where: str) -> tuple[str, str]:
    kind, sep, key = entry.partition(":")
    if not sep or kind not in _GROUPS or not key:
        raise LangdecError(f"{where}: {entry!r} is not KIND:NAME with KIND one of {', '.join(_GROUPS)}")
    return kind, key


def load(path: Path | None = None) -> list[View]:
    path = path or views_file()
    data = read_yaml(path)
    if set(data) != {"views"} or not isinstance(data["views"], dict):
        raise LangdecError(f"{path}: expected one key, views: a mapping of view id to view")
    out = []
    for view_id, body in data["views"].items():
        where = f"{path}: views.{view_id}"
        if not str(view_id).replace("-", "").replace("_", "").isalnum():
            raise LangdecError(f"{where}: a view id is letters, digits, - and _ (it goes in a URL and a tag key)")
        if isinstance(body, dict) and "id" in body:
            raise LangdecError(f"{where}: the view's id is its key; remove id:")
        view = dataclasses.replace(build(View, body, where), id=str(view_id))
        for entry in (*view.columns, view.order_by):
            _kind_and_key(entry, where)
        out.append(view)
    return out


def _column(kind: str, key: str) -> str:
    return f"{_GROUPS[kind]}.`{key}`"


def columns(view: View, runs: list) -> dict[str, str]:
    """The view's column ids and their names, a `prefix*` entry expanded over the names the runs carry (sorted)."""
    seen = {"tag": set(), "param": set(), "metric": set(), "attribute": set()}  # attributes are named, never globbed
    for run in runs:
        seen["tag"].update(run.data.tags)
        seen["param"].update(run.data.params)
        seen["metric"].update(run.data.metrics)
    out: dict[str, str] = {}
    for entry in view.columns:
        kind, key = _kind_and_key(entry, view.id)
        for name in sorted(n for n in seen[kind] if fnmatch.fnmatchcase(n, key)) if "*" in key else [key]:
            out.setdefault(_column(kind, name), name)
    return out


def state(view: View, runs: list) -> dict:
    """The run list's state for this view over these runs, as MLflow's UI stores a saved view."""
    selected = columns(view, runs)
    kind, key = _kind_and_key(view.order_by, view.id)
    out: dict = {
        "searchFilter": view.filter,
        "orderByKey": _column(kind, key) if kind != "attribute" else f"attributes.{key}",
        "orderByAsc": view.ascending,
        "selectedColumns": list(selected),
        # widths apply to the columns the order names: the run name, its date and nesting, then the view's columns
        "columnOrder": [RUN_NAME_COLUMN, CREATED_COLUMN, *selected],
        # wide enough for each header (the grid's default cuts summary.belebele.en.refined to summary.beleb...)
        "columnWidths": {
            RUN_NAME_COLUMN: view.name_width,
            CREATED_COLUMN: 130,
            **{c: max(80, min(260, 24 + 7 * len(name))) for c, name in selected.items()},
        },
        "runsHiddenMode": "SHOW_ALL",
        "groupBy": {
            "aggregateFunction": "average",
            "groupByKeys": [{"mode": "tag", "groupByData": t} for t in view.group_by],
        }
        if view.group_by
        else None,
        "groupsExpanded": {},
    }
    return out


def envelope(view: View, runs: list, created_ms: int | None = None) -> str:
    now = int(time.time() * 1000)
    return json.dumps(
        {
            "name": view.name,
            "createdAt": created_ms or now,
            "updatedAt": now,
            "state": json.dumps(state(view, runs), separators=(",", ":")),
        },
        separators=(",", ":"),
    )


def url(base: str, experiment_id: str, view_id: str | None = None) -> str:
    """The run list in MLflow's model-training view (workflowType: a fresh browser starts in GenAI mode), in a
    saved view when one is named."""
    link = f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?workflowType=machine_learning"
    return link + (f"&viewStateShareKey={quote(view_id)}" if view_id else "")


def publish(experiment_id: str, views: list[View] | None = None) -> dict[str, str]:
    """Write every view on the experiment (rebuilt from its runs now); returns view id -> name."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    views = load() if views is None else views
    runs = client.search_runs([experiment_id], max_results=5000)
    existing = client.get_experiment(experiment_id).tags
    out = {}
    for view in views:
        created = None
        try:
            created = json.loads(existing.get(TAG_PREFIX + view.id, "{}")).get("createdAt")
        except ValueError:
            pass
        client.set_experiment_tag(experiment_id, TAG_PREFIX + view.id, envelope(view, runs, created))
        out[view.id] = view.name
    return out


def publish_quietly(experiment_name: str) -> None:
    """After a ladder or report: refresh the views, never failing the stage for them (a read-only store, an
    older server that refuses long tags, a views.yaml with a mistake, which `langdec ui` then refuses)."""
    from mlflow.exceptions import MlflowException

    from langdec.tracking import runs as tracking

    try:
        publish(tracking.experiment_id(experiment_name))
    except (MlflowException, OSError, LangdecError) as exc:
        print(f"note: the MLflow UI views of {experiment_name} were not refreshed ({str(exc).splitlines()[0][:160]})")
