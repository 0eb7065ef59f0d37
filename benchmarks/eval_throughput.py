"""Evaluation items/s and tokens/s: generative (greedy) and log-likelihood scoring of the real prompt mix.

    python benchmarks/eval_throughput.py                      # CPU: the smoke model
    python benchmarks/eval_throughput.py --shape tiny-aya     # GPU: tiny-aya-base's exact shape, bf16

The prompts are the evaluation matrix's own: every shipped benchmark fixture in every
data language, both templates, instructions in English and in the data language, rendered
by `langdec.evaluation.prompts` and tokenised with the smoke tokenizer (Tiny Aya's own is
not available offline; ids fit any vocabulary). Scoring goes through the functions the
`evaluate` stage uses: `generate` (batched by length, left padding) and `choose_options`
(logits only at the answer positions), the latter both with the prompt's KV cache shared by
its options (the default) and without. The matrix is shuffled and repeated to `--items` prompts.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def prompt_mix(n: int):
    """The matrix's prompts, interleaved across benchmarks so any prefix of the list is a mix."""
    from langdec.evaluation import benchmarks, prompts

    rendered, closed = [], []
    for name in ("xnli", "sib200", "belebele", "xcsqa", "mgsm"):
        for lang in benchmarks.get(name).languages:
            for item in benchmarks.load(name, lang, source="fixtures"):
                for template in ("template1", "template2"):
                    for instr in sorted({"en", lang}):
                        rendered.append(prompts.render(template, name, instr, item))
                if item.options:
                    closed.append((prompts.render("template1", name, "en", item), list(item.options)))
    import random

    random.Random(0).shuffle(rendered)
    random.Random(0).shuffle(closed)
    reps = max(1, -(-n // len(rendered)))
    return (rendered * reps)[:n], (closed * max(1, -(-n // len(closed))))[:n]


def main() -> None:
    import torch

    from langdec import config
    from langdec.evaluation.inference import choose_options, generate
    from langdec.model import load_base_model, load_tokenizer

    cuda = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=["smoke", "tiny-aya", "small"], default="tiny-aya" if cuda else "smoke")
    parser.add_argument("--items", type=int, default=1024 if cuda else 256)
    parser.add_argument("--batch", type=int, nargs="+", default=[32, 128] if cuda else [16, 64])
    parser.add_argument("--new-tokens", type=int, default=10)
    args = parser.parse_args()
    profile = config.load_profile("smoke")
    tokenizer = load_tokenizer(profile, padding_side="left")
    if args.shape == "smoke":
        model = load_base_model(profile, quantization="none")
    else:
        from transformers import AutoModelForCausalLM

        from train_throughput import _model_dir

        model = AutoModelForCausalLM.from_pretrained(_model_dir(args.shape), dtype=torch.bfloat16 if cuda else torch.float32,
                                                     device_map={"": 0} if cuda else None)
    model.eval()
    gen_prompts, closed = prompt_mix(args.items)
    prompt_tokens = sum(len(ids) for ids in tokenizer(gen_prompts)["input_ids"])
    device = torch.cuda.get_device_name(0) if cuda else f"cpu ({os.cpu_count()} cores)"
    print(f"model {args.shape} on {device}; {len(gen_prompts)} generative prompts ({prompt_tokens / len(gen_prompts):.0f} tokens "
          f"on average), {len(closed)} log-likelihood items\n")
    print("| scoring | batch | items/s | prompt tokens/s | seconds |")
    print("|---|---|---|---|---|")
    for batch in args.batch:
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        generate(model, tokenizer, gen_prompts, max_new_tokens=args.new_tokens, batch_size=batch, max_prompt_tokens=1024)
        if cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        print(f"| generative ({args.new_tokens} new tokens) | {batch} | {len(gen_prompts) / seconds:,.1f} | "
              f"{prompt_tokens / seconds:,.0f} | {seconds:.1f} |", flush=True)
        ll_tokens = sum(len(ids) for ids in tokenizer([p for p, _ in closed])["input_ids"])
        options = sum(len(o) for _, o in closed)
        for reuse in (False, True):
            start = time.perf_counter()
            choose_options(model, tokenizer, [p for p, _ in closed], [o for _, o in closed], batch_size=batch,
                           max_prompt_tokens=1024, reuse_prefix=reuse)
            if cuda:
                torch.cuda.synchronize()
            seconds = time.perf_counter() - start
            how = "prompt once, options from its cache" if reuse else "every option with its whole prompt"
            print(f"| log-likelihood, {how} ({options / len(closed):.1f} options/item) | {batch} | {len(closed) / seconds:,.1f} | "
                  f"{ll_tokens / seconds:,.0f} | {seconds:.1f} |", flush=True)


if __name__ == "__main__":
    main()
