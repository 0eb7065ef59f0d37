"""Chat backends for condition 5: the Cohere API, any OpenAI-compatible endpoint, a local transformers model.

Each backend turns a list of chat messages into a `Completion` (text and token
counts). Retrying is done here, once, for every backend: the SDKs' own retries
are switched off so that every attempt is counted, 429/5xx/timeouts back off
exponentially with jitter (honouring Retry-After), and anything else fails at once.
API keys are read from the environment when the backend is built and are never
part of a backend's description (which is what gets logged).
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from langdec.core.errors import LangdecError
from langdec.core.registry import Registry
from langdec.core.urls import redact_url, scrub

KEY_VARIABLES = {"cohere": ("CO_API_KEY", "COHERE_API_KEY"), "openai": ("OPENAI_API_KEY",)}


@dataclass
class Completion:
    text: str
    input_tokens: int
    output_tokens: int


@dataclass
class Counters:
    """What the backend cost: requests sent, their outcomes, tokens. Thread-safe."""

    requests: int = 0
    retries: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **values: int) -> None:
        with self._lock:
            for name, value in values.items():
                setattr(self, name, getattr(self, name) + value)

    def error(self, kind: str) -> None:
        with self._lock:
            self.errors[kind] = self.errors.get(kind, 0) + 1

    def as_dict(self) -> dict:
        return {
            "requests": self.requests,
            "retries": self.retries,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "errors": dict(sorted(self.errors.items())),
        }


class Transient(Exception):
    """A failure worth retrying (rate limit, server error, timeout, dropped connection)."""

    def __init__(self, kind: str, retry_after: float | None = None) -> None:
        super().__init__(kind)
        self.kind = kind
        self.retry_after = retry_after


class GaveUp(LangdecError):
    """Transient failures outlasted the retries: this file is excluded, the run goes on."""


class Refused(LangdecError):
    """The API refused this one request (400, 413, 422: too long, filtered): this file is excluded."""


def _refusal(backend: str, status: int, where: str, message: str) -> LangdecError:
    text = f"{backend} backend: HTTP {status} from {where}: {message[:200]}"
    if status in (401, 403, 404):  # wrong key, model or URL: every request would fail the same way
        return LangdecError(text + " (check the API key variable, --model and --base-url)")
    return Refused(text)


class Backend(Protocol):
    name: str
    model: str

    def chat(self, messages: list[dict[str, str]]) -> Completion: ...

    def describe(self) -> dict[str, str]: ...


def _api_key(backend: str) -> str:
    for variable in KEY_VARIABLES[backend]:
        if os.environ.get(variable):
            return os.environ[variable]
    raise LangdecError(
        f"the {backend} backend needs an API key in the environment: set {' or '.join(KEY_VARIABLES[backend])} "
        "(keys are read from the environment only, never from files or flags)"
    )


def _retry_after(headers) -> float | None:
    try:
        value = headers.get("retry-after") if headers is not None else None
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _classify_status(status: int | None, headers=None) -> Transient | None:
    if status == 429:
        return Transient("rate_limited", _retry_after(headers))
    if status is not None and status >= 500:
        return Transient(f"server_error_{status}", _retry_after(headers))
    return None


class OpenAIBackend:
    name = "openai"

    def __init__(self, model: str, base_url: str | None, timeout: float, api_key: str | None = None) -> None:
        import openai

        self.model, self.base_url, self.timeout = model, base_url, timeout
        self._openai = openai
        self.client = openai.OpenAI(
            api_key=api_key or _api_key("openai"), base_url=base_url or None, timeout=timeout, max_retries=0
        )

    def chat(self, messages: list[dict[str, str]]) -> Completion:
        openai = self._openai
        try:
            response = self.client.chat.completions.create(model=self.model, messages=messages, temperature=0.0)
        except openai.APITimeoutError:
            raise Transient("timeout") from None
        except openai.APIConnectionError:
            raise Transient("connection") from None
        except openai.APIStatusError as exc:
            transient = _classify_status(exc.status_code, exc.response.headers)
            if transient:
                raise transient from None
            raise _refusal(
                "openai",
                exc.status_code,
                redact_url(self.base_url) or "api.openai.com",
                scrub(str(exc.message), self.base_url),
            ) from None  # a server may echo the URL's token
        usage = response.usage
        return Completion(
            response.choices[0].message.content or "",
            getattr(usage, "prompt_tokens", 0) or 0,
            getattr(usage, "completion_tokens", 0) or 0,
        )

    def describe(self) -> dict[str, str]:
        return {"backend": self.name, "model": self.model, "base_url": redact_url(self.base_url)}


class CohereBackend:
    name = "cohere"

    def __init__(self, model: str, base_url: str | None, timeout: float, api_key: str | None = None) -> None:
        import cohere

        self.model, self.base_url, self.timeout = model, base_url, timeout
        self._cohere = cohere
        self.client = cohere.ClientV2(
            api_key=api_key or _api_key("cohere"),
            base_url=base_url or None,
            timeout=timeout,
            max_retries=0,
            log_warning_experimental_features=False,
        )

    def chat(self, messages: list[dict[str, str]]) -> Completion:
        import httpx
        from cohere.core.api_error import ApiError

        try:
            response = self.client.chat(model=self.model, messages=messages, temperature=0.0)
        except (httpx.TimeoutException,):
            raise Transient("timeout") from None
        except httpx.TransportError:
            raise Transient("connection") from None
        except ApiError as exc:
            transient = _classify_status(exc.status_code, getattr(exc, "headers", None))
            if transient:
                raise transient from None
            raise _refusal(
                "cohere",
                exc.status_code or 0,
                redact_url(self.base_url) or "api.cohere.com",
                scrub(str(exc.body), self.base_url),
            ) from None
        text = "".join(getattr(part, "text", "") for part in (response.message.content or []))
        tokens = response.usage.tokens if response.usage and response.usage.tokens else None
        return Completion(
            text, int(tokens.input_tokens or 0) if tokens else 0, int(tokens.output_tokens or 0) if tokens else 0
        )

    def describe(self) -> dict[str, str]:
        return {"backend": self.name, "model": self.model, "base_url": redact_url(self.base_url)}


class HFBackend:
    """A local causal LM through transformers: greedy decoding of the chat-formatted request."""

    name = "hf"

    def __init__(self, model: str, max_new_tokens: int = 1024, profile=None) -> None:
        import torch

        self.model = model
        self.max_new_tokens = max_new_tokens
        self._lock = threading.Lock()  # one generate at a time: the model is shared by the worker threads
        if model == "smoke":
            from langdec.models.loading import load_base_model, load_tokenizer

            self.tokenizer = load_tokenizer(profile.model)
            self.lm = load_base_model(
                profile.model, quantization=profile.training.quantization, precision=profile.training.precision
            )
        else:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            try:
                self.tokenizer = AutoTokenizer.from_pretrained(model)
                self.lm = AutoModelForCausalLM.from_pretrained(model, torch_dtype="auto")
            except OSError as exc:
                raise LangdecError(
                    f"hf backend: cannot load {model!r} ({str(exc)[:200]}); pass a local folder or a cached hub id"
                ) from None
        self.lm.eval()
        self._torch = torch

    def _prompt(self, messages: list[dict[str, str]]) -> str:
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return "\n\n".join(f"{m['role']}: {m['content']}" for m in messages) + "\n\nassistant: "

    def chat(self, messages: list[dict[str, str]]) -> Completion:
        prompt = self._prompt(messages)
        with self._lock, self._torch.inference_mode():
            ids = self.tokenizer(prompt, return_tensors="pt", add_special_tokens=False).to(self.lm.device)
            limit = getattr(self.lm.config, "max_position_embeddings", None)
            room = (
                self.max_new_tokens
                if limit is None
                else max(1, min(self.max_new_tokens, limit - ids["input_ids"].shape[1]))
            )
            pad = (
                self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
            )
            out = self.lm.generate(**ids, max_new_tokens=room, do_sample=False, pad_token_id=pad)
        new = out[0, ids["input_ids"].shape[1] :]
        return Completion(
            self.tokenizer.decode(new, skip_special_tokens=True), int(ids["input_ids"].shape[1]), int(new.shape[0])
        )

    def describe(self) -> dict[str, str]:
        return {"backend": self.name, "model": self.model, "base_url": ""}


BACKENDS: Registry[Callable[..., Backend]] = Registry(
    "translation backend", {"cohere": CohereBackend, "openai": OpenAIBackend, "hf": HFBackend}
)


def build(
    name: str,
    model: str,
    *,
    base_url: str | None = None,
    timeout: float = 120.0,
    profile=None,
    api_key: str | None = None,
) -> Backend:
    """`api_key` is for the bundled local server only; real keys come from the environment."""
    backend = BACKENDS.get(name)
    if name == "hf":
        return HFBackend(model, profile=profile)
    return backend(model, base_url, timeout, api_key=api_key)


@dataclass
class RetryPolicy:
    max_retries: int = 5
    base_delay: float = 1.0
    max_delay: float = 60.0


def call(
    backend: Backend,
    messages: list[dict[str, str]],
    policy: RetryPolicy,
    counters: Counters,
    sleep: Callable[[float], None] = time.sleep,
) -> Completion:
    """One chat call with retries on transient failures; every attempt is counted."""
    for attempt in range(policy.max_retries + 1):
        counters.add(requests=1)
        try:
            completion = backend.chat(messages)
        except Transient as exc:
            counters.error(exc.kind)
            if attempt == policy.max_retries:
                raise GaveUp(
                    f"{backend.name} backend: gave up after {attempt + 1} attempts (last: {exc.kind})"
                ) from None
            counters.add(retries=1)
            delay = min(policy.max_delay, policy.base_delay * 2**attempt) * (0.5 + random.random() / 2)
            sleep(delay if exc.retry_after is None else min(policy.max_delay, max(delay, exc.retry_after)))
            continue
        counters.add(input_tokens=completion.input_tokens, output_tokens=completion.output_tokens)
        return completion
    raise AssertionError("unreachable")
