"""model: precision per machine, the offline smoke model and tokenizer, and the offline hint for a hub model."""

from __future__ import annotations

import pytest
import torch

from langdec.core import config
from langdec.core.errors import LangdecError
from langdec.models import loading as model


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU rules")
def test_cpu_runs_fp32_whatever_was_asked():
    assert {p: model.effective_precision(p) for p in ("auto", "fp16", "bf16", "fp32")} == dict.fromkeys(
        ("auto", "fp16", "bf16", "fp32"), "fp32"
    )
    assert model.compute_dtype("bf16") is torch.bfloat16


def test_the_smoke_model_and_tokenizer_load_offline(smoke_profile):
    tok = model.load_tokenizer(smoke_profile.model, padding_side="left")
    assert tok.padding_side == "left" and tok.pad_token_id is not None
    built = model.load_base_model(smoke_profile.model, quantization="none", precision="fp32")
    assert built.config.hidden_size == smoke_profile.model.smoke["hidden_size"]
    assert model.model_source(smoke_profile.model) == str(model.smoke_dir(smoke_profile.model))


def test_a_hub_model_that_cannot_be_reached_says_how_to_get_it(monkeypatch, langdec_home):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    profile = config.load_profile("smoke", ["model.id=CohereLabs/tiny-aya-base"])
    with pytest.raises(LangdecError, match=r"huggingface-cli download CohereLabs/tiny-aya-base.*HF_HUB_OFFLINE=1"):
        model.load_tokenizer(profile.model)
