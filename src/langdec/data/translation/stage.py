"""Condition 5 as a command (`langdec translate`) and as the data builder of the ladder.

Both go through `open_backend`, which builds the configured backend and, for
`base_url: local`, starts the bundled stand-in server for the duration (with a
fresh random key, so even the offline path exercises real authentication).
What gets logged is the backend's description (redacted URL) and the counters;
keys never leave the environment.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from langdec.core.atomic import write_files_or_rows, write_text
from langdec.core.config import Profile, TranslationConfig
from langdec.core.paths import work_dir
from langdec.data.sources import SourceRow
from langdec.data.translation import backends, prompt
from langdec.data.translation.cache import AnswerCache
from langdec.data.translation.engine import FileOutcome, Translator

ROW_COLUMNS = [
    "code",
    "code_en",
    "language",
    "file_path",
    "license",
    "idx",
    "token_count",
    "translation_model",
    "prompt_version",
]


def cache_dir() -> Path:
    return work_dir() / "translation-cache"


@contextlib.contextmanager
def open_backend(cfg: TranslationConfig, profile: Profile | None = None) -> Iterator[backends.Backend]:
    if cfg.base_url == "local":
        from langdec.data.translation.localserver import LocalChatServer

        key = secrets.token_urlsafe(24)
        with LocalChatServer(api_key=key) as server:
            url = server.url + ("/v1" if cfg.backend == "openai" else "")
            yield backends.build(
                cfg.backend, cfg.model, base_url=url, timeout=cfg.timeout_seconds, profile=profile, api_key=key
            )
        return
    yield backends.build(cfg.backend, cfg.model, base_url=cfg.base_url, timeout=cfg.timeout_seconds, profile=profile)


def translator(backend: backends.Backend, lang: str, cfg: TranslationConfig) -> Translator:
    policy = backends.RetryPolicy(max_retries=cfg.max_retries, base_delay=cfg.backoff_seconds)
    return Translator(backend, lang, AnswerCache(cache_dir()), policy=policy, chunk_chars=cfg.chunk_chars)


def describe(cfg: TranslationConfig) -> dict:
    return {
        "backend": cfg.backend,
        "model": cfg.model,
        "base_url": backends.redact_url(cfg.base_url) if cfg.base_url != "local" else "local",
        "prompt_version": prompt.PROMPT_VERSION,
        "settings_key": settings_key(cfg),
    }


def settings_key(cfg: TranslationConfig) -> str:
    """What decides the answers (not where the server is or how many requests run at once)."""
    return hashlib.sha256(
        json.dumps([cfg.backend, cfg.model, prompt.PROMPT_VERSION, cfg.chunk_chars]).encode()
    ).hexdigest()[:12]


def _row(o: FileOutcome, lang: str, model: str) -> dict:
    return {
        "code": o.text,
        "code_en": o.source,
        "language": lang,
        "file_path": o.file_path,
        "license": o.license,
        "idx": o.idx if o.idx is not None else int(hashlib.sha256(o.source.encode()).hexdigest()[:15], 16),
        "token_count": None,
        "translation_model": model,
        "prompt_version": prompt.PROMPT_VERSION,
    }


def write_outputs(
    outcomes: Iterable[FileOutcome], out: Path, lang: str, model: str, *, replace: bool = False
) -> tuple[list[FileOutcome], list[FileOutcome]]:
    """Rows (.parquet/.jsonl), one .py file, or a mirrored tree; written atomically, failures listed beside."""
    kept, failed = [], []
    for o in outcomes:
        (kept if o.ok else failed).append(o)
    rows = [_row(o, lang, model) for o in kept] if out.suffix in (".parquet", ".jsonl") else []
    write_files_or_rows(out, [(o.file_path, o.text) for o in kept], rows, ROW_COLUMNS, replace=replace)
    return kept, failed


def report_dict(t: Translator, failed: list[FileOutcome]) -> dict:
    return {
        **t.report(),
        "failures": [{"file_path": o.file_path, "idx": o.idx, "reason": o.reason, "detail": o.detail} for o in failed],
    }


def log_metrics(report: dict, prefix: str = "") -> None:
    import mlflow

    api = report["api"]
    metrics = {
        "files": report["files"],
        "translated": report["translated"],
        "excluded": sum(report["excluded"].values()),
        "recovered_by_retry": report["recovered_by_retry"],
        "cache_hits": report["cache_hits"],
        "cache_misses": report["cache_misses"],
        "cache_hit_rate": report["cache_hit_rate"],
        "requests": api["requests"],
        "retries": api["retries"],
        "input_tokens": api["input_tokens"],
        "output_tokens": api["output_tokens"],
    }
    metrics.update({f"errors.{k}": v for k, v in api["errors"].items()})
    metrics.update({f"excluded.{k}": v for k, v in report["excluded"].items()})
    mlflow.log_metrics({f"{prefix}{k}": float(v) for k, v in metrics.items()})


def translate_tier(
    profile: Profile, rows: list[SourceRow], langs: list[str], *, progress: bool = True
) -> dict[str, tuple[dict[int, str], list[dict], dict]]:
    """Translate the tier's rows into every language: per language (kept idx -> code, losses, report)."""
    out = {}
    cfg = profile.translation
    with open_backend(cfg, profile) as backend:
        for lang in langs:
            t = translator(backend, lang, cfg)
            kept, lost = {}, []
            for o in t.run(rows, concurrency=cfg.concurrency, progress=progress, total=len(rows)):
                if o.ok:
                    kept[o.idx] = o.text
                else:
                    lost.append(
                        {
                            "idx": o.idx,
                            "file_path": o.file_path,
                            "language": lang,
                            "reason": o.reason,
                            "detail": o.detail,
                        }
                    )
            out[lang] = (kept, lost, t.report())
    return out


def align(results: dict[str, tuple[dict[int, str], list[dict], dict]]) -> set[int]:
    """Files translated in every language: condition 5 keeps only those (source-file control)."""
    sets = [set(kept) for kept, _, _ in results.values()]
    return set.intersection(*sets) if sets else set()


def alignment_cache(tier_path: Path, cfg: TranslationConfig, langs: list[str], aligned_key: str) -> Path:
    key = hashlib.sha256(json.dumps([settings_key(cfg), sorted(langs), aligned_key]).encode()).hexdigest()[:12]
    return tier_path / f"llm-alignment-{key}.json"


def save_alignment(path: Path, results: dict, aligned: set[int]) -> None:
    write_text(
        path,
        json.dumps(
            {
                "aligned": sorted(aligned),
                "lost": [entry for _, lost, _ in results.values() for entry in lost],
                "reports": {lang: report for lang, (_, _, report) in results.items()},
            },
            indent=2,
            ensure_ascii=False,
        ),
    )


@dataclass
class SourceTranslation:
    run_id: str
    report: dict
    files: int
    kept: list


def translate_source(
    profile: Profile,
    src: str,
    lang: str,
    out: Path | None,
    experiment: str,
    *,
    replace: bool = False,
    code_column: str | None = None,
    limit: int | None = None,
    progress: bool = True,
) -> SourceTranslation:
    """Translate any source (a file, folder, table or hub id) into `lang` as one tracked run; with `out`, the
    translated files and a `.report.json` beside them, written atomically and never over a user's files."""
    import mlflow

    from langdec.core.atomic import check_output
    from langdec.data.sources import iter_rows
    from langdec.tracking import lease

    cfg = profile.translation
    rows = list(iter_rows(src, code_column=code_column, limit=limit))
    if out is not None:
        check_output(out, replace=replace)  # before the work, not after it
    with open_backend(cfg, profile) as backend:
        t = translator(backend, lang, cfg)
        params = {
            **describe(cfg),
            "lang": t.lang,
            "source": str(src),
            "files": len(rows),
            "concurrency": cfg.concurrency,
            "max_retries": cfg.max_retries,
            "chunk_chars": cfg.chunk_chars,
        }
        with lease.stage_run(
            experiment, "translate", f"translate-{t.lang}", params=params, tags={"lang": t.lang}, reuse=False
        ) as run:
            outcomes = t.run(rows, concurrency=cfg.concurrency, progress=progress, total=len(rows))
            if out is not None:
                kept, failed = write_outputs(outcomes, out, t.lang, cfg.model, replace=replace)
            else:
                kept, failed = [], []
                for o in outcomes:
                    (kept if o.ok else failed).append(o)
            report = report_dict(t, failed)
            log_metrics(report)
            mlflow.log_dict(report, "translation_report.json")
    if out is not None:
        write_text(out.with_name(out.name + ".report.json"), json.dumps(report, indent=2, ensure_ascii=False))
    return SourceTranslation(run.run_id, report, len(rows), kept)
