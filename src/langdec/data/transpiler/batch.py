"""Runs the transpiler over many files in parallel and accounts for every outcome."""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from tqdm import tqdm

from langdec.data.transpiler import packs
from langdec.data.transpiler.engine import TranspileError, english_keywords_left, translate

VERSION = "1.0.0"  # bump when the output of the same pack on the same input can change


@dataclass
class Outcome:
    file_path: str
    ok: bool
    text: str | None = None
    source: str | None = None
    reason: str | None = None
    detail: str | None = None
    nbytes: int = 0
    stats: dict[str, int] = field(default_factory=dict)
    english_keywords_left: int = 0
    license: str | None = None
    idx: int | None = None


@dataclass
class Summary:
    language: str
    direction: str
    files: int = 0
    exact: int = 0
    failed: dict[str, int] = field(default_factory=dict)
    failures: list[dict[str, str]] = field(default_factory=list)
    bytes: int = 0
    seconds: float = 0.0
    english_keywords_left: int = 0
    words: dict[str, int] = field(default_factory=dict)
    transpiler_version: str = VERSION
    pack_digest: str = ""

    def add(self, outcome: Outcome) -> None:
        self.files += 1
        if outcome.ok:
            self.exact += 1
            self.bytes += outcome.nbytes
            self.english_keywords_left += outcome.english_keywords_left
            for key, value in outcome.stats.items():
                self.words[key] = self.words.get(key, 0) + value
        else:
            self.failed[outcome.reason or "error"] = self.failed.get(outcome.reason or "error", 0) + 1
            self.failures.append(
                {"file_path": outcome.file_path, "reason": outcome.reason or "", "detail": outcome.detail or ""}
            )

    def as_dict(self) -> dict:
        out = dict(self.__dict__)
        out["bytes_per_s"] = round(self.bytes / self.seconds) if self.seconds else None
        out["seconds"] = round(self.seconds, 3)
        return out


def _work(item: tuple[str, str, bytes | str, str | None, int | None, str]) -> Outcome:
    path, lang, data, license, idx, direction = item
    pack = packs.load(lang)
    try:
        text = data if isinstance(data, str) else data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Outcome(
            path, False, reason="not-utf8", detail=f"byte {exc.start}: {exc.reason}", license=license, idx=idx
        )
    try:
        result = translate(text, pack, direction=direction)
    except TranspileError as exc:
        return Outcome(path, False, reason=exc.reason, detail=exc.detail, license=license, idx=idx)
    left = english_keywords_left(result.text) if direction == "forward" else 0
    return Outcome(
        path,
        True,
        text=result.text,
        source=text,
        nbytes=len(text.encode("utf-8")),
        stats=result.stats.as_dict(),
        english_keywords_left=left,
        license=license,
        idx=idx,
    )


def run(
    rows: Iterable,
    lang: str,
    *,
    direction: str = "forward",
    workers: int | None = None,
    progress: bool = True,
    total: int | None = None,
) -> Iterator[Outcome]:
    """Translate `rows` (SourceRow-like) in order; failures come back as Outcomes, never exceptions."""
    lang = packs.load(lang).code  # validate before forking
    items = ((r.file_path, lang, r.data, r.license, r.idx, direction) for r in rows)
    workers = workers or min(os.cpu_count() or 1, 8)
    bar = tqdm(total=total, unit="file", desc=f"transpile {lang}", disable=not progress, leave=False)
    try:
        if workers == 1:
            for item in items:
                bar.update()
                yield _work(item)
            return
        ctx = multiprocessing.get_context("fork" if hasattr(os, "fork") else "spawn")
        failed: list[BaseException] = []

        def guarded():
            # a source that fails mid-way (a bad row) is read by the pool's feeder thread: keep the error for
            # this thread, so the pool ends the normal way below
            try:
                yield from items
            except Exception as exc:
                failed.append(exc)

        with ctx.Pool(workers) as pool:
            for outcome in pool.imap(_work, guarded(), chunksize=8):
                bar.update()
                yield outcome
            # workers leave on their own; Pool.__exit__'s terminate() then signals nobody. Relying on its SIGTERM
            # left a worker blocked on the task queue's lock once (seen under the test suite), hanging the run.
            pool.close()
            pool.join()
        if failed:
            raise failed[0]
    finally:
        bar.close()


def summarise(outcomes: Iterable[Outcome], lang: str, direction: str) -> tuple[Summary, list[Outcome]]:
    summary = Summary(language=lang, direction=direction, pack_digest=packs.load(lang).digest)
    kept: list[Outcome] = []
    start = time.perf_counter()
    for outcome in outcomes:
        summary.add(outcome)
        if outcome.ok:
            kept.append(outcome)
    summary.seconds = time.perf_counter() - start
    return summary, kept
