"""The checks of a profile that need the stages: each name a stage owns (PEFT method, optimiser, benchmark,
prompt template set, code benchmark, evaluation and translation backend) is looked up in that stage's registry,
and the rules that hang on what a name stands for (LoRA-only settings, an optimiser fp16 cannot run, a wording
for every template and benchmark) are checked against it. `config.load_profile` runs `check_profile` after each
section has checked its own values, so a bad name fails when the profile loads, before any model does."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from langdec.core.config import EvaluationConfig, Profile, TrainingConfig, check_base_url
from langdec.core.errors import LangdecError
from langdec.core.schema import Key
from langdec.data.translation import backends as translation_backends
from langdec.evaluation import backends as evaluation_backends
from langdec.evaluation import benchmarks, code, prompts
from langdec.models import peft_methods
from langdec.training import optimizers

T = TypeVar("T")


def check_profile(profile: Profile, where: str) -> None:
    root = Key(where)
    _check_training(profile.training, root.child("training"))
    _check_evaluation(profile.evaluation, root.child("evaluation"))
    _lookup(root.child("translation").child("backend"), translation_backends.BACKENDS.get, profile.translation.backend)


def _lookup(key: Key, find: Callable[[str], T], name: str) -> T:
    """The stage's own lookup; its error, which lists the valid names, gets the file and key in front."""
    try:
        return find(name)
    except LangdecError as exc:
        raise LangdecError(f"{key.root}: {key.path}: {exc}") from None


def _check_training(t: TrainingConfig, key: Key) -> None:
    choice = _lookup(key.child("optimizer"), optimizers.resolve, t.optimizer)
    method = _lookup(key.child("peft_method"), peft_methods.get, t.peft_method)
    if not method.lora_family and t.fourier_lambda > 0:
        raise key.child("fourier_lambda").refuse(f"penalises LoRA updates; {t.peft_method} has none (set it to 0)")
    if not method.lora_family and t.backend == "unsloth":
        raise key.child("backend").refuse(
            f"unsloth trains LoRA only; {t.peft_method} needs training.backend hf or auto"
        )
    if choice.needs_graph and t.precision == "fp16":
        raise LangdecError(
            f"{key.root}: {t.optimizer} differentiates the gradient again, which fp16 loss scaling does "
            "not support; use training.precision=bf16 or fp32"
        )


def _check_evaluation(ev: EvaluationConfig, key: Key) -> None:
    for name in ev.code_benchmarks:
        _lookup(key.child("code_benchmarks"), code.get, name)
    for name in ev.benchmarks:
        _lookup(key.child("benchmarks"), benchmarks.get, name)
    _lookup(key.child("prompts"), prompts.get_set, ev.prompts)
    _lookup(key.child("backend"), evaluation_backends.BACKENDS.get, ev.backend)
    if ev.backend != "hf":  # a served model: the in-process one needs no address
        check_base_url(ev.base_url, key.child("base_url"))
        if not ev.base_url:
            raise key.child("backend").refuse(f"{ev.backend} needs evaluation.base_url (e.g. http://localhost:8000/v1)")
    for template in ev.templates:
        for bench in ev.benchmarks:
            prompts.resolve(
                ev.prompts, template, bench, "en"
            )  # a missing template or wording fails before any model loads
