"""What a training setting becomes on this machine (optimizer, loss, precision), and memory measured
the same way on CPU and GPU. Run keys are built from these, so a key says what actually ran."""

from __future__ import annotations

import resource
import typing

from langdec.core.config import TrainingBackend

# the training backends by name (training.backend's values): hf (transformers + peft + TRL) and unsloth (its patched
# LoRA path, CUDA only); auto takes unsloth where it is installed, on CUDA, for LoRA without packing
TRAINING_BACKENDS: tuple[str, ...] = typing.get_args(TrainingBackend)


def effective_optimizer(name: str) -> str:
    """Paged optimizers live in CUDA memory; on CPU the same recipe uses plain AdamW."""
    import torch

    return name if torch.cuda.is_available() or not name.startswith("paged") else "adamw_torch"


def effective_loss(name: str) -> str:
    """By measurement (benchmarks/train_throughput.py): TRL's fused head saves the logits' memory on
    CUDA, but its CPU fallback is slower and larger than the plain loss, so `auto` picks per device."""
    import torch

    return name if name != "auto" else ("fused" if torch.cuda.is_available() else "plain")


def peak_memory_mb() -> float:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def quantized_layers(model) -> str:
    """What the loaded model holds, whatever was asked: its bitsandbytes 4-bit linear layers by quant type
    ("nf4:28"), or "none". Recorded on the run, so a run says whether NF4 really ran."""
    import sys

    bnb = sys.modules.get("bitsandbytes")  # never imported: the model has no 4-bit layer (and importing it is slow)
    if bnb is None:
        return "none"
    kinds: dict[str, int] = {}
    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):  # peft's LoRA wrapper holds one as base_layer: counted once
            kind = str(getattr(module.weight, "quant_type", "4bit"))
            kinds[kind] = kinds.get(kind, 0) + 1
    return ",".join(f"{kind}:{n}" for kind, n in sorted(kinds.items())) or "none"


def scoring_quantization(quantization: str, allow_cpu: bool = False) -> str:
    """The base model's quantization when an adapter is scored in this process: the training's (the adapter was
    trained on it) on a GPU; full precision on CPU, where bitsandbytes is slow and scoring needs no memory
    saving, unless training.allow_cpu asks for the paper's NF4 path there too."""
    import torch

    return quantization if torch.cuda.is_available() or allow_cpu else "none"
