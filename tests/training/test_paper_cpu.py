"""The paper profile's quantized path on CPU: its NF4 (bitsandbytes) training and adapter evaluation run here,
on the smoke model, through `training.allow_cpu` (the refusal stays the default for a user who expects a GPU),
so a GPU run adds kernels, not untested code."""

from __future__ import annotations

import importlib.util
import json

import mlflow
import pytest
import torch
from mlflow.tracking import MlflowClient

from langdec import cli
from langdec.core import config
from langdec.core.errors import LangdecError
from langdec.models.effective import effective_optimizer
from langdec.training import keys
from langdec.training import stage as train

needs_bnb = pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None, reason="bitsandbytes not installed")
JOB = ["--condition", "2", "--lang", "es", "--tier", "5k", "--seed", "42"]


def paper_on_smoke(smoke_profile, *extra: str) -> list[str]:
    """The paper profile's recipe with the smoke model and corpus in place of Tiny Aya and the Stack, and tiny sizes."""
    return [
        f"model.id={smoke_profile.model.id}",
        f"model.smoke={json.dumps(smoke_profile.model.smoke)}",
        f"model.tokenizer_vocab={smoke_profile.model.tokenizer_vocab}",
        "corpus.source=stdlib",
        "corpus.require_license=false",
        "corpus.filters=langdec",
        "corpus.sampling=keyed",
        "corpus.blend=langdec",
        "corpus.tiers={5k: 40}",
        "corpus.max_lines=120",
        "training.max_steps=1",
        "training.max_length=256",
        "training.batch_size=2",
        "training.global_batch=4",
        "evaluation.source=fixtures",
        "evaluation.benchmarks=[sib200]",
        "evaluation.max_items=7",
        "evaluation.templates=[template1]",
        "evaluation.batch_size=8",
        *extra,
    ]


def sets(overrides: list[str]) -> list[str]:
    return [arg for item in overrides for arg in ("--set", item)]


def _langdec(capsys, *argv: str) -> dict:
    code = cli.main(["--quiet", *argv])
    out = capsys.readouterr()
    assert code == 0, out.err[-2000:]
    return json.loads(out.out)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for a machine without CUDA")
def test_the_paper_profile_still_refuses_cpu_unless_allowed(store, smoke_profile):
    profile = config.load_profile("paper", paper_on_smoke(smoke_profile))
    assert profile.training.quantization == "nf4" and not profile.training.allow_cpu
    job = config.Job("2", "es", "5k", 42)
    with pytest.raises(LangdecError, match=r"NF4 on a CUDA GPU; none is visible.*--set training\.allow_cpu=true"):
        train.preflight(profile, config.condition("2"), job, phase="phase-3", experiment="phase-3")
    # a permission, not a recipe: the same run key and the cell's own name (no arm) with it or without it
    allowed = config.load_profile("paper", paper_on_smoke(smoke_profile, "training.allow_cpu=true"))
    assert keys.train_params(allowed, job, "nf4", "hf") == keys.train_params(profile, job, "nf4", "hf")
    assert config.variant_name(["training.allow_cpu=true"]) is None


@pytest.mark.slow
@needs_bnb
def test_paper_nf4_trains_and_its_adapter_is_evaluated_on_cpu(store, smoke_profile, capsys):
    overrides = sets(paper_on_smoke(smoke_profile, "training.allow_cpu=true"))
    trained = _langdec(capsys, "train", "--profile", "paper", *JOB, *overrides)
    run = mlflow.get_run(trained["run_id"])
    params, tags = run.data.params, run.data.tags
    layers = 7 * smoke_profile.model.smoke["num_hidden_layers"]  # q, k, v, o, gate, up, down in every layer
    assert params["profile"] == "paper" and params["model_id"] == "smoke" and params["quantization"] == "nf4"
    assert tags["langdec.quantized_layers"] == f"nf4:{layers}"  # bitsandbytes Linear4bit layers, quant type nf4
    # the paper's optimiser, paged AdamW 8-bit, as it runs here (plain AdamW without CUDA), the request kept beside it
    assert params["train.optimizer"] == effective_optimizer("paged_adamw_8bit")
    assert tags["langdec.optimizer_requested"] == "paged_adamw_8bit"
    assert params["train.long_files"] == "truncate" and params["train.grad_accum"] == "2"  # the paper's recipe
    if not torch.cuda.is_available():
        assert params["train.optimizer"] == "adamw_torch" and params["train.precision"] == "fp32"
        assert tags["langdec.allow_cpu"] == "true" and tags["device"].startswith("cpu")
    losses = [m.value for m in MlflowClient().get_metric_history(trained["run_id"], "loss")]
    assert len(losses) == 1 and all(0 < l < float("inf") for l in losses)
    saved = {a.path for a in MlflowClient().list_artifacts(trained["run_id"], "adapter")}
    assert {"adapter/adapter_model.safetensors", "adapter/adapter_config.json"} <= saved
    assert trained["registered_version"]

    evaluated = _langdec(capsys, "evaluate", "--profile", "paper", *JOB, "--data-languages", "en", *overrides)
    ev = mlflow.get_run(evaluated["run_id"])
    assert ev.data.tags["adapter_run"] == trained["run_id"] and ev.data.params["slice"] == "stratified:seed=42"
    assert ev.data.tags["langdec.quantized_layers"] == f"nf4:{layers}"  # the adapter's base loaded in NF4 again
    assert ev.data.params["quantization"] == "nf4"  # and the evaluation's key says so
    metrics = ev.data.metrics
    assert metrics["eval.items"] == 7.0 * 2  # 7 items, instructions in English and in the trained language
    for key in (
        "gen.refined.template1.sib200.data:en.instr:en.acc",
        "gen.refined.template1.sib200.data:en.instr:es.acc",
        "ll.sib200.data:en.acc",
    ):
        assert 0.0 <= metrics[key] <= 1.0, key


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal is for a machine without CUDA")
def test_a_cpu_machine_hears_the_gpu_refusal_before_any_data_is_built_or_downloaded(store, capsys):
    """The paper profile's corpus is the-stack-v2 on the hub: before the refusal moved ahead of the data stage, a
    CPU machine met a download error instead of being told what it lacks and which setting allows CPU."""
    from langdec.cli import main

    code = main(["train", "--profile", "paper", "--condition", "2", "--lang", "zh"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "none is visible" in err and "training.allow_cpu=true" in err and "hub" not in err.lower()
    assert mlflow.search_runs(search_all_experiments=True).empty  # no data or check run was started
