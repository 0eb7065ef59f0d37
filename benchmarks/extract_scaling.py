"""How `langdec extract` scales with the answer's length: time per answer for long, hostile answers
(blank runs, a letter then blanks, repeated separators), for every extractor and benchmark kind.

    python benchmarks/extract_scaling.py [--lengths 1000 10000 40000 160000]

Linear growth means the time per character (last column) stays flat as the length grows; the study's
failure mode was a regex retried from every position (40,000 spaces took 164 s)."""

from __future__ import annotations

import argparse
import time

from langdec.evaluation import extractors

SHAPES = {
    "spaces": lambda n: " " * n,
    "letter-spaces-letter": lambda n: "a" + " " * n + "b",
    "blank lines": lambda n: " \t\n" * (n // 3),
    "ANSWER then spaces": lambda n: "ANSWER" + " " * n,
    "separators": lambda n: "x/" * (n // 2),
    "digits and commas": lambda n: "1," * (n // 2),
}
BENCHMARKS = ("xnli", "sib200", "belebele", "mgsm")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[1000, 10000, 40000, 160000])
    args = parser.parse_args()
    names = sorted(extractors.extractors())
    for name in names:  # warm the term tables and compiled patterns
        for bench in BENCHMARKS:
            extractors.get(name)(bench, "warm up")
    print(f"{'extractor':<9} {'length':>8} {'worst shape':<22} {'worst ms':>9} {'ns/char':>8}")
    for name in names:
        for n in args.lengths:
            worst, shape_of_worst = 0.0, ""
            for shape, make in SHAPES.items():
                text = make(n)
                for bench in BENCHMARKS:
                    start = time.perf_counter()
                    extractors.get(name)(bench, text)
                    took = time.perf_counter() - start
                    if took > worst:
                        worst, shape_of_worst = took, shape
            print(f"{name:<9} {n:>8} {shape_of_worst:<22} {worst * 1000:>9.2f} {worst / n * 1e9:>8.1f}")


if __name__ == "__main__":
    main()
