"""PEFT methods by name (`training.peft_method`): how each builds its peft config from the training
section, and which settings it records. LoRA is the study's method; the others are arms beside it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from langdec.core.registry import Registry

if TYPE_CHECKING:
    from langdec.core.config import TrainingConfig


@dataclass(frozen=True)
class PeftMethod:
    name: str
    build: Callable[[TrainingConfig], Any]  # -> a peft config
    settings: Callable[[TrainingConfig], dict[str, Any]]  # what the run records about the method
    # Unsloth patches LoRA layers only; vLLM serves LoRA adapters only
    lora_family: bool = False
    reason: str = ""


def _lora_settings(t: TrainingConfig) -> dict[str, Any]:
    return {
        "r": t.lora_r,
        "alpha": t.lora_alpha,
        "dropout": t.lora_dropout,
        "target_modules": ",".join(t.target_modules),
    }


def _lora(t: TrainingConfig, *, dora: bool = False):
    from peft import LoraConfig

    return LoraConfig(
        r=t.lora_r,
        lora_alpha=t.lora_alpha,
        lora_dropout=t.lora_dropout,
        bias="none",
        target_modules=list(t.target_modules),
        task_type="CAUSAL_LM",
        **({"use_dora": True} if dora else {}),
    )


def _ln_tuning(t: TrainingConfig):
    from peft import LNTuningConfig

    return LNTuningConfig(target_modules=list(t.ln_modules), task_type="CAUSAL_LM")


def _ia3(t: TrainingConfig):
    from peft import IA3Config

    feedforward = [m for m in t.target_modules if m in ("down_proj", "fc2", "w2")]
    return IA3Config(target_modules=list(t.target_modules), feedforward_modules=feedforward, task_type="CAUSAL_LM")


METHODS: Registry[PeftMethod] = Registry(
    "PEFT method",
    {
        m.name: m
        for m in (
            PeftMethod("lora", _lora, _lora_settings, lora_family=True, reason="the study's method"),
            PeftMethod(
                "dora",
                lambda t: _lora(t, dora=True),
                lambda t: {**_lora_settings(t), "use_dora": True},
                lora_family=False,
                reason="LoRA with weight decomposition; Unsloth's fast path and vLLM's LoRA loader do not take it",
            ),
            PeftMethod(
                "ln_tuning",
                _ln_tuning,
                lambda t: {"target_modules": ",".join(t.ln_modules)},
                reason="LayerNorm-only tuning: a tiny fraction of the parameters",
            ),
            PeftMethod(
                "ia3",
                _ia3,
                lambda t: {"target_modules": ",".join(t.target_modules)},
                reason="learned rescaling vectors on the targeted projections",
            ),
        )
    },
)
get = METHODS.get
