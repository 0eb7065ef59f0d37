"""Condition 5 under injected API faults, then a re-run from the cache.

    python benchmarks/translate_faults.py --files 100 --lang zh

Translates standard-library files through the real OpenAI SDK client against the local
stand-in server, which injects rate limits (429 + Retry-After), server errors (500), slow
answers (past the client timeout) and malformed answers (once, or always for a share of
files). Prints what each run cost and what happened to the files.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from langdec.data.corpus import iter_source
from langdec.data.translation.backends import OpenAIBackend, RetryPolicy
from langdec.data.translation.cache import AnswerCache
from langdec.data.translation.engine import Translator
from langdec.data.translation.localserver import Faults, LocalChatServer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--lang", default="zh")
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    rows = []
    for row in iter_source("stdlib"):
        if len(rows) >= args.files:
            break
        text = row.data.decode("utf-8", errors="replace")
        if 10 <= text.count("\n") <= 400 and "def " in text:
            rows.append(row)
    faults = Faults(rate_limit=0.2, server_error=0.1, slow=0.1, slow_seconds=2.0, malformed=0.1, malformed_always=0.05)
    cache = AnswerCache(Path(tempfile.mkdtemp(prefix="langdec-cache-")))
    print(
        f"{len(rows)} stdlib files -> {args.lang}; faults: 20% 429, 10% 500, 10% slow (2 s > 1 s timeout), "
        f"10% malformed once, 5% malformed always; concurrency {args.concurrency}\n"
    )
    print(
        "| run | files ok | excluded | recovered by retry | requests | retries | 429 | 500 | timeouts | cache hit rate | seconds |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    with LocalChatServer(api_key="local", faults=faults) as server:
        backend = OpenAIBackend("stand-in", server.url + "/v1", timeout=1.0, api_key="local")
        for label in ("first", "re-run"):
            t = Translator(backend, args.lang, cache, policy=RetryPolicy(max_retries=5, base_delay=0.05))
            start = time.perf_counter()
            outcomes = list(t.run(rows, concurrency=args.concurrency, progress=False))
            seconds = time.perf_counter() - start
            r = t.report()
            errors = r["api"]["errors"]
            excluded = ", ".join(f"{k} {v}" for k, v in r["excluded"].items()) or "0"
            print(
                f"| {label} | {sum(o.ok for o in outcomes)} | {excluded} | {r['recovered_by_retry']} | {r['api']['requests']} | "
                f"{r['api']['retries']} | {errors.get('rate_limited', 0)} | {errors.get('server_error_500', 0)} | "
                f"{errors.get('timeout', 0)} | {r['cache_hit_rate']:.0%} | {seconds:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
