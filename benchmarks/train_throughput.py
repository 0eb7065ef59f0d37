"""Training tokens/s and peak memory per loss path: plain HF loss vs TRL's fused LM head (vs Unsloth when installed).

    python benchmarks/train_throughput.py                       # CPU: a small shape, LoRA fp32
    python benchmarks/train_throughput.py --shape tiny-aya      # GPU: tiny-aya-base's exact shape, QLoRA NF4

Both backends run the same LoRA model, batch and optimiser; only the loss differs:
  plain    model(input_ids, labels) -> the model's cross-entropy over full (batch, seq, vocab) logits
  fused    TRL's fused LM head (chunked log-probs, no full logits; Triton on CUDA, torch tiles on
           CPU), exactly as SFTTrainer computes the loss
  unsloth  FastLanguageModel's patched model and loss (only when unsloth is importable, CUDA only)
`langdec train` uses `training.loss: auto`, which these figures decided: fused on CUDA, plain on CPU.
Each configuration runs in a fresh subprocess (clean peak memory, clean CUDA context). Peak
memory is torch.cuda.max_memory_allocated on GPU and the child's peak RSS on CPU. Random weights
of the given shape are built from config, so no hub access is needed.
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
    "tiny-aya": dict(hidden_size=2048, num_hidden_layers=36, num_attention_heads=16, num_key_value_heads=4, head_dim=128,
                     intermediate_size=11008, vocab_size=262144, sliding_window=4096, logit_scale=0.0625,
                     layer_types=(["sliding_attention"] * 3 + ["full_attention"]) * 9, max_position_embeddings=8192),
    # the CPU stand-in: the same vocabulary-to-hidden pressure at a size two cores can train
    # the offline smoke model's shape (experiments/profiles/smoke.yaml)
    "smoke": dict(hidden_size=64, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                  intermediate_size=128, vocab_size=4096, sliding_window=128, logit_scale=1.0,
                  layer_types=["sliding_attention"] * 3 + ["full_attention"], max_position_embeddings=1024),
    "small": dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2, head_dim=64,
                  intermediate_size=768, vocab_size=32768, sliding_window=512, logit_scale=0.0625,
                  layer_types=["sliding_attention"] * 3 + ["full_attention"], max_position_embeddings=4096),
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

    cuda = torch.cuda.is_available()
    folder = _model_dir(shape)
    if backend == "unsloth":
        from unsloth import FastLanguageModel

        model, _ = FastLanguageModel.from_pretrained(str(folder), load_in_4bit=quant == "nf4", max_seq_length=8192)
        return FastLanguageModel.get_peft_model(model, r=16, lora_alpha=32, target_modules=TARGETS,
                                                use_gradient_checkpointing="unsloth")
    kwargs = {"dtype": torch.bfloat16 if cuda else torch.float32}
    if quant == "nf4":
        kwargs["quantization_config"] = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                           bnb_4bit_compute_dtype=torch.bfloat16 if cuda else torch.float32,
                                                           bnb_4bit_use_double_quant=True)
    model = AutoModelForCausalLM.from_pretrained(folder, device_map={"": 0} if cuda else None, **kwargs)
    if quant == "nf4":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cuda,
                                                gradient_checkpointing_kwargs={"use_reentrant": False})
    elif cuda:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=TARGETS, task_type="CAUSAL_LM"))
    if backend == "fused":
        from trl.trainer.utils import add_fused_lm_head

        add_fused_lm_head(model.get_base_model(), outputs=("log_probs",))
    return model


def _loss(model, backend: str, ids):
    if backend == "fused":
        out = model(input_ids=ids, labels=ids, fused_lm_head=True)
        return -out.log_probs.sum() / out.label_mask.sum().clamp(min=1)
    return model(input_ids=ids, labels=ids).loss


def one(shape: str, quant: str, backend: str, batch: int, seq: int, steps: int) -> dict:
    import resource

    import torch

    cuda = torch.cuda.is_available()
    model = _load(shape, quant, backend)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    device = "cuda" if cuda else "cpu"
    vocab = SHAPES[shape]["vocab_size"]
    ids = torch.randint(3, vocab, (batch, seq), device=device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if cuda else torch.autocast("cpu", enabled=False)
    try:
        for step in range(steps + 1):  # step 0 warms up (kernels, allocator) and is not timed
            if step == 1:
                if cuda:
                    torch.cuda.synchronize()
                    torch.cuda.reset_peak_memory_stats()
                start = time.perf_counter()
            with autocast:
                loss = _loss(model, backend, ids)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    except torch.OutOfMemoryError:
        return {"status": "out of memory"}
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return {"status": "ok", "tokens_per_s": batch * seq * steps / seconds, "peak_gib": peak, "loss": float(loss)}


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cuda = torch.cuda.is_available()
    parser.add_argument("--shape", choices=sorted(SHAPES), default="tiny-aya" if cuda else "small")
    parser.add_argument("--quant", choices=["nf4", "none"], default="nf4" if cuda else "none")
    parser.add_argument("--seq", type=int, nargs="+", default=[1024, 2048] if cuda else [256, 512])
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 4, 8] if cuda else [1, 4])
    parser.add_argument("--steps", type=int, default=5 if cuda else 3)
    parser.add_argument("--backends", nargs="+", default=["plain", "fused", "unsloth"])
    parser.add_argument("--json", help="also write the rows here")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        backend, batch, seq = args.one.split(",")
        print(json.dumps(one(args.shape, args.quant, backend, int(batch), int(seq), args.steps)))
        return
    _model_dir(args.shape)  # build once, outside the timed children
    import importlib.util

    device = torch.cuda.get_device_name(0) if cuda else f"cpu ({os.cpu_count()} cores)"
    print(f"shape {args.shape}, {args.quant}, LoRA r16 on 7 projections, {args.steps} timed steps, on {device}\n")
    from langdec.train import effective_loss

    print(f"langdec train uses the {effective_loss('auto')} loss on this device (training.loss: auto)\n")
    print(f"| loss | batch x seq | tokens/s | peak {'GiB (CUDA)' if cuda else 'RSS GiB'} | vs plain |")
    print("|---|---|---|---|---|")
    rows = []
    for seq in args.seq:
        for batch in args.batch:
            base = None
            for backend in args.backends:
                if backend == "unsloth" and (not cuda or importlib.util.find_spec("unsloth") is None):
                    row = {"status": "not installed" if cuda else "CUDA only"}
                else:
                    cmd = [sys.executable, __file__, "--shape", args.shape, "--quant", args.quant, "--steps", str(args.steps),
                           "--one", f"{backend},{batch},{seq}"]
                    done = subprocess.run(cmd, capture_output=True, text=True)
                    last = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
                    row = json.loads(last) if last.startswith("{") else {"status": f"error: {done.stderr.strip().splitlines()[-1][:80] if done.stderr.strip() else done.returncode}"}
                row.update(backend=backend, batch=batch, seq=seq)
                rows.append(row)
                if row["status"] == "ok":
                    base = row["tokens_per_s"] if backend == "plain" else base
                    ratio = f"{row['tokens_per_s'] / base:.2f}x" if base else "-"
                    print(f"| {backend} | {batch} x {seq} | {row['tokens_per_s']:,.0f} | {row['peak_gib']:.2f} | {ratio} |", flush=True)
                else:
                    print(f"| {backend} | {batch} x {seq} | {row['status']} | | |", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
