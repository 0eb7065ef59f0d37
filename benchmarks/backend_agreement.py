"""How closely the `openai` evaluation backend, against a running OpenAI-compatible server, agrees with the
`hf` backend on the same weights: greedy outputs and option log-likelihoods, per benchmark, on the fixtures.

    python benchmarks/backend_agreement.py --model-dir DIR --base-url http://127.0.0.1:8000/v1 [--served-model NAME]
        [--adapter EXPORTED_DIR --adapter-model LORA_MODULE_NAME]

DIR is the checkpoint the server serves (for llama.cpp, the folder the GGUF was converted from). With --adapter,
both sides score that adapter: the hf backend loads the folder, the server its LoRA module of that name (as
SERVING.md in a `langdec export` starts it). Prints one row per benchmark: identical greedy outputs (and identical
once a trailing incomplete character is set aside: a server's incremental detokenizer holds back a multi-byte
character cut by max_tokens, where a whole-sequence decode writes U+FFFD), the largest log-likelihood difference,
the same chosen option."""

from __future__ import annotations

import argparse
import time

from langdec.core import config
from langdec.evaluation import backends, benchmarks
from langdec.evaluation.prompts import render


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--served-model", default="{base}")
    parser.add_argument("--max-new-tokens", type=int, default=10)
    parser.add_argument("--no-loglikelihood", action="store_true", help="for servers without prompt log-probabilities")
    parser.add_argument("--adapter", default=None, help="an exported adapter folder, scored on both sides")
    parser.add_argument("--adapter-model", default=None, help="its --lora-modules name on the server")
    args = parser.parse_args()
    if bool(args.adapter) != bool(args.adapter_model):
        parser.error("--adapter and --adapter-model go together")
    base = [f"model.id={args.model_dir}"]
    local = config.load_profile("smoke", base)
    remote = config.load_profile(
        "smoke",
        [
            *base,
            "evaluation.backend=openai",
            f"evaluation.base_url={args.base_url}",
            f"evaluation.served_model={args.served_model}",
            *([f"evaluation.adapter_model={args.adapter_model}"] if args.adapter_model else []),
        ],
    )
    hf = backends.load(local.model, local.evaluation, args.adapter, "baseline")
    served = backends.load(remote.model, remote.evaluation, args.adapter, "baseline")
    print(
        f"{'benchmark':<10} {'items':>5} {'same output':>11} {'same, cut char':>14} {'max |dLL|':>10} {'same choice':>11} "
        f"{'hf s':>6} {'openai s':>8}"
    )
    for name in ("sib200", "xnli", "belebele", "xcsqa", "mgsm"):
        bench = benchmarks.get(name)
        items = [(lang, it) for lang in bench.languages for it in benchmarks.load(name, lang, source="fixtures")]
        prompts = [render("template1", name, "en", it, "study") for _, it in items]
        kwargs = dict(max_new_tokens=args.max_new_tokens, batch_size=8, max_prompt_tokens=1024)
        t0 = time.perf_counter()
        a = hf.generate(prompts, **kwargs)
        t1 = time.perf_counter()
        b = served.generate(prompts, **kwargs)
        t2 = time.perf_counter()
        same = sum(x == y for x, y in zip(a, b))
        same_cut = sum(x.rstrip("\ufffd") == y.rstrip("\ufffd") for x, y in zip(a, b))
        diff = choice = "-"
        closed = [(p, it.options) for p, (_, it) in zip(prompts, items) if it.options]
        if closed and not args.no_loglikelihood:
            ps, opts = [p for p, _ in closed], [o for _, o in closed]
            la = hf.option_logprobs(ps, opts, batch_size=8, max_prompt_tokens=1024)
            t3 = time.perf_counter()
            lb = served.option_logprobs(ps, opts, batch_size=8, max_prompt_tokens=1024)
            t4 = time.perf_counter()
            diff = f"{max(abs(x - y) for ra, rb in zip(la, lb) for x, y in zip(ra, rb)):.2e}"
            choice = f"{sum(ra.index(max(ra)) == rb.index(max(rb)) for ra, rb in zip(la, lb))}/{len(la)}"
            t1, t2 = t1 + (t3 - t2), t2 + (t4 - t3)  # add each side's log-likelihood time
        print(
            f"{name:<10} {len(items):>5} {f'{same}/{len(items)}':>11} {f'{same_cut}/{len(items)}':>14} {diff:>10} {choice:>11} "
            f"{t1 - t0:>6.1f} {t2 - t1:>8.1f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
