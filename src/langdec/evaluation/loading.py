"""The model in this process for the `hf` evaluation backend: the base model, with an adapter on top."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..errors import LangdecError
from ..model import load_base_model, load_tokenizer

if TYPE_CHECKING:
    from ..config import Profile


def adapter_folder(adapter_uri: str | None) -> str | None:
    """A local folder for an adapter given as an MLflow artifact URI or a folder path."""
    if not adapter_uri:
        return None
    if Path(adapter_uri).is_dir():
        return adapter_uri
    import mlflow

    return mlflow.artifacts.download_artifacts(adapter_uri)


def load_local(profile: Profile, adapter_dir: str | None):
    quantization = profile.training.quantization if torch.cuda.is_available() else "none"
    model = load_base_model(profile.model, quantization=quantization, precision="auto")  # scoring needs no fp16 loss scaling
    if adapter_dir:
        from peft import PeftModel

        try:
            model = PeftModel.from_pretrained(model, adapter_dir)
        except (RuntimeError, ValueError, KeyError) as exc:  # size mismatch, unknown target modules
            base = json.loads((Path(adapter_dir) / "adapter_config.json").read_text()).get("base_model_name_or_path", "?")
            raise LangdecError(f"{adapter_dir}: this adapter does not fit the profile's model {profile.model.id!r} (it was "
                               f"trained on {base!r}): {str(exc).splitlines()[0][:200]}; use the profile of its base model") from None
    model.eval()
    return model, load_tokenizer(profile.model, padding_side="left")
