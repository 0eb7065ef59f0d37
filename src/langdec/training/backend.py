"""Which code trains (TRL on Hugging Face, or Unsloth), the attention kernel for packed rows, and the base model
with its PEFT configuration as that backend loads them."""

from __future__ import annotations

from langdec.core.config import Profile
from langdec.core.errors import LangdecError, did_you_mean
from langdec.models.effective import TRAINING_BACKENDS
from langdec.training.optimizers import training_precision


def choose_backend(requested: str, packing: bool = False, peft_method: str = "lora") -> str:
    """hf or unsloth. Packed rows are proven to keep files apart on the hf path only (tests/training/test_train.py),
    so with packing `auto` takes hf and an explicit unsloth is refused; so is any PEFT method but LoRA,
    whose layers are the only ones Unsloth patches."""
    import importlib.util

    import torch

    from langdec.models import peft_methods

    lora = peft_methods.get(peft_method).lora_family
    has_unsloth = importlib.util.find_spec("unsloth") is not None and lora
    if requested == "unsloth":
        if not lora:
            raise LangdecError(
                f"--backend unsloth trains LoRA only; training.peft_method {peft_method} runs on --backend hf"
            )
        if not torch.cuda.is_available():
            raise LangdecError("--backend unsloth needs a CUDA GPU; use --backend hf on this machine")
        if not has_unsloth:
            raise LangdecError("--backend unsloth needs the GPU extra: pip install 'langdec[gpu]'")
        if packing:
            raise LangdecError(
                "--backend unsloth with training.packing=true is not verified to keep packed files apart; "
                "use --backend hf (packing proven), or --set training.packing=false"
            )
        return "unsloth"
    if requested not in TRAINING_BACKENDS:
        raise did_you_mean("training backend", requested, TRAINING_BACKENDS)
    if requested == "auto":
        return "unsloth" if has_unsloth and torch.cuda.is_available() and not packing else "hf"
    return "hf"


def packed_attention(packing: bool, precision: str) -> str | None:
    """The attention kernel for packed rows. Packed windows carry position ids that restart at 0 per
    file and no attention mask; from those, transformers builds a block-diagonal causal mask for SDPA
    and eager attention, so files never attend to each other (tested). flash-attention's varlen
    kernels do the same without materialising the mask, so they are taken where installed (they
    run in fp16/bf16 only)."""
    import importlib.util

    import torch

    if (
        packing
        and precision in ("fp16", "bf16")
        and torch.cuda.is_available()
        and importlib.util.find_spec("flash_attn") is not None
    ):
        return "flash_attention_2"
    return None


def model_and_peft_config(profile: Profile, backend: str, quantization: str):
    from langdec.models import peft_methods

    t = profile.training
    peft_config = peft_methods.get(t.peft_method).build(t)
    if backend == "unsloth":
        from unsloth import FastLanguageModel  # type: ignore[import-not-found]

        from langdec.models.loading import model_source

        model, _ = FastLanguageModel.from_pretrained(
            model_source(profile.model), max_seq_length=t.max_length, load_in_4bit=quantization == "nf4"
        )
        model = FastLanguageModel.get_peft_model(
            model,
            r=t.lora_r,
            lora_alpha=t.lora_alpha,
            lora_dropout=t.lora_dropout,
            target_modules=list(t.target_modules),
            bias="none",
            use_gradient_checkpointing="unsloth",
        )
        return model, None
    from langdec.models.loading import load_base_model

    precision = training_precision(t)
    model = load_base_model(
        profile.model,
        quantization=quantization,
        precision=precision,
        attn_implementation=packed_attention(t.packing, precision),
    )
    if quantization == "nf4":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=t.gradient_checkpointing)
    return model, peft_config
