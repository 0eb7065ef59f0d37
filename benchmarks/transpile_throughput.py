"""Round-trip exactness and throughput of every language pack over the standard library.

    python benchmarks/transpile_throughput.py            # all ~1,800 files, every pack
    python benchmarks/transpile_throughput.py --limit 300 --langs zh,ur

Prints one row per language: files, exact round trips, refusals by reason, hard
keywords left in English, escaped identifiers, wall time and MB/s (forward pass,
reverse pass and comparison included), using every core.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from langdec.data.corpus import iter_source
from langdec.data.transpiler import batch, packs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--langs", default=",".join(packs.available()))
    parser.add_argument("--limit", type=int, default=None, help="only the first N files")
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    args = parser.parse_args()
    rows = list(iter_source("stdlib"))[: args.limit]
    total_mb = sum(len(r.data) for r in rows) / 1e6
    print(
        f"standard library: {len(rows)} files, {total_mb:.1f} MB, {args.workers} workers, Python {sys.version.split()[0]}"
    )
    header = f"{'lang':<5}{'files':>7}{'exact':>7}{'exact %':>9}{'refused':>30}{'kw left':>9}{'escaped':>9}{'seconds':>9}{'MB/s':>7}"
    print(header)
    print("-" * len(header))
    worst = 100.0
    for lang in args.langs.split(","):
        start = time.perf_counter()
        summary, _ = batch.summarise(batch.run(rows, lang, workers=args.workers, progress=False), lang, "forward")
        seconds = time.perf_counter() - start
        accepted = summary.files - sum(v for k, v in summary.failed.items() if k != "roundtrip")
        exact_pct = 100.0 * summary.exact / max(accepted, 1)
        worst = min(worst, exact_pct)
        refused = ", ".join(f"{k} {v}" for k, v in sorted(summary.failed.items())) or "-"
        print(
            f"{lang:<5}{summary.files:>7}{summary.exact:>7}{exact_pct:>8.2f}%{refused:>30}{summary.english_keywords_left:>9}"
            f"{summary.words.get('escaped', 0):>9}{seconds:>9.1f}{total_mb / seconds:>7.2f}"
        )
    print("exact % is over the files the parser accepts (refusals other than 'roundtrip' excluded)")
    return 0 if worst == 100.0 else 1


if __name__ == "__main__":
    sys.exit(main())
