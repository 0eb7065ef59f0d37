"""Training tokens/s and peak memory per training path: the plain HF baseline, the fused losses,
the project's own path (`langdec`), and Unsloth when installed.

    python benchmarks/train_throughput.py                            # CPU: a small shape, LoRA fp32
    python benchmarks/train_throughput.py --shape tiny-aya           # GPU: tiny-aya-base's exact shape, QLoRA NF4
    python benchmarks/train_throughput.py --lengths lognormal        # files of code-like lengths: padded vs packed
    python benchmarks/train_throughput.py --lengths data.parquet     # ... with the lengths of real files (token_count)

Every path runs the same LoRA model, optimiser and token stream; they differ in the loss and layout:
  plain    the model's own cross-entropy over full (batch, seq, vocab) logits, one window per row
           padded to the batch's longest (what SFTTrainer does without packing): the HF baseline
  fused    TRL's fused LM head (chunked log-probs, no full logits; Triton on CUDA, torch tiles on CPU)
  liger    Liger Kernel's fused linear cross-entropy (CUDA, when liger-kernel is installed)
  langdec  what `langdec train` runs with training.packing=true: the `training.loss: auto` choice
           (fused on CUDA, plain on CPU) on packed rows, windows laid end to end with position ids
           restarting per file (flash-attention's varlen kernels when installed, else SDPA with
           transformers' block-diagonal mask)
  unsloth  FastLanguageModel's patched model and loss (CUDA, when unsloth is installed)
`--lengths full` (the default) fills every row, as the GPU anchor in RESEARCH.md did, so packing
changes nothing; `lognormal` or a file's lengths show what padding costs and packing saves.
tokens/s counts trained (non-padding) tokens only. Each configuration runs in a fresh
subprocess (clean peak memory, clean CUDA context); peak memory is torch.cuda.max_memory_allocated
on GPU and the child's peak RSS on CPU. Random weights of the shape are built from config, so no
hub access is needed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHAPES = {
    # tiny-aya-base: hidden 2048, 36 layers, 16 heads x 128, 4 KV heads, MLP 11008, vocab 262,144 tied, 3 sliding : 1 full
    "tiny-aya": dict(
        hidden_size=2048,
        num_hidden_layers=36,
        num_attention_heads=16,
        num_key_value_heads=4,
        head_dim=128,
        intermediate_size=11008,
        vocab_size=262144,
        sliding_window=4096,
        logit_scale=0.0625,
        layer_types=(["sliding_attention"] * 3 + ["full_attention"]) * 9,
        max_position_embeddings=8192,
    ),
    # the CPU stand-in: the same vocabulary-to-hidden pressure at a size two cores can train
    # the offline smoke model's shape (experiments/profiles/smoke.yaml)
    "smoke": dict(
        hidden_size=64,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        intermediate_size=128,
        vocab_size=4096,
        sliding_window=128,
        logit_scale=1.0,
        layer_types=["sliding_attention"] * 3 + ["full_attention"],
        max_position_embeddings=1024,
    ),
    "small": dict(
        hidden_size=256,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=64,
        intermediate_size=768,
        vocab_size=32768,
        sliding_window=512,
        logit_scale=0.0625,
        layer_types=["sliding_attention"] * 3 + ["full_attention"],
        max_position_embeddings=4096,
    ),
}
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _model_dir(shape: str) -> Path:
    """Random weights of the shape, saved once (NF4 loading needs a checkpoint to quantise)."""
    import torch
    from transformers import Cohere2Config, Cohere2ForCausalLM

    folder = Path(os.environ.get("LANGDEC_BENCH_DIR", tempfile.gettempdir())) / f"langdec-bench-{shape}"
    if (folder / "config.json").exists():
        return folder
    config = Cohere2Config(tie_word_embeddings=True, pad_token_id=0, bos_token_id=1, eos_token_id=2, **SHAPES[shape])
    with torch.device("cpu"):
        torch.manual_seed(0)
        model = Cohere2ForCausalLM(config).to(torch.bfloat16 if shape == "tiny-aya" else torch.float32)
    model.save_pretrained(folder)
    return folder


def _load(shape: str, quant: str, backend: str):
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    from langdec.training.backend import packed_attention

    cuda = torch.cuda.is_available()
    folder = _model_dir(shape)
    if backend == "unsloth":
        from unsloth import FastLanguageModel

        model, _ = FastLanguageModel.from_pretrained(str(folder), load_in_4bit=quant == "nf4", max_seq_length=8192)
        return FastLanguageModel.get_peft_model(
            model, r=16, lora_alpha=32, target_modules=TARGETS, use_gradient_checkpointing="unsloth"
        )
    kwargs = {"dtype": torch.bfloat16 if cuda else torch.float32}
    if backend == "langdec" and packed_attention(True, _precision()):
        kwargs["attn_implementation"] = packed_attention(True, _precision())
    if quant == "nf4":
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=torch.bfloat16 if cuda else torch.float32,
            bnb_4bit_use_double_quant=True,
        )
    model = AutoModelForCausalLM.from_pretrained(folder, device_map={"": 0} if cuda else None, **kwargs)
    model.config.use_cache = False
    if quant == "nf4":
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=cuda, gradient_checkpointing_kwargs={"use_reentrant": False}
        )
    elif cuda:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model = get_peft_model(
        model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=TARGETS, task_type="CAUSAL_LM")
    )
    if _loss_name(backend) == "fused":
        from trl.trainer.utils import add_fused_lm_head

        add_fused_lm_head(model.get_base_model(), outputs=("log_probs",))
    return model


def _precision() -> str:
    """The benchmark trains in bf16 on a GPU (as `training.precision: auto` does on Ampere and newer), fp32 on CPU."""
    import torch

    return "bf16" if torch.cuda.is_available() else "fp32"


def _loss_name(backend: str) -> str:
    if backend == "langdec":
        from langdec.models.effective import effective_loss

        return effective_loss("auto")
    return backend


def _loss(model, backend: str, batch: dict):
    name = _loss_name(backend)
    if name == "fused":
        out = model(**batch, fused_lm_head=True)
        return -out.log_probs.sum() / out.label_mask.sum().clamp(min=1)
    if name == "liger":
        from liger_kernel.transformers.fused_linear_cross_entropy import LigerFusedLinearCrossEntropyLoss

        base = model.get_base_model()
        labels = batch["labels"]
        hidden = base.model(**{k: v for k, v in batch.items() if k != "labels"}, use_cache=False).last_hidden_state
        # Cohere2 scales its logits; scaling the hidden states instead is the same product
        hidden = hidden[:, :-1] * base.config.logit_scale
        return LigerFusedLinearCrossEntropyLoss()(
            base.lm_head.weight, hidden.reshape(-1, hidden.shape[-1]), labels[:, 1:].reshape(-1)
        )
    return model(**batch).loss


# --------------------------------------------------------------------------- token streams
def window_lengths(spec: str, seq: int, tokens: int, seed: int = 0) -> list[int]:
    """Window lengths (each <= seq) totalling about `tokens`: every row full, files of log-normal
    length (a stand-in: median 400 tokens), or the lengths of real files (a Parquet/JSONL file with a
    token_count column). A file longer than seq is cut into windows as `langdec train` does."""
    import random

    rng = random.Random(seed)
    if spec == "full":
        return [seq] * max(1, tokens // seq)
    if spec == "lognormal":
        draw = lambda: max(8, int(rng.lognormvariate(5.99, 0.9)))  # e^5.99 ~ 400
    else:
        import pandas as pd

        path = Path(spec)
        frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_json(path, lines=True)
        if "token_count" not in frame:
            raise SystemExit(f"{path}: no token_count column (columns: {', '.join(frame.columns)})")
        counts = [int(c) for c in frame["token_count"] if int(c) > 1]
        draw = lambda: rng.choice(counts)
    from langdec.training.tokenize import windows

    out: list[int] = []
    total = 0
    while total < tokens:
        cut = [len(w) for w in windows(range(draw()), seq)]  # the stage's own cut: lengths only
        out += cut
        total += sum(cut)
    return out


def steps_of(lengths: list[int], batch: int, seq: int, packed: bool, vocab: int, seed: int = 0) -> list[list[dict]]:
    """The step-by-step features of the token stream: one window per row in stream order (SFTTrainer
    without packing), or the project's packed rows (langdec.packing, best-fit decreasing)."""
    import random

    from langdec.training.packing import packed_rows

    rng = random.Random(seed)
    windows = [[rng.randrange(3, vocab) for _ in range(n)] for n in lengths]
    if packed:
        cols = packed_rows(windows, seq)
        rows = [{"input_ids": ids, "seq_lengths": ls} for ids, ls in zip(cols["input_ids"], cols["seq_lengths"])]
    else:
        rows = [{"input_ids": w} for w in windows]
    return [rows[i : i + batch] for i in range(0, len(rows), batch)]


def collator(packed: bool):
    """The collator `langdec train` uses for that layout."""
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    from langdec.training.backend import packed_attention
    from langdec.training.packing import PackedCollator

    if packed:
        return PackedCollator(0, flatten=packed_attention(True, _precision()) == "flash_attention_2")
    return DataCollatorForLanguageModeling(pad_token_id=0)


def one(shape: str, quant: str, backend: str, batch: int, seq: int, steps: int, lengths_spec: str = "full") -> dict:
    import resource

    import torch

    cuda = torch.cuda.is_available()
    model = _load(shape, quant, backend)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    device = "cuda" if cuda else "cpu"
    vocab = SHAPES[shape]["vocab_size"]
    # the same windows for every path: (steps + 1) full padded steps' worth, the first step a warm-up
    packed = backend == "langdec"
    plan = steps_of(window_lengths(lengths_spec, seq, (steps + 1) * batch * seq), batch, seq, packed, vocab)
    collate = collator(packed)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else torch.autocast("cpu", enabled=False)
    targets = 0
    try:
        for step, features in enumerate(plan):
            inputs = {k: v.to(device) if hasattr(v, "to") else v for k, v in collate(features).items()}
            if step == 1:  # step 0 warms up (kernels, allocator) and is not timed
                if cuda:
                    torch.cuda.synchronize()
                    torch.cuda.reset_peak_memory_stats()
                start = time.perf_counter()
            if step >= 1:
                targets += int((inputs["labels"][:, 1:] != -100).sum())
            with autocast:
                loss = _loss(model, backend, inputs)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    except torch.OutOfMemoryError:
        return {"status": "out of memory"}
    peak = (
        torch.cuda.max_memory_allocated() / 2**30
        if cuda
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    )
    return {
        "status": "ok",
        "tokens_per_s": targets / seconds,
        "peak_gib": peak,
        "loss": float(loss),
        "steps": len(plan) - 1,
    }


def _available(backend: str, cuda: bool) -> str | None:
    """Why a path cannot run here, or None."""
    import importlib.util

    needs = {"unsloth": "unsloth", "liger": "liger_kernel"}.get(backend)
    if needs is None:
        return None
    if not cuda:
        return "CUDA only"
    return None if importlib.util.find_spec(needs) else "not installed"


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cuda = torch.cuda.is_available()
    parser.add_argument("--shape", choices=sorted(SHAPES), default="tiny-aya" if cuda else "small")
    parser.add_argument("--quant", choices=["nf4", "none"], default="nf4" if cuda else "none")
    parser.add_argument("--seq", type=int, nargs="+", default=[1024, 2048] if cuda else [256, 512])
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 4, 8] if cuda else [1, 4])
    parser.add_argument("--steps", type=int, default=5 if cuda else 3)
    parser.add_argument("--lengths", default="full", help="full | lognormal | PATH (Parquet/JSONL with token_count)")
    parser.add_argument("--backends", nargs="+", default=["plain", "fused", "liger", "langdec", "unsloth"])
    parser.add_argument("--json", help="also write the rows here")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        backend, batch, seq = args.one.split(",")
        print(json.dumps(one(args.shape, args.quant, backend, int(batch), int(seq), args.steps, args.lengths)))
        return
    _model_dir(args.shape)  # build once, outside the timed children
    device = torch.cuda.get_device_name(0) if cuda else f"cpu ({os.cpu_count()} cores)"
    from langdec.models.effective import effective_loss
    from langdec.training.backend import packed_attention

    print(
        f"shape {args.shape}, {args.quant}, LoRA r16 on 7 projections, {args.steps} timed steps of the plain layout, "
        f"lengths {args.lengths}, on {device}"
    )
    print(
        f"langdec path here: {effective_loss('auto')} loss on packed rows, attention {packed_attention(True, _precision()) or 'sdpa'}\n"
    )
    for seq in args.seq:
        sample = window_lengths(args.lengths, seq, 64 * seq)
        for batch in args.batch:
            pad = [
                1 - sum(sample) / sum(collator(p)(f)["input_ids"].numel() for f in steps_of(sample, batch, seq, p, 100))
                for p in (False, True)
            ]
            print(f"seq {seq}, batch {batch}: padding {pad[0]:.0%} of the unpacked rows, {pad[1]:.0%} packed")
    print(f"\n| path | batch x seq | tokens/s | peak {'GiB (CUDA)' if cuda else 'RSS GiB'} | vs plain |")
    print("|---|---|---|---|---|")
    rows = []
    for seq in args.seq:
        for batch in args.batch:
            base = None
            for backend in args.backends:
                why = _available(backend, cuda)
                if why:
                    row = {"status": why}
                else:
                    cmd = [
                        sys.executable,
                        __file__,
                        "--shape",
                        args.shape,
                        "--quant",
                        args.quant,
                        "--steps",
                        str(args.steps),
                        "--lengths",
                        args.lengths,
                        "--one",
                        f"{backend},{batch},{seq}",
                    ]
                    done = subprocess.run(cmd, capture_output=True, text=True)
                    last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
                    row = (
                        json.loads(last)
                        if last.startswith("{")
                        else {
                            "status": f"error: {done.stderr.strip().splitlines()[-1][:80] if done.stderr.strip() else done.returncode}"
                        }
                    )
                row.update(backend=backend, batch=batch, seq=seq, lengths=args.lengths)
                rows.append(row)
                if row["status"] == "ok":
                    base = row["tokens_per_s"] if backend == "plain" else base
                    ratio = f"{row['tokens_per_s'] / base:.2f}x" if base else "-"
                    print(
                        f"| {backend} | {batch} x {seq} | {row['tokens_per_s']:,.0f} | {row['peak_gib']:.2f} | {ratio} |",
                        flush=True,
                    )
                else:
                    print(f"| {backend} | {batch} x {seq} | {row['status']} | | |", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
