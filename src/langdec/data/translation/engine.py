"""Condition 5 for one file and for a corpus: units -> model -> checked rewrite -> keywords transpiled.

A file is translated in requests of at most `chunk_chars` characters of unit text,
merged, checked (valid distinct identifiers, placeholders kept), applied through
the tokenizer, and must parse; then the condition-2 transpiler translates its
keywords and the result must reverse to exactly that parsed file. A file that
fails any of this is asked once more (the request names what was wrong) and, if
it fails again, excluded with its reason. Infrastructure failures (the backend
gave up after its retries) exclude the file without a content retry; its cached
answers stay, so a re-run resumes where it stopped.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from langdec.core import languages, syntax
from langdec.core.errors import LangdecError
from langdec.data.translation import prompt, units
from langdec.data.translation.backends import Backend, Counters, GaveUp, Refused, RetryPolicy, call
from langdec.data.translation.cache import AnswerCache
from langdec.data.transpiler import engine as transpiler
from langdec.data.transpiler import packs


@dataclass
class FileOutcome:
    file_path: str
    ok: bool
    idx: int | None = None
    license: str | None = None
    source: str = ""
    translated: str | None = None  # English keywords, translated identifiers and text
    text: str | None = None  # the condition-5 file: `translated` with its keywords transpiled too
    reason: str | None = None
    detail: str | None = None
    units: int = 0
    attempts: int = 0


@dataclass
class RunStats:
    files: int = 0
    translated: int = 0
    excluded: dict[str, int] = field(default_factory=dict)
    recovered_by_retry: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    units: int = 0
    seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, outcome: FileOutcome) -> None:
        with self._lock:
            self.files += 1
            self.units += outcome.units
            if outcome.ok:
                self.translated += 1
                self.recovered_by_retry += outcome.attempts > 1
            else:
                self.excluded[outcome.reason or "error"] = self.excluded.get(outcome.reason or "error", 0) + 1

    def hit(self, hit: bool) -> None:
        with self._lock:
            if hit:
                self.cache_hits += 1
            else:
                self.cache_misses += 1

    @property
    def hit_rate(self) -> float:
        total = self.cache_hits + self.cache_misses
        return self.cache_hits / total if total else 0.0

    def as_dict(self) -> dict:
        return {
            "files": self.files,
            "translated": self.translated,
            "excluded": dict(sorted(self.excluded.items())),
            "recovered_by_retry": self.recovered_by_retry,
            "cache_hits": self.cache_hits,
            "cache_misses": self.cache_misses,
            "cache_hit_rate": round(self.hit_rate, 4),
            "units": self.units,
            "seconds": round(self.seconds, 3),
        }


class Rejected(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


class Translator:
    """Translates files into one language through one backend; safe to call from many threads."""

    def __init__(
        self,
        backend: Backend,
        lang: str,
        cache: AnswerCache,
        *,
        policy: RetryPolicy | None = None,
        chunk_chars: int = 6000,
    ) -> None:
        self.backend = backend
        self.pack = packs.load(lang)
        self.lang = self.pack.code
        self.lang_name = languages.get(self.lang).name
        self.cache = cache
        self.policy = policy or RetryPolicy()
        self.chunk_chars = chunk_chars
        self.counters = Counters()
        self.stats = RunStats()
        # a translated name equal to a pack word would be escaped by the transpiler; refuse it instead
        self.reserved = frozenset(self.pack.targets)

    def _chunks(self, file_units: units.FileUnits) -> list[list[units.Unit]]:
        chunks: list[list[units.Unit]] = [[]]
        size = 0
        for unit in file_units.units:
            if chunks[-1] and size + len(unit.text) > self.chunk_chars:
                chunks.append([])
                size = 0
            chunks[-1].append(unit)
            size += len(unit.text)
        return chunks

    def _ask(self, chunk: list[units.Unit], rejected: str | None) -> dict[str, str]:
        messages = prompt.messages(chunk, self.lang, self.lang_name, rejected=rejected)
        key = self.cache.key(self.backend.name, self.backend.model, prompt.PROMPT_VERSION, messages)
        completion = self.cache.get(key)
        self.stats.hit(completion is not None)
        if completion is None:
            completion = call(self.backend, messages, self.policy, self.counters)
            self.cache.put(key, completion)
        try:
            answer = prompt.parse_answer(completion.text)
        except prompt.MalformedOutput as exc:
            raise Rejected("malformed-output", str(exc)) from None
        return {u.key: answer[u.key] for u in chunk if u.key in answer}

    def translate_units(self, batch: list[units.Unit]) -> dict[str, str]:
        """Translations of free-standing units (no file around them; machine-translated test data), keyed by unit key,
        asked in chunks through the same request, retries and cache; a unit the answer leaves out is missing."""
        answers: dict[str, str] = {}
        for chunk in self._chunks(units.FileUnits(units=batch)):
            answers.update(self._ask(chunk, None))
        return answers

    def _attempt(self, code: str, file_units: units.FileUnits, rejected: str | None) -> tuple[str, str]:
        merged: dict[str, str] = {}
        for chunk in self._chunks(file_units):
            merged.update(self._ask(chunk, rejected))
        problem = units.check(file_units, merged, self.reserved)
        if problem:
            raise Rejected("invalid-translation", problem)
        translated = units.apply(code, file_units, merged)
        try:
            syntax.parse(translated)
        except SyntaxError as exc:
            raise Rejected("does-not-parse", f"line {exc.lineno}: {exc.msg}") from None
        try:
            final = transpiler.translate(translated, self.pack).text
        except transpiler.TranspileError as exc:
            raise Rejected(f"keywords-{exc.reason}", exc.detail) from None
        return translated, final

    def translate(
        self, code: str, *, file_path: str = "<string>", idx: int | None = None, license: str | None = None
    ) -> FileOutcome:
        outcome = FileOutcome(file_path, False, idx=idx, license=license, source=code)
        try:
            file_units = units.extract(code)
        except LangdecError as exc:
            outcome.reason, outcome.detail = "not-python", str(exc)
            self.stats.record(outcome)
            return outcome
        outcome.units = len(file_units.units)
        rejected: str | None = None
        for attempt in (1, 2):  # the second attempt tells the model what was wrong with the first
            outcome.attempts = attempt
            try:
                outcome.translated, outcome.text = self._attempt(code, file_units, rejected)
                outcome.ok = True
                break
            except Rejected as exc:
                outcome.reason, outcome.detail = exc.reason, exc.detail
                rejected = f"{exc.reason} ({exc.detail})"
            except (GaveUp, Refused) as exc:  # infrastructure, not content: no content retry
                outcome.reason, outcome.detail = (
                    "backend-gave-up" if isinstance(exc, GaveUp) else "refused-by-api",
                    str(exc),
                )
                break
        if outcome.ok:
            outcome.reason = outcome.detail = None
        self.stats.record(outcome)
        return outcome

    def run(
        self, rows: Iterable, *, concurrency: int = 8, progress: bool = True, total: int | None = None
    ) -> Iterator[FileOutcome]:
        """Translate SourceRow-like rows with `concurrency` requests in flight; yields in input order."""
        from tqdm import tqdm

        start = time.perf_counter()
        bar = tqdm(total=total, unit="file", desc=f"translate {self.lang}", disable=not progress, leave=False)

        def one(row) -> FileOutcome:
            try:
                text = row.text()
            except UnicodeDecodeError as exc:
                outcome = FileOutcome(
                    row.file_path, False, idx=row.idx, license=row.license, reason="not-utf8", detail=str(exc)
                )
                self.stats.record(outcome)
                return outcome
            return self.translate(text, file_path=row.file_path, idx=row.idx, license=row.license)

        pool = ThreadPoolExecutor(max_workers=max(1, concurrency))
        window: deque = deque()  # bounded look-ahead: a 100k-file corpus is never all in memory
        try:
            for row in rows:
                window.append(pool.submit(one, row))
                if len(window) >= 4 * max(1, concurrency):
                    bar.update()
                    yield window.popleft().result()
            while window:
                bar.update()
                yield window.popleft().result()
        finally:
            # on an interrupt, drop queued files at once; answers already paid for are in the cache
            pool.shutdown(wait=True, cancel_futures=True)
            bar.close()
            self.stats.seconds += time.perf_counter() - start

    def report(self) -> dict:
        return {
            "language": self.lang,
            **self.backend.describe(),
            "prompt_version": prompt.PROMPT_VERSION,
            **self.stats.as_dict(),
            "api": self.counters.as_dict(),
        }
