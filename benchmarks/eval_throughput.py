"""Evaluation items/s and tokens/s: generative (greedy) and log-likelihood scoring of the Phase 3
prompt mix, and what that makes the whole Phase 3 matrix cost for one adapter.

    python benchmarks/eval_throughput.py                      # CPU: the smoke model
    python benchmarks/eval_throughput.py --shape tiny-aya     # GPU: tiny-aya-base's exact shape, bf16

The mix is the matrix's own: the paper profile's benchmarks x the phase3 ladder's data languages
x both templates x the condition's instruction languages, each cell weighted by its published split
size (`items` in experiments/benchmarks/*.yaml: XNLI test 5,010, X-CSQA validation 1,000, SIB-200
test 204, Belebele test 900 per language), so XNLI dominates as it does in the real run. Items are
the shipped fixtures (the hub is offline here), rendered by `langdec.evaluation.prompts` and
tokenised with the smoke tokenizer (Tiny Aya's own is not available offline; ids fit any
vocabulary). Scoring goes through the functions the `evaluate` stage uses: `generate` (batched by
length, left padding) and `choose_options` (logits only at the answer positions), the latter with
the prompt's KV cache shared by its options (the default) and without. The last table projects the
full matrix from the measured rates: condition 2/3/5 (instructions in English and the trained
language) and baseline/condition 1 (all four instruction languages); the target is < 10 minutes.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def phase3_matrix(condition: str, lang: str | None) -> tuple[list[tuple[object, int]], list[tuple[str, str, int]]]:
    """(generative cell, items) and (benchmark, data language, items) of the log-likelihood pass,
    for one adapter of the condition, sized by the published splits."""
    from langdec.core import config
    from langdec.core.paths import experiments_dir
    from langdec.evaluation import benchmarks
    from langdec.evaluation.matrix import cells
    from langdec.orchestration import jobs

    profile = config.load_profile("paper")
    ladder = jobs.load_ladder(experiments_dir() / "ladders" / "phase3.yaml")
    ev = profile.evaluation
    gen = [
        (cell, benchmarks.get(cell.benchmark).hub.items or 0)
        for cell in cells(config.condition(condition), lang, ladder.data_languages, ev.benchmarks, ev.templates)
    ]
    ll = [
        (b, d, benchmarks.get(b).hub.items or 0)
        for b in ev.benchmarks
        for d in ladder.data_languages
        if d in benchmarks.get(b).languages and benchmarks.get(b).task != "numeric"
    ]
    return gen, ll


def prompt_mix(n: int, seed: int = 0):
    """n generative prompts and n log-likelihood items drawn like the condition-2 Phase 3 matrix."""
    import random

    from langdec.evaluation import benchmarks, prompts

    rng = random.Random(seed)
    gen, ll = phase3_matrix("2", "zh")
    pool = {(b, d): benchmarks.load(b, d, source="fixtures") for b, d, _ in ll}
    picks = rng.choices([c for c, _ in gen], weights=[w for _, w in gen], k=n)
    rendered = [
        prompts.render(c.template, c.benchmark, c.instr, rng.choice(pool[(c.benchmark, c.data)])) for c in picks
    ]
    closed = []
    for b, d, _ in rng.choices(ll, weights=[w for *_, w in ll], k=n):
        item = rng.choice(pool[(b, d)])
        closed.append((prompts.render("template1", b, "en", item), list(item.options)))
    return rendered, closed


def main() -> None:
    import torch

    from langdec.core import config
    from langdec.evaluation.inference import choose_options, generate
    from langdec.models.loading import load_base_model, load_tokenizer

    cuda = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=["smoke", "tiny-aya", "small"], default="tiny-aya" if cuda else "smoke")
    parser.add_argument("--items", type=int, default=1024 if cuda else 256)
    parser.add_argument("--batch", type=int, nargs="+", default=[32, 128] if cuda else [16, 64])
    parser.add_argument("--new-tokens", type=int, default=10)
    args = parser.parse_args()
    profile = config.load_profile("smoke")
    tokenizer = load_tokenizer(profile.model, padding_side="left")
    if args.shape == "smoke":
        model = load_base_model(profile.model, quantization="none", precision=profile.training.precision)
    else:
        from train_throughput import _model_dir
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(
            _model_dir(args.shape),
            dtype=torch.bfloat16 if cuda else torch.float32,
            device_map={"": 0} if cuda else None,
        )
    model.eval()
    gen_prompts, closed = prompt_mix(args.items)
    prompt_tokens = sum(len(ids) for ids in tokenizer(gen_prompts)["input_ids"])
    device = torch.cuda.get_device_name(0) if cuda else f"cpu ({os.cpu_count()} cores)"
    print(
        f"model {args.shape} on {device}; {len(gen_prompts)} generative prompts ({prompt_tokens / len(gen_prompts):.0f} tokens "
        f"on average), {len(closed)} log-likelihood items\n"
    )
    print("| scoring | batch | items/s | prompt tokens/s | seconds |")
    print("|---|---|---|---|---|")
    rates = {}
    for batch in args.batch:
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        generate(
            model, tokenizer, gen_prompts, max_new_tokens=args.new_tokens, batch_size=batch, max_prompt_tokens=1024
        )
        if cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        rates[batch] = {"gen": len(gen_prompts) / seconds}
        print(
            f"| generative ({args.new_tokens} new tokens) | {batch} | {len(gen_prompts) / seconds:,.1f} | "
            f"{prompt_tokens / seconds:,.0f} | {seconds:.1f} |",
            flush=True,
        )
        ll_tokens = sum(len(ids) for ids in tokenizer([p for p, _ in closed])["input_ids"])
        options = sum(len(o) for _, o in closed)
        for reuse in (False, True):
            start = time.perf_counter()
            choose_options(
                model,
                tokenizer,
                [p for p, _ in closed],
                [o for _, o in closed],
                batch_size=batch,
                max_prompt_tokens=1024,
                reuse_prefix=reuse,
            )
            if cuda:
                torch.cuda.synchronize()
            seconds = time.perf_counter() - start
            rates[batch]["ll" if reuse else "ll_whole"] = len(closed) / seconds
            how = "prompt once, options from its cache" if reuse else "every option with its whole prompt"
            print(
                f"| log-likelihood, {how} ({options / len(closed):.1f} options/item) | {batch} | {len(closed) / seconds:,.1f} | "
                f"{ll_tokens / seconds:,.0f} | {seconds:.1f} |",
                flush=True,
            )

    print("\n| Phase 3 matrix, one adapter | generative prompts | log-likelihood items | batch | projected minutes |")
    print("|---|---|---|---|---|")
    for label, condition, lang in (
        ("condition 2/3/5 (instructions en + trained)", "2", "zh"),
        ("baseline / condition 1 (all instruction languages)", "baseline", None),
    ):
        gen, ll = phase3_matrix(condition, lang)
        n_gen, n_ll = sum(w for _, w in gen), sum(w for *_, w in ll)
        for batch, r in rates.items():
            minutes = (n_gen / r["gen"] + n_ll / r["ll"]) / 60
            print(f"| {label} | {n_gen:,} | {n_ll:,} | {batch} | {minutes:,.1f} |", flush=True)


if __name__ == "__main__":
    main()
