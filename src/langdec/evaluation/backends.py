"""Evaluation model backends, by name (`evaluation.backend`): what the evaluate stage scores with.

Both answer the same two questions: greedy (or sampled) continuations of prompts, and the
log-probability of each option after its prompt. `hf` runs the model in this process
(transformers + peft, the study's path); `openai` asks any OpenAI-compatible completions endpoint
(vLLM, SGLang, llama.cpp's server, `transformers serve`) that serves the base model, with adapters as
named LoRA modules. The local tokenizer cuts prompts the same way for both, so a long prompt is the
same prompt whichever backend scores it."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from tqdm import tqdm

from langdec.core.errors import LangdecError
from langdec.core.registry import Registry
from langdec.core.urls import redact_url, scrub
from langdec.evaluation import inference

if TYPE_CHECKING:
    from langdec.core.config import EvaluationConfig, ModelConfig


class ScoringModel(Protocol):
    name: str

    def generate(
        self,
        prompts: Sequence[str],
        *,
        max_new_tokens: int,
        batch_size: int,
        max_prompt_tokens: int,
        progress: bool = False,
        samples: int | None = None,
        temperature: float = 0.0,
        stop: Sequence[str] | None = None,
        truncation_side: str = "right",
    ) -> list: ...

    def option_logprobs(
        self,
        prompts: Sequence[str],
        options: Sequence[Sequence[str]],
        *,
        batch_size: int,
        max_prompt_tokens: int,
        progress: bool = False,
        truncation_side: str = "right",
    ) -> list[list[float]]: ...


def choose_options(
    model: ScoringModel, prompts: Sequence[str], options: Sequence[Sequence[str]], **kwargs
) -> list[int]:
    """Index of the most likely option per prompt (sum of option-token log-probs)."""
    scores = model.option_logprobs(prompts, options, **kwargs)
    return [max(range(len(s)), key=s.__getitem__) for s in scores]


@dataclass
class HFModel:
    """The model in this process: batched by length, left-padded, one prompt pass per item (inference.py)."""

    model: Any
    tokenizer: Any
    name: str = "hf"

    def generate(self, prompts, **kwargs):
        return inference.generate(self.model, self.tokenizer, prompts, **kwargs)

    def option_logprobs(self, prompts, options, **kwargs):
        return inference.option_logprobs(self.model, self.tokenizer, prompts, options, **kwargs)


class _Refused(Exception):
    """A request the server answered with an error status (a probe may try another form)."""


class OpenAIModel:
    """An OpenAI-compatible completions endpoint, through the official `openai` client.

    Generation sends the prompt text (cut by the local tokenizer first when it is too long, then
    decoded); log-likelihood sends token ids (prompt + option) with `echo` and `logprobs`, and sums
    the option tokens' prompt log-probabilities, which vLLM and llama.cpp return. A server that
    returns none gets a clear error naming the setting to turn off."""

    name = "openai"

    def __init__(
        self,
        tokenizer,
        *,
        base_url: str,
        model: str,
        api_key_env: str = "OPENAI_API_KEY",
        timeout: float = 120.0,
        concurrency: int = 4,
    ) -> None:
        from openai import OpenAI

        self.tokenizer = tokenizer
        self.model = model
        self.base_url = base_url
        self.concurrency = max(1, concurrency)
        self._ids_ok: bool | None = None  # whether the server takes token-id prompts; learned on the first request
        # the key is read from the environment by name and never recorded; local servers take any value
        self.client = OpenAI(
            base_url=base_url, api_key=os.environ.get(api_key_env) or "not-needed", timeout=timeout, max_retries=2
        )

    def _prompt_text(self, ids: list[int], text: str, max_prompt_tokens: int) -> str:
        """The prompt as sent: the text itself unless the cut shortened it, else the kept tokens decoded."""
        if len(ids) < max_prompt_tokens:
            return text  # shorter than the limit: nothing was cut
        full = self.tokenizer(text, add_special_tokens=True)["input_ids"]
        if len(full) <= max_prompt_tokens:
            return text
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def _map(self, fn: Callable[[int], Any], n: int, desc: str, progress: bool) -> list:
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(tqdm(pool.map(fn, range(n)), total=n, desc=desc, disable=not progress, leave=False))

    def generate(
        self,
        prompts,
        *,
        max_new_tokens,
        batch_size,
        max_prompt_tokens,
        progress=False,
        samples=None,
        temperature=0.0,
        stop=None,
        truncation_side="right",
    ):
        encoded = inference.encode_prompts(
            self.tokenizer, prompts, max_prompt_tokens=max_prompt_tokens, truncation_side=truncation_side
        )
        per_prompt = samples or 1
        sampling = samples is not None and temperature > 0

        def one(i: int) -> list[str]:
            options: dict[str, Any] = (
                {"temperature": temperature, "top_p": 0.95, "n": per_prompt} if sampling else {"temperature": 0.0}
            )
            if stop:
                options["stop"] = list(stop)[
                    :4
                ]  # the API takes at most four; the caller still cuts at every stop string
            out = self._call(
                prompt=self._prompt_text(encoded[i], prompts[i], max_prompt_tokens),
                max_tokens=max_new_tokens,
                **options,
            )
            return [c.text for c in sorted(out.choices, key=lambda c: c.index)]

        outputs = self._map(one, len(prompts), "generate", progress)
        if samples is None:
            return [o[0] for o in outputs]
        return [o if sampling else o * per_prompt for o in outputs]

    def option_logprobs(
        self, prompts, options, *, batch_size, max_prompt_tokens, progress=False, truncation_side="right"
    ):
        encoded = inference.encode_prompts(
            self.tokenizer, prompts, max_prompt_tokens=max_prompt_tokens, truncation_side=truncation_side
        )
        texts = [self._prompt_text(ids, text, max_prompt_tokens) for ids, text in zip(encoded, prompts)]
        pairs = [(p, j, o) for p, opts in enumerate(options) for j, o in enumerate(opts)]
        flat = self._map(
            lambda k: self._option_logprob(encoded[pairs[k][0]], texts[pairs[k][0]], pairs[k][2]),
            len(pairs),
            "log-likelihood",
            progress,
        )
        scores = [[float("-inf")] * len(o) for o in options]
        for (p, j, _), value in zip(pairs, flat):
            scores[p][j] = value
        return scores

    def _option_logprob(self, prompt_ids: list[int], prompt_text: str, option: str) -> float:
        """Token ids where the server takes them (vLLM, SGLang): exactly the ids the hf backend scores.
        Otherwise (llama.cpp's server) the text, and the option's tokens are those the echo places at or
        after the prompt's end (`text_offset`)."""
        option_ids = self.tokenizer(" " + option, add_special_tokens=False)["input_ids"]
        if self._ids_ok is not False:
            try:
                out = self._call(
                    prompt=list(prompt_ids) + list(option_ids),
                    max_tokens=1,
                    temperature=0.0,
                    echo=True,
                    logprobs=1,
                    quiet=True,
                )
                values = self._prompt_logprobs(out)
                self._ids_ok = True
                return float(sum(values[len(prompt_ids) : len(prompt_ids) + len(option_ids)]))
            except _Refused:
                if self._ids_ok:
                    raise
                self._ids_ok = False  # this server takes text prompts only
        out = self._call(prompt=prompt_text + " " + option, max_tokens=1, temperature=0.0, echo=True, logprobs=1)
        values = self._prompt_logprobs(out)
        offsets = out.choices[0].logprobs.text_offset or []
        # the echo covers the prompt and the option; the generated token comes after both
        return float(
            sum(v for v, at in zip(values, offsets) if len(prompt_text) <= at < len(prompt_text) + 1 + len(option))
        )

    def _prompt_logprobs(self, out) -> list[float]:
        got = out.choices[0].logprobs
        values = getattr(got, "token_logprobs", None) if got is not None else None
        if not values:
            raise LangdecError(
                f"{redact_url(self.base_url)}: the server returned no prompt log-probabilities for `echo` + "
                "`logprobs` (vLLM and llama.cpp do; `transformers serve` does not); score with "
                "evaluation.backend=hf or set evaluation.loglikelihood=false"
            )
        return [v if v is not None else 0.0 for v in values]

    def _call(self, *, quiet: bool = False, **kwargs):
        from openai import APIConnectionError, APIError, APIStatusError

        try:
            return self.client.completions.create(model=self.model, **kwargs)
        except APIStatusError as exc:
            if quiet:
                raise _Refused() from None
            # a server may echo the request (its path and query, a token in it) in its error body
            raise LangdecError(
                f"{redact_url(self.base_url)}: the server refused the request for model {self.model!r} "
                f"(HTTP {exc.status_code}: {scrub(str(exc.message), self.base_url)[:200]})"
            ) from None
        except APIConnectionError:
            raise LangdecError(
                f"evaluation.base_url {redact_url(self.base_url)}: no OpenAI-compatible server answers there; start one "
                "(e.g. `vllm serve BASE --enable-lora --lora-modules NAME=DIR`) or use evaluation.backend=hf"
            ) from None
        except APIError as exc:  # an answer the client could not read
            raise LangdecError(
                f"{redact_url(self.base_url)}: an answer the OpenAI client could not read for model "
                f"{self.model!r}: {scrub(str(exc), self.base_url)[:200]}"
            ) from None


def _hf(
    spec: ModelConfig,
    ev: EvaluationConfig,
    adapter_dir: str | None,
    run_name: str,
    quantization: str,
    *,
    allow_cpu: bool = False,
) -> ScoringModel:
    from langdec.evaluation.loading import load_local

    model, tokenizer = load_local(spec, adapter_dir, quantization=quantization, allow_cpu=allow_cpu)
    return HFModel(model, tokenizer)


def _openai(
    spec: ModelConfig,
    ev: EvaluationConfig,
    adapter_dir: str | None,
    run_name: str,
    quantization: str,
    *,
    allow_cpu: bool = False,
) -> ScoringModel:
    from langdec.models.loading import load_tokenizer

    if not ev.base_url:
        raise LangdecError("evaluation.backend openai needs evaluation.base_url (e.g. http://localhost:8000/v1)")
    template = ev.adapter_model if adapter_dir else ev.served_model
    name = template.format(base=spec.id, run_name=run_name, adapter_dir=adapter_dir or "")
    return OpenAIModel(
        load_tokenizer(spec, padding_side="left"),
        base_url=ev.base_url,
        model=name,
        api_key_env=ev.api_key_env,
        concurrency=ev.concurrency,
    )


# a backend gets the profile's model and evaluation sections, the adapter folder, the job's run name and the
# quantization the adapter was trained under (the hf backend loads the base model that way on a GPU, and on CPU
# when the keyword allow_cpu, training.allow_cpu, says so)
BACKENDS: Registry[Callable[..., ScoringModel]] = Registry("evaluation backend", {"hf": _hf, "openai": _openai})
names = BACKENDS.names


def load(
    spec: ModelConfig,
    ev: EvaluationConfig,
    adapter_dir: str | None,
    run_name: str,
    *,
    quantization: str = "none",
    allow_cpu: bool = False,
) -> ScoringModel:
    """The scoring model of `evaluation.backend` for the base model, or for the adapter in `adapter_dir`."""
    return BACKENDS.get(ev.backend)(spec, ev, adapter_dir, run_name, quantization, allow_cpu=allow_cpu)
