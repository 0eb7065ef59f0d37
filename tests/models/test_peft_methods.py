"""PEFT methods by name: the registry, its refusals, and LayerNorm-only tuning trained for real on the
smoke model, saved as an MLflow artifact and loaded back with peft."""

from __future__ import annotations

import mlflow
import pytest
import torch

from langdec.core import config
from langdec.core.errors import LangdecError
from langdec.data import checks
from langdec.data import stage as data
from langdec.models import peft_methods
from langdec.tracking import runs as tracking
from langdec.training import backend, keys
from langdec.training import stage as train

JOB = config.Job("2", "es", "5k", 42)


def test_unknown_method_lists_the_registered_ones():
    with pytest.raises(
        LangdecError, match="unknown PEFT method 'lorra'; valid PEFT methods: dora, ia3, ln_tuning, lora"
    ):
        config.load_profile("smoke", ["training.peft_method=lorra"])


def test_unsloth_is_refused_for_a_method_it_cannot_train():
    with pytest.raises(LangdecError, match="unsloth trains LoRA only; ln_tuning"):
        config.load_profile("smoke", ["training.peft_method=ln_tuning", "training.backend=unsloth"])
    with pytest.raises(LangdecError, match="unsloth trains LoRA only"):
        backend.choose_backend("unsloth", peft_method="ia3")
    assert backend.choose_backend("auto", peft_method="ln_tuning") == "hf"
    with pytest.raises(LangdecError, match="fourier_lambda penalises LoRA updates"):
        config.load_profile("smoke", ["training.peft_method=ln_tuning", "training.fourier_lambda=1"])


def test_the_study_lora_keeps_its_run_key_and_other_methods_get_their_own(smoke_profile):
    lora = keys.train_params(smoke_profile, JOB, "none", "hf")
    assert not any(k.startswith("train.peft_method") or k == "train.ln_modules" for k in lora)
    ln = keys.train_params(config.load_profile("smoke", ["training.peft_method=ln_tuning"]), JOB, "none", "hf")
    assert ln["train.peft_method"] == "ln_tuning" and ln["train.ln_modules"] == ["input_layernorm", "norm"]
    assert keys.run_key(smoke_profile, JOB, "none", "hf", "d") != tracking.run_key(train.TRAIN_STAGE, ln, "d")


@pytest.mark.parametrize("name", sorted(peft_methods.METHODS))
def test_every_method_builds_a_peft_config(name):
    t = config.load_profile("smoke", [f"training.peft_method={name}"]).training
    built = peft_methods.get(name).build(t)
    assert built.task_type == "CAUSAL_LM"
    assert peft_methods.get(name).settings(t)


@pytest.mark.slow
def test_ln_tuning_trains_only_the_layernorms_and_loads_back(store, smoke_profile):
    from peft import PeftConfig, PeftModel

    from langdec.models.loading import load_base_model

    profile = config.load_profile(
        "smoke", ["training.peft_method=ln_tuning", "training.max_steps=2", "training.lr=0.05"]
    )
    experiment = "phase-3-smoke"
    tracking.configure()
    cond = config.condition(JOB.condition)
    data_run = data.run_stage(profile, cond, JOB, experiment, progress=False)
    checks.run_stage(
        data_run[0], cond, experiment, {"run_name": JOB.run_name}, tier_idx=set(data.build_tier_idx(profile, JOB))
    )
    result = train.run(
        profile,
        cond,
        JOB,
        phase="phase-3",
        experiment=experiment,
        data_run=data_run,
        progress=False,
        options=train.Options(register=False),
    )
    run = mlflow.get_run(result.run_id)
    base = load_base_model(profile.model, quantization="none", precision="fp32")
    # by hand: the four layers' input LayerNorms and the final norm, weights only (Cohere2's LayerNorm has no bias)
    norms = sum(
        p.numel() for n, p in base.named_parameters() if n.endswith(("input_layernorm.weight", "model.norm.weight"))
    )
    assert norms == 5 * profile.model.smoke["hidden_size"]
    assert run.data.metrics["trainable_parameters"] == norms
    assert run.data.params["train.peft_method"] == "ln_tuning" and run.data.tags["peft_method"] == "ln_tuning"
    assert run.data.params["peft.target_modules"] == "input_layernorm,norm"
    folder = mlflow.artifacts.download_artifacts(f"runs:/{result.run_id}/adapter")
    assert PeftConfig.from_pretrained(folder).peft_type == "LN_TUNING"
    ids = torch.tensor([[1, 5, 9, 13, 17]])
    before = base(ids).logits.detach().clone()
    tuned = PeftModel.from_pretrained(base, folder)
    after = tuned(ids).logits.detach()
    assert not torch.allclose(before, after)  # the saved LayerNorms are the trained ones, not the base's


def test_vllm_takes_langdecs_lora_and_names_what_it_refuses(smoke_profile, tmp_path):
    """vLLM's loader rules, checked on adapters peft writes: the study's LoRA passes; DoRA, modules_to_save,
    an unsupported target and a rank above vLLM's largest are each named."""
    import json

    from peft import get_peft_model

    from langdec.models import serving
    from langdec.models.loading import load_base_model

    def saved(name: str, **change) -> str:
        t = config.load_profile("smoke", [f"training.peft_method={change.pop('method', 'lora')}"]).training
        model = get_peft_model(
            load_base_model(smoke_profile.model, quantization="none", precision="fp32"),
            peft_methods.get(t.peft_method).build(t),
        )
        folder = tmp_path / name
        model.save_pretrained(folder)
        if change:
            path = folder / "adapter_config.json"
            path.write_text(json.dumps({**json.loads(path.read_text()), **change}))
        return str(folder)

    assert serving.vllm_problems(saved("lora")) == []
    dora = serving.vllm_problems(saved("dora", method="dora"))
    assert (
        dora[0] == "use_dora: vLLM does not support DoRA"
        and "lora_magnitude_vector': not a lora_A/lora_B weight" in dora[1]
    )
    assert serving.vllm_problems(saved("ln", method="ln_tuning")) == [
        "peft_type 'LN_TUNING': vLLM serves LoRA adapters only"
    ]
    assert serving.vllm_problems(saved("mts", modules_to_save=["lm_head"])) == [
        "modules_to_save ['lm_head']: vLLM only takes None"
    ]
    big = serving.vllm_problems(saved("big", r=1024))
    assert big[0] == "r 1024: vLLM's largest --max-lora-rank is 512" and any("do not have rank 1024" in p for p in big)
    odd = serving.vllm_problems(saved("odd", target_modules=["q_proj", "input_layernorm"]))
    assert odd[0].startswith("target_modules ['input_layernorm']: not among the modules vLLM's Cohere2 takes LoRA on")
    assert serving.max_lora_rank(8) == 8 and serving.max_lora_rank(17) == 32
    command = serving.vllm_command("CohereLabs/tiny-aya-base", {"cond2-zh": "/x/cond2 zh"}, [16])
    assert command == (
        "vllm serve CohereLabs/tiny-aya-base --enable-lora --max-lora-rank 16 --max-loras 1 "
        "--lora-modules 'cond2-zh=/x/cond2 zh'"
    )
