"""Saving a trained adapter: written whole to a temporary folder (weights, tokenizer, what it was trained on, and
the MLmodel that makes the folder an MLflow Model), then logged as the run's logged model."""

from __future__ import annotations

import json
from pathlib import Path

from langdec.core.atomic import user_modes
from langdec.core.config import Job, Profile
from langdec.core.errors import LangdecError
from langdec.models import mlflow_model
from langdec.tracking import logged_models


def save_adapter(trainer, tokenizer, run_id: str, job: Job, profile: Profile, data_digest: str) -> str:
    """Log the trained adapter as run `run_id`'s logged model; its URI (models:/<model id>)."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="adapter-") as tmp:
        folder = Path(tmp) / "adapter"
        try:
            trainer.model.save_pretrained(folder)
            tokenizer.save_pretrained(folder)
            (folder / "langdec.json").write_text(
                json.dumps(
                    {
                        "run_name": job.run_name,
                        "condition": job.condition,
                        "lang": job.lang,
                        "tier": job.tier,
                        "seed": job.seed,
                        "base_model": profile.model.id,
                        "data_digest": data_digest,
                    },
                    indent=2,
                )
            )
            # the hub commit the base loaded from (None for local models): the version names its base by it
            commit = getattr(getattr(trainer.model, "config", None), "_commit_hash", None)
            training = profile.training
            model_id = logged_models.begin(
                run_id,
                name=logged_models.ADAPTER,  # MLflow resolves runs:/<run>/adapter to it, as before
                params={
                    "condition": job.condition,
                    "lang": job.lang or "en",
                    "tier": job.tier,
                    "seed": str(job.seed),
                    "base_model": profile.model.id,
                    "lora_r": str(training.lora_r),
                    "lora_alpha": str(training.lora_alpha),
                    "quantization": training.quantization,
                },
                tags={
                    "langdec.run_name": job.run_name,
                    "langdec.profile": profile.name,
                    "langdec.data_digest": data_digest,
                    # the description on the model's page, where MLflow keeps a run's too
                    "mlflow.note.content": f"{job.run_name}: the LoRA adapter of condition {job.condition}, "
                    f"{job.lang or 'en'}, tier {job.tier}, seed {job.seed}, on {profile.model.id} (profile {profile.name})",
                },
            )
            mlflow_model.describe(folder, profile, commit=commit, model_id=model_id)
        except OSError as exc:
            raise LangdecError(
                f"could not write the adapter ({exc}); free disk space and re-run the same command to resume"
            ) from None
        user_modes(folder)  # safetensors writes its weights 0600
        logged_models.finish(model_id, folder)
    return f"models:/{model_id}"
