"""MLflow 3 logged models: each trained adapter is one (its folder an MLflow Model, `models.mlflow_model`), named
`adapter` and made by its training run, registered as a version whose source is `models:/<model_id>`, and carrying
the template scores of every evaluation that scored it, so the model's page lists its evaluation runs beside them.

Older runs kept the adapter as the run's `adapter` artifact; `adapter_uri` finds whichever the run has."""

from __future__ import annotations

import time
from pathlib import Path

# the logged model's name, as MLflow names a model after its artifact path: `runs:/<run>/adapter`, the adapter of
# a training run since langdec began, resolves to it
ADAPTER = "adapter"
MODEL_TYPE = "peft-adapter"


def _client():
    from mlflow.tracking import MlflowClient

    return MlflowClient()


def begin(run_id: str, *, name: str, params: dict[str, str], tags: dict[str, str]) -> str:
    """A new logged model of run `run_id` (PENDING until `finish`); its id, which the MLmodel records."""
    client = _client()
    experiment = client.get_run(run_id).info.experiment_id
    model = client.create_logged_model(
        experiment, name=name, source_run_id=run_id, tags=tags, params=params, model_type=MODEL_TYPE
    )
    return model.model_id


def finish(model_id: str, folder: Path) -> None:
    """Upload the model's folder and mark it READY (FAILED when the upload fails)."""
    import mlflow
    from mlflow.entities import LoggedModelStatus

    try:
        _client().log_model_artifacts(model_id, str(folder))
    except BaseException:
        mlflow.finalize_logged_model(model_id, LoggedModelStatus.FAILED)
        raise
    mlflow.finalize_logged_model(model_id, LoggedModelStatus.READY)


def model_of_run(run_id: str) -> str | None:
    """The newest READY logged model a run made, or None (a run from before logged models)."""
    from mlflow.entities import LoggedModelStatus
    from mlflow.exceptions import MlflowException

    client = _client()
    try:
        experiment = client.get_run(run_id).info.experiment_id
        found = client.search_logged_models(
            experiment_ids=[experiment], filter_string=f"source_run_id = '{run_id}'", max_results=50
        )
    except MlflowException:
        return None
    ready = [m for m in found if m.status == LoggedModelStatus.READY and m.model_type == MODEL_TYPE]
    return max(ready, key=lambda m: m.creation_timestamp).model_id if ready else None


def adapter_uri(run_id: str) -> str:
    """Where a training run's adapter is: its logged model, or (older runs) its `adapter` artifact."""
    model_id = model_of_run(run_id)
    return f"models:/{model_id}" if model_id else f"runs:/{run_id}/{ADAPTER}"


def model_id_in(source: str | None) -> str | None:
    """The model id of a `models:/m-...` source, else None."""
    if source and source.startswith("models:/m-"):
        return source[len("models:/") :].split("/")[0]
    return None


def link_scores(model_id: str, eval_run_id: str, metrics: dict[str, float]) -> int:
    """Log an evaluation run's scores on the logged model too (MLflow records each with the run that measured it);
    the number logged."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    batch = [
        Metric(key, float(value), now, 0, model_id=model_id, run_id=eval_run_id)
        for key, value in sorted(metrics.items())
    ]
    client = _client()
    for start in range(0, len(batch), 500):  # MLflow's batch limit is 1000 metrics
        client.log_batch(eval_run_id, metrics=batch[start : start + 500])
    return len(batch)


def link_version(model_id: str, name: str, version: str, *, linked: bool = True) -> None:
    """Name the registered version on its logged model, as `mlflow.register_model` does (the model's page links
    to the version through this tag); `linked=False` takes the name away (a version removed again)."""
    import json

    from mlflow.utils.mlflow_tags import MLFLOW_MODEL_VERSIONS

    client = _client()
    listed = json.loads(client.get_logged_model(model_id).tags.get(MLFLOW_MODEL_VERSIONS) or "[]")
    entry = {"name": name, "version": str(version)}
    kept = [e for e in listed if e != entry]
    wanted = [*kept, entry] if linked else kept
    if wanted != listed:
        client.set_logged_model_tags(model_id, {MLFLOW_MODEL_VERSIONS: json.dumps(wanted)})
