"""MLflow conventions: experiments per phase, run tags, run keys, finding finished runs, metric loggers.

A stage run is identified by a key: sha256 of (stage, params, code version, data
digest). Re-running a stage whose key matches a FINISHED run reuses that run
instead of redoing the work (the MLflow multistep pattern); the lease on a key
(claim, heartbeat, stepping aside) is `tracking.lease`'s.
"""

from __future__ import annotations

import functools
import hashlib
import json
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from langdec import __version__
from langdec.core.paths import default_tracking_uri, project_root

TAG = "langdec"


def configure() -> str:
    import mlflow

    uri = default_tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    _initialised(uri)
    return uri


@functools.lru_cache(maxsize=None)
def _initialised(uri: str) -> None:
    """Create (or migrate) a local SQLite store under a lock: two commands started together on a fresh
    store otherwise race in MLflow's schema migration and can leave it half-migrated."""
    if not uri.startswith("sqlite:"):
        return  # a server or a database migrates once, server-side
    from mlflow.tracking import MlflowClient

    from langdec.core.locks import hold

    with hold(f"store-{uri}", f"the creation of the tracking store {uri}"):
        MlflowClient(tracking_uri=uri, registry_uri=uri).search_experiments(max_results=1)
        MlflowClient(tracking_uri=uri, registry_uri=uri).search_registered_models(max_results=1)


def experiment_name(profile_name: str, phase: str) -> str:
    # Smoke runs get their own experiments so they never mix with the paper's.
    return phase if profile_name == "paper" else f"{phase}-{profile_name}"


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """Git commit of the checkout, with a digest of uncommitted changes to code and configs."""
    root = project_root()
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        diff = subprocess.run(
            ["git", "diff", "HEAD", "--", "src", "experiments", "languages", "data_checks", "registry"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return f"langdec-{__version__}"
    return f"{sha[:12]}+dirty.{hashlib.sha256(diff.encode()).hexdigest()[:8]}" if diff else sha[:12]


def run_key(stage: str, params: dict[str, Any], data_digest: str | None) -> str:
    material = json.dumps(
        {"stage": stage, "params": params, "code": code_version(), "data": data_digest}, sort_keys=True, default=str
    )
    return hashlib.sha256(material.encode()).hexdigest()[:20]


# MLflow 3 opens an experiment in its GenAI view unless told it is model development: langdec's are
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")


def experiment_id(name: str) -> str:
    import mlflow
    from mlflow.exceptions import MlflowException

    exp = mlflow.get_experiment_by_name(name)
    if exp is None:
        try:
            return mlflow.create_experiment(name, tags=dict([EXPERIMENT_KIND]))
        except MlflowException:  # another worker created it between the two calls
            exp = mlflow.get_experiment_by_name(name)
    if exp.tags.get(EXPERIMENT_KIND[0]) is None:  # made by an older langdec, or by hand
        mlflow.MlflowClient().set_experiment_tag(exp.experiment_id, *EXPERIMENT_KIND)
    return exp.experiment_id


def find_finished(experiment: str, stage: str, key: str):
    """The newest FINISHED run of `stage` with this key, or None."""
    from mlflow.tracking import MlflowClient

    runs = MlflowClient().search_runs(
        [experiment_id(experiment)],
        filter_string=f"tags.`{TAG}.stage` = '{stage}' and tags.`{TAG}.run_key` = '{key}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0] if runs else None


def latest_run(experiment: str, stage: str, tags: dict[str, str], statuses: tuple[str, ...] = ("FINISHED",)):
    from mlflow.tracking import MlflowClient

    clauses = [f"tags.`{TAG}.stage` = '{stage}'"] + [f"tags.`{k}` = '{v}'" for k, v in tags.items()]
    runs = MlflowClient().search_runs(
        [experiment_id(experiment)],
        filter_string=" and ".join(clauses),
        order_by=["attributes.start_time DESC"],
        max_results=20,
    )
    for run in runs:
        if run.info.status in statuses:
            return run
    return None


# --------------------------------------------------------------------------- metric loggers
class MetricLogger(Protocol):
    """Where stages send metrics; tests can read them back without a server."""

    def log(self, metrics: dict[str, float], step: int | None = None) -> None: ...


@dataclass
class MlflowMetricLogger:
    run_id: str

    def log(self, metrics: dict[str, float], step: int | None = None) -> None:
        from mlflow.entities import Metric
        from mlflow.tracking import MlflowClient

        now = int(time.time() * 1000)
        batch = [Metric(k, float(v), now, step or 0) for k, v in metrics.items() if v is not None]
        for start in range(0, len(batch), 900):  # MLflow's batch limit is 1000 metrics
            MlflowClient().log_batch(self.run_id, metrics=batch[start : start + 900])


@dataclass
class MemoryMetricLogger:
    history: list[tuple[int | None, dict[str, float]]] = field(default_factory=list)

    def log(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.history.append((step, dict(metrics)))

    def series(self, key: str) -> list[float]:
        return [m[key] for _, m in self.history if key in m]


@dataclass
class TeeMetricLogger:
    loggers: list[MetricLogger]

    def log(self, metrics: dict[str, float], step: int | None = None) -> None:
        for logger in self.loggers:
            logger.log(metrics, step)


def delete_when_terminated(uri: str, run_id: str, *, timeout: float = 300.0, poll: float = 0.5) -> bool:
    """Delete the run once something else marks it terminated (for `mlflow run`'s entry-point run, see
    commands.process.retire_entry_run); True when deleted. Gives up after `timeout` seconds, leaving the run as is."""
    import time

    from mlflow.entities import RunStatus
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = client.get_run(run_id).info
        if info.lifecycle_stage == "deleted":
            return False
        if RunStatus.is_terminated(RunStatus.from_string(info.status)):
            client.delete_run(run_id)
            return True
        time.sleep(poll)
    return False


def ui_command() -> str:
    """What to run to browse the runs: `langdec ui` serves this store's UI with langdec's saved views and
    prints their links (the plain `mlflow ui --backend-store-uri URI` opens without them)."""
    return "langdec ui"


def artifact_dir(run_id: str, path: str = "") -> Path:
    import mlflow

    return Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=path or None))
