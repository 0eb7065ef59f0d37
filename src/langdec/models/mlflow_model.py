"""A trained adapter as an MLflow Model: the adapter folder (PEFT weights, tokenizer, langdec.json) with an `MLmodel`
beside its files, so `mlflow.pyfunc.load_model("models:/<name>@<alias>")` and `mlflow models serve` work on every
registered version.

Why a pyfunc with a loader module rather than the transformers flavor's PEFT support: the transformers flavor names
the base model only by hub repository and commit, which the smoke model and a model converted from a GGUF file do
not have, and it would generate with its own pipeline defaults, not with the prompt cut, batching and greedy decoding
that `langdec evaluate` scores with. The loader module (`evaluation.pyfunc`) loads the base as the profile's model
section names it, checks it is the base the adapter was trained on (`check_base`, `check_commit` here), puts the
adapter on top and answers with `evaluation.inference.generate`: the same text as the hf backend for the same prompt.
No pickle is involved: the MLmodel names that module and carries the settings as data (the `langdec` flavor).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langdec.core.digests import files_sha256
from langdec.core.errors import LangdecError

if TYPE_CHECKING:
    from langdec.core.config import ModelConfig, Profile

FLAVOR = "langdec"
LOADER = "langdec.evaluation.pyfunc"  # named, not imported: loading generates, which is evaluation's
MLMODEL = "MLmodel"
# what save_model writes beside the adapter's own files
WRITTEN = (MLMODEL, "conda.yaml", "python_env.yaml", "requirements.txt", "input_example.json")
WRITTEN_OPTIONAL = ("serving_input_example.json",)
EXAMPLE_PROMPT = "Question: What is 2 + 3?\nAnswer:"


def _weights_digest(folder: Path) -> str:
    """sha256 over a local model folder's weight files (as a published adapter's folder is named)."""
    files = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
    if not files:
        raise LangdecError(f"{folder}: no weight files (*.safetensors, *.bin) to identify the base model by")
    return files_sha256(folder, files)


def base_reference(spec: ModelConfig, *, commit: str | None = None) -> dict[str, Any]:
    """How a version names its base model without copying it: a hub model by id and revision (and the commit it
    loaded, when the hub said), the smoke model, a GGUF file or a local folder by path and sha256."""
    from langdec.models import loading

    ref: dict[str, Any] = {"id": spec.id, "revision": spec.revision}
    if spec.id == "smoke":
        folder = loading.build_smoke_model(spec)
        return {**ref, "kind": "smoke", "path": str(folder), "sha256": _weights_digest(folder)}
    source = loading.gguf_source(spec)
    if source is not None:
        return {**ref, "kind": "gguf", "path": str(source.path), "sha256": source.sha256}
    if Path(spec.id).is_dir():
        folder = Path(spec.id).resolve()
        return {**ref, "kind": "local", "path": str(folder), "sha256": _weights_digest(folder)}
    return {**ref, "kind": "hub", "commit": commit}


def check_base(recorded: dict[str, Any], spec: ModelConfig) -> None:
    """Refuse, in one line, a base model here that is not the one the version was trained on."""
    if recorded.get("kind") == "hub":
        return  # checked against the commit the hub gives when it loads (check_commit)
    here = base_reference(spec)
    if here.get("sha256") != recorded.get("sha256"):
        raise LangdecError(
            f"base model {spec.id!r}: the weights here ({here.get('path')}, sha256 {str(here.get('sha256'))[:16]}) are "
            f"not the ones this version was trained on (sha256 {str(recorded.get('sha256'))[:16]}, then at "
            f"{recorded.get('path')}); install that base model, or retrain the adapter on this one"
        )


def check_commit(recorded: dict[str, Any], model) -> None:
    wanted = recorded.get("commit")
    found = getattr(getattr(model, "config", None), "_commit_hash", None)
    if wanted and found and wanted != found:
        raise LangdecError(
            f"base model {recorded.get('id')!r}: the hub cache holds commit {found}, this version was trained on "
            f"{wanted}; load that revision (model.revision={wanted}) or retrain the adapter"
        )


def flavor_config(profile: Profile, *, commit: str | None = None) -> dict[str, Any]:
    ev = profile.evaluation
    from langdec import __version__

    return {
        "profile": profile.name,
        "model": asdict(profile.model),
        "base": base_reference(profile.model, commit=commit),
        "quantization": profile.training.quantization,
        "allow_cpu": profile.training.allow_cpu,
        # what `langdec evaluate` generates with (evaluation.*): the same text for the same prompt
        "generation": {
            "max_new_tokens": ev.max_new_tokens,
            "max_prompt_tokens": ev.max_prompt_tokens,
            "batch_size": ev.batch_size,
            "truncation_side": ev.truncation_side,
        },
        "langdec_version": __version__,
    }


def _requirements() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for package in ("langdec", "mlflow", "torch", "transformers", "peft", "safetensors", "pandas"):
        try:
            pins.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            continue
    return pins


def describe(folder: Path, profile: Profile, *, commit: str | None = None, model_id: str | None = None) -> None:
    """Write the MLmodel (pyfunc through this module, the `langdec` flavor, signature, input example) and its
    environment files into the adapter folder, beside the adapter's files; `model_id`: the logged model it is."""
    write(folder, flavor_config(profile, commit=commit), model_id=model_id)


def write(folder: Path, config: dict[str, Any], *, model_id: str | None = None) -> None:
    import mlflow
    import pandas as pd
    from mlflow.models import Model, ModelSignature
    from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema

    gen = config["generation"]
    signature = ModelSignature(
        inputs=Schema([ColSpec("string", "prompt")]),
        outputs=Schema([ColSpec("string")]),
        params=ParamSchema([ParamSpec("max_new_tokens", "long", int(gen["max_new_tokens"]))]),
    )
    model = Model(model_id=model_id)
    model.add_flavor(FLAVOR, **config)
    with tempfile.TemporaryDirectory(prefix="mlmodel-") as tmp:
        out = Path(tmp) / "model"
        mlflow.pyfunc.save_model(
            str(out),
            loader_module=LOADER,
            mlflow_model=model,
            signature=signature,
            input_example=pd.DataFrame({"prompt": [EXAMPLE_PROMPT]}),
            pip_requirements=_requirements(),
            metadata={"base_model": config["base"]["id"], "library_name": "peft"},
        )
        for path in out.iterdir():
            target = folder / path.name
            if target.is_dir():
                shutil.rmtree(target)
            shutil.move(str(path), target)
    written = Model.load(str(folder / MLMODEL))
    written.model_size_bytes = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())  # the adapter's too
    written.save(str(folder / MLMODEL))


def read_config(folder: Path) -> dict[str, Any]:
    from mlflow.models import Model

    flavors = Model.load(str(folder / MLMODEL)).flavors
    if FLAVOR not in flavors:
        raise LangdecError(f"{folder / MLMODEL}: no {FLAVOR!r} flavor; run `langdec registry upgrade`")
    return flavors[FLAVOR]
