"""Saving a trained adapter: written whole to a temporary folder (weights, tokenizer, what it was trained on),
then logged to its run as the `adapter` artifact."""

from __future__ import annotations

import json
from pathlib import Path

from langdec.core.atomic import user_modes
from langdec.core.config import Job, Profile
from langdec.core.errors import LangdecError


def save_adapter(trainer, tokenizer, run_id: str, job: Job, profile: Profile, data_digest: str) -> str:
    """Log the trained adapter to run `run_id`; its artifact URI."""
    import tempfile

    import mlflow

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
        except OSError as exc:
            raise LangdecError(
                f"could not write the adapter ({exc}); free disk space and re-run the same command to resume"
            ) from None
        user_modes(folder)  # safetensors writes its weights 0600
        mlflow.log_artifacts(str(folder), artifact_path="adapter")
    return f"runs:/{run_id}/adapter"
