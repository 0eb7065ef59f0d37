"""Versions registered before every version was an MLflow Model (a bare PEFT folder as their source) made loadable
by MLflow's own tools: the MLmodel and its environment files written beside the adapter's files, where the version's
source is. Run once on request (`langdec registry upgrade`); a version that already has its MLmodel is left alone,
so running it again changes nothing."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from langdec.core.errors import LangdecError
from langdec.models import mlflow_model
from langdec.tracking.registry import model_lock

TAG = "langdec.mlflow_model"


@dataclass
class Upgrade:
    upgraded: dict[str, str] = field(default_factory=dict)  # version -> where its MLmodel was written
    already: list[str] = field(default_factory=list)  # versions that were MLflow Models before
    skipped: dict[str, str] = field(default_factory=dict)  # version -> why, with what to do


def _has_mlmodel(source: str) -> bool:
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    return any(Path(f.path).name == mlflow_model.MLMODEL for f in get_artifact_repository(source).list_artifacts(None))


def _profile_of(version):
    from langdec.core import config

    name = version.tags.get("profile")
    if not name:
        raise LangdecError("its tags name no profile; re-register it with `langdec train --supersede`")
    profile = config.load_profile(name)
    recorded = version.tags.get("model_sha256")  # a GGUF base: the file it was trained on
    here = mlflow_model.base_reference(profile.model).get("sha256")
    if recorded and here and recorded != here:
        raise LangdecError(
            f"it was trained on base sha256 {recorded[:16]}, profile {name}'s model here is {here[:16]}; "
            "install that base model first"
        )
    return profile


def _upgrade_one(version) -> str:
    import mlflow
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    profile = _profile_of(version)
    with tempfile.TemporaryDirectory(prefix="upgrade-") as tmp:
        folder = Path(mlflow.artifacts.download_artifacts(artifact_uri=version.source, dst_path=tmp))
        if not (folder / "adapter_config.json").is_file():
            raise LangdecError(f"{version.source} holds no adapter_config.json: not a PEFT adapter folder")
        mlflow_model.describe(folder, profile)
        repo = get_artifact_repository(version.source)
        # the MLmodel last: its presence is what marks a version done, so an interrupted upgrade is finished by the
        # next run instead of leaving a version without its environment files
        written = (*mlflow_model.WRITTEN, *mlflow_model.WRITTEN_OPTIONAL)
        for name in sorted(written, key=lambda name: name == mlflow_model.MLMODEL):
            if (folder / name).is_file():
                repo.log_artifact(str(folder / name))
    return version.source


def upgrade(name: str, *, dry_run: bool = False) -> Upgrade:
    """Write the MLmodel of every version of `name` whose source has none; what was done to each version."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    result = Upgrade()
    with model_lock(name, f"upgrading {name}'s versions to MLflow Models"):
        for version in sorted(client.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version)):
            number = str(version.version)
            if _has_mlmodel(version.source):
                result.already.append(number)
                continue
            try:
                where = version.source if dry_run else _upgrade_one(version)
            except LangdecError as exc:
                result.skipped[number] = str(exc)
                continue
            result.upgraded[number] = where
            if not dry_run:
                client.set_model_version_tag(name, number, TAG, "upgraded")
    return result
