"""Base model and tokenizer: Tiny Aya from the hub, or the offline smoke model built locally.

The smoke model is a Cohere2ForCausalLM (Tiny Aya's architecture) with small
dimensions, random weights from a fixed seed, and a byte-level BPE tokenizer
trained in seconds on standard-library code plus every language table and
benchmark fixture, so CJK, Arabic-script and Devanagari text all get merges.
It is saved with `save_pretrained`, so both profiles load through the same
`from_pretrained` code path.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from .atomic import atomic_dir
from .errors import LangdecError
from .paths import project_root, work_dir

if TYPE_CHECKING:
    from .config import ModelConfig

SPECIAL = {"pad": "<pad>", "bos": "<bos>", "eos": "<eos>", "unk": "<unk>"}


def smoke_dir(spec: ModelConfig) -> Path:
    built = {"config": spec.smoke, "vocab": spec.tokenizer_vocab, "version": 1}
    digest = hashlib.sha256(json.dumps(built, sort_keys=True).encode()).hexdigest()[:12]
    return work_dir() / "models" / f"smoke-{digest}"


def _tokenizer_texts(limit_bytes: int = 3_000_000):
    from .corpus import iter_source

    root = project_root()
    for path in sorted((root / "languages").glob("*.yaml")):
        yield path.read_text(encoding="utf-8")
    for path in sorted((root / "experiments" / "benchmarks").rglob("*")):
        if path.is_file() and path.suffix in (".tsv", ".jsonl", ".yaml"):
            yield path.read_text(encoding="utf-8")
    used = 0
    for row in iter_source("stdlib"):
        if used > limit_bytes:
            break
        try:
            text = row.text()
        except UnicodeDecodeError:
            continue
        used += len(row.data)
        yield text


def build_smoke_model(spec: ModelConfig) -> Path:
    """Build (once) and return the folder of the offline smoke model."""
    out = smoke_dir(spec)
    if (out / "config.json").exists():
        return out
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import Cohere2Config, Cohere2ForCausalLM, PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(unk_token=SPECIAL["unk"]))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=spec.tokenizer_vocab,
        special_tokens=list(SPECIAL.values()),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_tokenizer_texts(), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token=SPECIAL["bos"],
        eos_token=SPECIAL["eos"],
        pad_token=SPECIAL["pad"],
        unk_token=SPECIAL["unk"],
    )
    config = Cohere2Config(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
        **spec.smoke,
    )
    torch.manual_seed(0)
    model = Cohere2ForCausalLM(config)
    with atomic_dir(out, replace=True) as tmp:  # langdec's own cache
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return out


def model_source(spec: ModelConfig) -> str:
    return str(build_smoke_model(spec)) if spec.id == "smoke" else spec.id


def _offline_hint(model_id: str, exc: Exception) -> LangdecError:
    return LangdecError(
        f"cannot load {model_id!r} ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}). "
        "Without Hugging Face Hub access, pre-download it on a connected machine "
        f"(`huggingface-cli download {model_id}`), copy the cache and set HF_HUB_OFFLINE=1, "
        "or use the offline profile: --profile smoke"
    )


def load_tokenizer(spec: ModelConfig, *, padding_side: str = "right"):
    """The tokenizer of the profile's model section (`profile.model`)."""
    from transformers import AutoTokenizer

    source = model_source(spec)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, revision=spec.revision, trust_remote_code=spec.trust_remote_code)
    except (OSError, ValueError) as exc:
        raise _offline_hint(source, exc) from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = padding_side
    return tokenizer


def compute_dtype(precision: str):
    import torch

    return {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[precision]


def effective_precision(precision: str, *, second_order: bool = False) -> str:
    """What `precision` means on this machine. Half precision is slow or missing in CPU matmuls, so
    CPU runs fp32. `auto` takes bf16 where the GPU has it (Ampere and newer: no loss scaling, fp32's
    range) and fp16 elsewhere (the study's T4s); a second-order optimiser cannot use fp16's loss
    scaling, so there `auto` falls back to fp32."""
    import torch

    if not torch.cuda.is_available():
        return "fp32"
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        raise LangdecError("training.precision=bf16 needs a GPU with bf16 support (Ampere or newer); use fp16 or auto")
    if precision != "auto":
        return precision
    if torch.cuda.is_bf16_supported():
        return "bf16"
    return "fp32" if second_order else "fp16"


def load_base_model(spec: ModelConfig, *, quantization: str = "none", precision: str = "auto",
                    device: str | None = None, attn_implementation: str | None = None):
    """The base causal LM of the profile's model section (`profile.model`), NF4-quantised when asked
    (bitsandbytes; also runs on CPU). Quantization and precision as training names them (the caller's
    section); effective_precision decides what a precision means on this machine."""
    import torch
    from transformers import AutoModelForCausalLM

    source = model_source(spec)
    precision = effective_precision(precision)
    cuda = torch.cuda.is_available()
    kwargs: dict = {"dtype": compute_dtype(precision), "revision": spec.revision, "trust_remote_code": spec.trust_remote_code}
    if quantization == "nf4":
        try:
            from transformers import BitsAndBytesConfig
            import bitsandbytes  # noqa: F401
        except ImportError:
            raise LangdecError("training.quantization=nf4 needs bitsandbytes: pip install 'langdec[quant]' (or set training.quantization=none)") from None
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=compute_dtype(precision),
            bnb_4bit_use_double_quant=True,
        )
    if device or cuda:
        kwargs["device_map"] = {"": device or 0}
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    try:
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as exc:
        if "bitsandbytes" in str(exc).lower():
            raise LangdecError(f"NF4 loading failed: {exc}") from None
        raise _offline_hint(source, exc) from None
    return model


def device_name() -> str:
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"cpu ({os.cpu_count()} cores)"
