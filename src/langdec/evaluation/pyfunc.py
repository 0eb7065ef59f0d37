"""What `mlflow.pyfunc.load_model` and `mlflow models serve` run for a registered adapter: the MLmodel written by
`models.mlflow_model` names this module as its loader. It loads the base and the adapter the way the hf backend does
and generates with the same settings, so a version answers a prompt with the text `langdec evaluate` scored."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from langdec.models import mlflow_model

if TYPE_CHECKING:
    from langdec.core.config import ModelConfig


def _model_config(config: dict[str, Any]) -> ModelConfig:
    from langdec.core.config import ModelConfig

    return ModelConfig(**config["model"])


class AdapterPredictor:
    """What `mlflow.pyfunc.load_model` returns the `predict` of: base + adapter, generating as `langdec evaluate`
    does. Input: a DataFrame with a `prompt` column, a list of prompts, or one prompt; output: one text each."""

    def __init__(self, folder: Path) -> None:
        from langdec.evaluation.loading import load_local

        self.config = mlflow_model.read_config(folder)
        spec = _model_config(self.config)
        mlflow_model.check_base(self.config["base"], spec)
        self.model, self.tokenizer = load_local(
            spec, str(folder), quantization=self.config["quantization"], allow_cpu=self.config["allow_cpu"]
        )
        mlflow_model.check_commit(self.config["base"], getattr(self.model, "get_base_model", lambda: self.model)())

    def predict(self, model_input, params: dict[str, Any] | None = None) -> list[str]:
        from langdec.evaluation import inference

        prompts = _prompts(model_input)
        gen = {**self.config["generation"], **{k: v for k, v in (params or {}).items() if k == "max_new_tokens"}}
        return inference.generate(
            self.model,
            self.tokenizer,
            prompts,
            max_new_tokens=int(gen["max_new_tokens"]),
            batch_size=int(gen["batch_size"]),
            max_prompt_tokens=int(gen["max_prompt_tokens"]),
            truncation_side=gen["truncation_side"],
        )


def _prompts(model_input) -> list[str]:
    if isinstance(model_input, str):
        return [model_input]
    if isinstance(model_input, dict):
        model_input = model_input.get("prompt", next(iter(model_input.values()), []))
        return [model_input] if isinstance(model_input, str) else [str(p) for p in model_input]
    columns = getattr(model_input, "columns", None)
    if columns is not None:
        column = "prompt" if "prompt" in columns else columns[0]
        return [str(p) for p in model_input[column].tolist()]
    return [str(p) for p in model_input]


def _load_pyfunc(path: str, model_config: dict[str, Any] | None = None) -> AdapterPredictor:
    """MLflow's entry into this flavor (`loader_module` in the MLmodel): `path` is the version's folder (the MLmodel
    names no `data` path, so MLflow passes the model's own folder)."""
    return AdapterPredictor(Path(path))
