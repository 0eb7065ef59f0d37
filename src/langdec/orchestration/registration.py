"""What the pipeline does with a job's adapter in the registered model (`tracking.registry`): room for the cell
checked before training, the trained adapter registered while its run is open, the version of a reused run looked
up, and the version marked evaluated once its evaluation scored it. Training and evaluation only call these hooks."""

from __future__ import annotations

from collections.abc import Callable

from langdec.core.config import Job, Profile
from langdec.evaluation.stage import Scored, template_scores
from langdec.tracking import logged_models, registry
from langdec.training.stage import Options, Trained


class AdapterRegistration:
    """Training's `Registrar` for one job: registers (with `options.register`) the cell's version, superseding the
    one that holds it only with `options.supersede`."""

    def __init__(self, profile: Profile, phase: str, job: Job, options: Options) -> None:
        self.profile, self.phase, self.job, self.options = profile, phase, job, options

    def check(self) -> None:
        if self.options.register:
            registry.ensure_can_register(
                self.profile.registered_model, self.phase, self.job, supersede=self.options.supersede
            )

    def register(self, trained: Trained) -> str | None:
        if not self.options.register:
            return None
        from mlflow.tracking import MlflowClient

        version = registry.register(
            self.profile.registered_model,
            trained.run_id,
            trained.adapter_uri,
            phase=self.phase,
            job=self.job,
            profile=self.profile,
            data_digest=trained.data_digest,
            check_status=trained.check_status,
            tags=trained.tags,
            supersede=self.options.supersede,
            run_key=trained.key,
        )
        MlflowClient().set_tag(trained.run_id, "registered_version", version)
        return version

    def version_of(self, finished) -> str | None:
        version = registry.version_for_run(self.profile.registered_model, finished.info.run_id)
        first = finished.data.tags.get("langdec.duplicate_of")
        if version is None and first:  # trained twice at once elsewhere; the first run's version holds the cell
            version = registry.version_for_run(self.profile.registered_model, first)
        return version


def record_evaluation(profile: Profile, train_run_id: str) -> Callable[[Scored], None]:
    """Evaluation's `on_scored` for an adapter the pipeline names: its registered version (if any) says it was
    evaluated, on which benchmarks, by which extractor versions."""

    def record(scored: Scored) -> None:
        version = registry.version_for_run(profile.registered_model, train_run_id)
        if version:
            registry.record_evaluation(
                profile.registered_model, version, scored.benchmarks, scored.extractor_versions, scored.cells
            )
        link_scores(train_run_id, scored.run_id)

    return record


def link_scores(train_run_id: str, eval_run_id: str) -> int:
    """The evaluation's template and summary scores on the adapter's logged model (MLflow 3), each recorded with
    the evaluation run that measured it; 0 for an adapter from before logged models."""
    from mlflow.tracking import MlflowClient

    model_id = logged_models.model_of_run(train_run_id)
    if model_id is None:
        return 0
    metrics = MlflowClient().get_run(eval_run_id).data.metrics
    scores = {**template_scores(metrics), **{k: v for k, v in metrics.items() if k.startswith("summary.")}}
    return logged_models.link_scores(model_id, eval_run_id, scores)
