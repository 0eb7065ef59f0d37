"""The evaluation model seam: the `openai` backend, through the official client, against a real
OpenAI-compatible server on this CPU (`transformers serve`), scores what the `hf` backend scores."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import pytest
import torch

from langdec.core import config
from langdec.core.errors import LangdecError
from langdec.evaluation import backends, benchmarks, stage
from langdec.evaluation.prompts import render
from langdec.orchestration.localcluster import free_port
from langdec.tracking import runs as tracking


@pytest.fixture(scope="module")
def lively_model(tmp_path_factory, langdec_home):
    """The smoke model with seeded noise on its matrices, so greedy outputs differ from prompt to prompt
    (the random-weight smoke model answers ':' to nearly everything, which would agree too easily)."""
    from langdec.models.loading import load_base_model, load_tokenizer

    profile = config.load_profile("smoke")
    model = load_base_model(profile.model, quantization="none", precision="fp32")
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for _, weight in model.named_parameters():
            if weight.dim() == 2:
                weight.add_(torch.randn(weight.shape, generator=generator) * 0.2)
    folder = tmp_path_factory.mktemp("lively") / "model"
    model.save_pretrained(folder)
    load_tokenizer(profile.model).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def server(lively_model):
    """`transformers serve` with the model preloaded: a real OpenAI-compatible completions server."""
    port = free_port()
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("transformers")),
            "serve",
            str(lively_model),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                break
        except OSError:
            if proc.poll() is not None:
                pytest.fail("transformers serve exited before answering")
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("transformers serve did not answer /health within 120 s")
    yield f"{url}/v1"
    proc.terminate()
    proc.wait(timeout=30)


def _profile(model_dir: Path, *overrides: str):
    return config.load_profile("smoke", [f"model.id={model_dir}", *overrides])


def _load(profile, adapter_dir: str | None = None, run_name: str = "baseline"):
    return backends.load(profile.model, profile.evaluation, adapter_dir, run_name)


def _prompts() -> list[str]:
    out = [
        render("template1", "sib200", "en", it, "study") for it in benchmarks.load("sib200", "en", source="fixtures")
    ]
    return out + [
        render("template2", "xnli", "ur", it, "study") for it in benchmarks.load("xnli", "ur", source="fixtures")
    ]


@pytest.mark.slow
def test_openai_backend_generates_exactly_what_hf_generates(lively_model, server):
    hf = _load(_profile(lively_model))
    served = _load(_profile(lively_model, "evaluation.backend=openai", f"evaluation.base_url={server}"))
    assert isinstance(served, backends.OpenAIModel) and served.model == str(lively_model)  # served_model "{base}"
    prompts = _prompts()
    kwargs = dict(max_new_tokens=10, batch_size=4, max_prompt_tokens=1024)
    local, remote = hf.generate(prompts, **kwargs), served.generate(prompts, **kwargs)
    assert len(set(local)) > len(prompts) // 2  # varied answers, so agreement means something
    assert remote == local


@pytest.mark.slow
def test_a_cut_prompt_is_cut_the_same_way_for_both(lively_model, server):
    hf = _load(_profile(lively_model))
    served = _load(_profile(lively_model, "evaluation.backend=openai", f"evaluation.base_url={server}"))
    long = [" ".join(["The quick brown fox jumps over the lazy dog."] * 40)]
    kwargs = dict(max_new_tokens=6, batch_size=1, max_prompt_tokens=48, truncation_side="left")
    assert served.generate(long, **kwargs) == hf.generate(long, **kwargs)


def test_a_server_without_prompt_logprobs_is_named(lively_model, server):
    served = _load(_profile(lively_model, "evaluation.backend=openai", f"evaluation.base_url={server}"))
    with pytest.raises(LangdecError, match="returned no prompt log-probabilities .* evaluation.loglikelihood=false"):
        served.option_logprobs(["Is it?"], [["yes", "no"]], batch_size=2, max_prompt_tokens=64)


def test_no_server_and_bad_settings_are_clear_errors(lively_model):
    port = free_port()
    served = _load(
        _profile(lively_model, "evaluation.backend=openai", f"evaluation.base_url=http://127.0.0.1:{port}/v1")
    )
    with pytest.raises(LangdecError, match="no OpenAI-compatible server answers there"):
        served.generate(["x"], max_new_tokens=2, batch_size=1, max_prompt_tokens=16)
    with pytest.raises(LangdecError, match="unknown evaluation backend 'vllm'; valid evaluation backends: hf, openai"):
        config.load_profile("smoke", ["evaluation.backend=vllm"])
    with pytest.raises(LangdecError, match="needs evaluation.base_url"):
        config.load_profile("smoke", ["evaluation.backend=openai"])
    with pytest.raises(LangdecError, match=r"evaluation.base_url 'host/v1' .* not an http\(s\) URL") as err:
        config.load_profile("smoke", ["evaluation.backend=openai", "evaluation.base_url=ftp://user:secret@host/v1"])
    assert "secret" not in str(err.value)


@pytest.mark.slow
def test_the_evaluate_stage_scores_the_same_through_either_backend(store, lively_model, server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-never-recorded")
    tracking.configure()
    cond, job = config.condition("baseline"), config.Job("baseline", None, "5k", 42)
    results = {}
    for name, extra in (("hf", []), ("openai", ["evaluation.backend=openai", f"evaluation.base_url={server}"])):
        profile = _profile(
            lively_model, "evaluation.loglikelihood=false", "evaluation.benchmarks=[sib200, xnli]", *extra
        )
        results[name] = stage.run(
            profile, cond, job, phase="phase-3", experiment="phase-3-smoke", data_languages=["en", "ur"], progress=False
        )
    assert results["hf"].run_id != results["openai"].run_id  # the backend is part of the run key
    gen = {k: v for k, v in results["hf"].metrics.items() if k.startswith("gen.")}
    assert gen and gen == {k: v for k, v in results["openai"].metrics.items() if k.startswith("gen.")}
    run = mlflow.get_run(results["openai"].run_id)
    assert run.data.params["backend"] == "openai" and run.data.params["base_url"] == server
    assert "backend" not in mlflow.get_run(results["hf"].run_id).data.params  # the study's path keeps its keys
    everything = str(run.data.params) + str(run.data.tags)
    assert "sk-test-never-recorded" not in everything
