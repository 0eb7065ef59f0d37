"""The model in this process for the `hf` evaluation backend: the base model, with an adapter on top."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from langdec.core.errors import LangdecError
from langdec.models.loading import load_base_model, load_tokenizer

if TYPE_CHECKING:
    from langdec.core.config import ModelConfig


def adapter_folder(adapter_uri: str | None) -> str | None:
    """A local folder for an adapter given as an MLflow artifact URI or a folder path."""
    if not adapter_uri:
        return None
    if Path(adapter_uri).is_dir():
        return adapter_uri
    import mlflow

    return mlflow.artifacts.download_artifacts(adapter_uri)


def load_local(spec: ModelConfig, adapter_dir: str | None, *, quantization: str = "none", allow_cpu: bool = False):
    """The base model of the profile's model section with the adapter in `adapter_dir` on top; NF4 only on a
    GPU (the training's quantization, as the adapter was trained on it) or where `allow_cpu` (training.allow_cpu)
    asks for it on CPU, and in whatever precision this machine scores best (scoring needs no fp16 loss scaling)."""
    from langdec.models.effective import scoring_quantization

    quantization = scoring_quantization(quantization, allow_cpu)
    model = load_base_model(spec, quantization=quantization, precision="auto")
    if adapter_dir:
        from peft import PeftModel

        try:
            model = PeftModel.from_pretrained(model, adapter_dir)
        except (RuntimeError, ValueError, KeyError) as exc:  # size mismatch, unknown target modules
            base = json.loads((Path(adapter_dir) / "adapter_config.json").read_text()).get(
                "base_model_name_or_path", "?"
            )
            raise LangdecError(
                f"{adapter_dir}: this adapter does not fit the profile's model {spec.id!r} (it was "
                f"trained on {base!r}): {str(exc).splitlines()[0][:200]}; use the profile of its base model"
            ) from None
    model.eval()
    return model, load_tokenizer(spec, padding_side="left")
