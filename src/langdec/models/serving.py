"""Serving exported adapters with vLLM: whether an adapter folder is one vLLM's LoRA loader takes, and the
command that serves the base model with the adapters as named LoRA modules.

The rules are vLLM's own, read from its source (`vllm/lora/peft_helper.py`, `vllm/config/lora.py`,
the Cohere2 model's packed modules): a plain LoRA (no DoRA, no `modules_to_save`, no bias), a rank no
larger than `--max-lora-rank` (one of 8, 16, 32, 64, 128, 256, 320, 512), target modules among the
projections the model supports LoRA on, and `lora_A`/`lora_B` weights of matching shapes."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

MAX_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)
# Cohere2 in vLLM packs q/k/v into qkv_proj and gate/up into gate_up_proj; LoRA may target each part
COHERE2_LORA_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
WEIGHT = re.compile(r"^base_model\.model\.(?P<module>.+)\.(?P<part>lora_A|lora_B)\.weight$")


def vllm_problems(folder: str | Path) -> list[str]:
    """Why vLLM's LoRA loader would refuse this adapter folder; empty when it takes it."""
    folder = Path(folder)
    try:
        cfg = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        return [f"{folder}/adapter_config.json: {exc}"]
    problems = []
    if cfg.get("peft_type") != "LORA":
        problems.append(f"peft_type {cfg.get('peft_type')!r}: vLLM serves LoRA adapters only")
        return problems
    if cfg.get("use_dora"):
        problems.append("use_dora: vLLM does not support DoRA")
    if cfg.get("modules_to_save"):
        problems.append(f"modules_to_save {cfg['modules_to_save']}: vLLM only takes None")
    if cfg.get("bias", "none") != "none":
        problems.append(f"bias {cfg['bias']!r}: vLLM needs --enable-lora-bias for that; langdec trains bias='none'")
    r = int(cfg.get("r", 0))
    if not 0 < r <= MAX_LORA_RANKS[-1]:
        problems.append(f"r {r}: vLLM's largest --max-lora-rank is {MAX_LORA_RANKS[-1]}")
    targets = cfg.get("target_modules") or []
    targets = [targets] if isinstance(targets, str) else list(targets)
    unsupported = sorted(set(targets) - set(COHERE2_LORA_MODULES))
    if unsupported:
        problems.append(
            f"target_modules {unsupported}: not among the modules vLLM's Cohere2 takes LoRA on ({', '.join(COHERE2_LORA_MODULES)})"
        )
    problems += _weight_problems(folder, r, set(targets))
    return problems


def _weight_problems(folder: Path, r: int, targets: set[str]) -> list[str]:
    from safetensors import safe_open

    path = folder / "adapter_model.safetensors"
    if not path.exists():
        return [f"{path.name} missing: vLLM reads safetensors weights"]
    problems = []
    shapes: dict[str, dict[str, tuple[int, ...]]] = {}
    with safe_open(str(path), framework="pt") as f:
        for key in f.keys():
            match = WEIGHT.match(key)
            if not match:
                problems.append(f"weight {key!r}: not a lora_A/lora_B weight vLLM can place")
                continue
            if match["module"].rsplit(".", 1)[-1] not in targets:
                problems.append(f"weight {key!r}: its module is not in target_modules")
            shapes.setdefault(match["module"], {})[match["part"]] = tuple(f.get_slice(key).get_shape())
    for module, parts in sorted(shapes.items()):
        a, b = parts.get("lora_A"), parts.get("lora_B")
        if a is None or b is None:
            problems.append(f"{module}: lora_A and lora_B must both be present")
        elif a[0] != r or b[1] != r:
            problems.append(f"{module}: lora_A {a} / lora_B {b} do not have rank {r}")
    if not shapes:
        problems.append(f"{path.name}: no LoRA weights")
    return problems


def max_lora_rank(r: int) -> int:
    return next(m for m in MAX_LORA_RANKS if m >= r)


def vllm_command(base_model: str, adapters: dict[str, str | Path], ranks: list[int]) -> str:
    """`vllm serve` for the base model with each adapter as a named LoRA module (NAME=DIR)."""
    modules = " ".join(shlex.quote(f"{name}={path}") for name, path in sorted(adapters.items()))
    return (
        f"vllm serve {shlex.quote(base_model)} --enable-lora --max-lora-rank {max_lora_rank(max(ranks, default=8))} "
        f"--max-loras {max(1, min(len(adapters), 8))} --lora-modules {modules}"
    )
