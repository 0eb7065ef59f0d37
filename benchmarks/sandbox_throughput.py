"""Sandboxed execution throughput: candidates/s for Python (MBPP) and Java (MultiPL-E) by worker count.

    python benchmarks/sandbox_throughput.py --repeat 20

Every candidate runs in its own bubblewrap sandbox (fresh directory, no network, own PID
namespace, rlimits); half pass, half fail an assert, as real candidates do.
"""

from __future__ import annotations

import argparse
import os

from langdec.evaluation import code
from langdec.evaluation.sandbox import Limits, Sandbox

JAVA_GOOD = {
    "mbpp_11_sum_of_squares": "        long s = 0;\n        for (long n : nums) s += n * n;\n        return s;",
    "mbpp_12_is_palindrome": "        String l = text.toLowerCase();\n        return new StringBuilder(l).reverse().toString().equals(l);",
    "mbpp_13_count_vowels": '        long c = 0;\n        for (char ch : text.toLowerCase().toCharArray()) if ("aeiou".indexOf(ch) >= 0) c++;\n        return c;',
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=20, help="copies of the fixture tasks per row")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    print(f"on {os.cpu_count()} cores\n")
    print("| language | workers | candidates | candidates/s | passed |")
    print("|---|---|---|---|---|")
    for language, name in (("python", "mbpp"), ("java", "mbpp_java")):
        bench = code.get(name)
        tasks = code.load(name, source="fixtures") * args.repeat
        if language == "python":
            completions = [[t.reference, "def wrong():\n    return None"] for t in tasks]
        else:
            completions = [[JAVA_GOOD[t.id], "        return 0;"] for t in tasks]
        for workers in args.workers:
            settings = code.CodeSettings(samples=2, ks=(1,), workers=workers, limits=Limits(memory_mb=1024))
            with Sandbox(settings.limits, slots=workers) as sandbox:
                metrics, records = code.execute(bench, tasks, completions, settings, sandbox)
            print(
                f"| {language} | {workers} | {len(records)} | {metrics[f'code.{name}.candidates_per_s']:.1f} | "
                f"{sum(r['passed'] for r in records)} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
