"""The study's whole Phase-3 analysis at its real size: import, report, reparse and study-tables, timed.

    python benchmarks/study_scale.py [--scale 1.0] [--out /tmp/langdec-study-scale] [--steps import report ...]

Writes a synthetic results set in the study's published layout (`phase3/conditions/<condition>/seed<N>/`,
`_results_`, `_summary_` and `_summary_reparsed_` files for both templates) at its real size: the baseline
and 20 adapters (conditions 1 and 2 at 5k with seeds 42/123/456, every 20k tier with seed 42, conditions 3
and 5 with seed 42), the study's matrix (baseline and condition 1: 4 data x 4 instruction languages; the rest:
instruction language en or the trained one) and each benchmark's item count from experiments/benchmarks/*.yaml
(`hub.items`): about 3.0 million per-item rows. Outputs are drawn from what such models answer (labels,
native words, letters, hedges, glued and negated forms, explanations with a unique tail, junk), with a fixed
seed; the summaries are scored with langdec's `strict` and `refined` (the study's two extractors).

Each step runs as its own `langdec` process on a fresh SQLite store in OUT; the table gives its wall time and
peak resident memory (the process and its children) beside the target. A step langdec does not have prints
"not available". Nothing here is asserted: read the table."""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BENCHES = ("xnli", "csqa", "sib200", "belebele")  # the study's names, in its run order
LANGS = ("en", "zh", "es", "ur")  # the study's data-language order
SESSIONS = [("baseline", "none")]
SESSIONS += [("condition-1-en-5k", s) for s in ("42", "123", "456")] + [("condition-1-en-20k", "42")]
SESSIONS += [(f"condition-2-{lang}-5k", s) for lang in ("zh", "es", "ur") for s in ("42", "123", "456")]
SESSIONS += [(f"condition-2-{lang}-20k", "42") for lang in ("zh", "es", "ur")]
SESSIONS += [("condition-3-zh-5k", "42")] + [(f"condition-5-{lang}-5k", "42") for lang in ("zh", "es", "ur")]
TARGETS = {
    "import": (60, 1.5),
    "report": (20, 1.5),
    "report-refusal": (None, 1.5),
    "reparse": (60, 1.5),
    "study-tables": (None, 1.5),
}

WORDS = (
    "river city market light story water night people garden window school music letter house table morning "
    "mountain friend train doctor"
).split()
NATIVE = {
    "xnli": {
        "zh": ["蕴含", "矛盾", "中立"],
        "es": ["implicación", "contradicción", "neutral"],
        "ur": ["لازمی", "تردید", "غیرجانبدار"],
    },
    "sib200": {
        "zh": ["科学", "旅行", "政治", "体育"],
        "es": ["ciencia", "viajes", "política", "deportes"],
        "ur": ["سائنس", "سفر", "سیاست", "کھیل"],
    },
}
LABELS = {
    "xnli": ["entailment", "neutral", "contradiction"],
    "sib200": ["science/technology", "travel", "politics", "sports", "health", "entertainment", "geography"],
    "csqa": list("ABCDE"),
    "belebele": list("ABCD"),
}


def item_counts() -> dict[str, int]:
    names = {"csqa": "xcsqa"}
    return {
        b: int(
            yaml.safe_load((ROOT / "experiments" / "benchmarks" / f"{names.get(b, b)}.yaml").read_text())["hub"][
                "items"
            ]
        )
        for b in BENCHES
    }


def instruction_langs(condition: str) -> list[str]:
    if condition == "baseline" or condition.startswith("condition-1-"):
        return list(LANGS)
    return ["en", condition.split("-")[2]]


def _tail(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 5))) + f" {rng.randint(0, 10**6)}"


def answer(rng: random.Random, bench: str, gold: str, instr: str, skill: float) -> str:
    """One model answer: right with probability `skill`, in one of the shapes such models produce."""
    labels = LABELS[bench]
    label = gold if rng.random() < skill else rng.choice(labels)
    roll = rng.random()
    if bench in ("csqa", "belebele"):
        if roll < 0.6:
            return label
        if roll < 0.75:
            return f"{label}. {_tail(rng)}"
        if roll < 0.85:
            return f"Answer: {label}"
        if roll < 0.9:
            return f"({label.lower()})"
        return _tail(rng)
    native = NATIVE[bench].get(instr)
    if roll < 0.45:
        return label
    if roll < 0.55 and native:
        return rng.choice(native)
    if roll < 0.68:
        return f"{label}. {_tail(rng)}"
    if roll < 0.72:
        return f"答案是{label}" if bench == "xnli" else f"science/{rng.choice(['physics', 'biology', 'تکنیک'])}"
    if roll < 0.75:
        return "没有entailment" if bench == "xnli" else f"{label}/{rng.choice(labels)}"
    if roll < 0.8:
        return label.capitalize() + "\n" + _tail(rng)
    return _tail(rng)


def _fields(rng: random.Random, bench: str) -> dict[str, str]:
    def text(n: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(n))

    return {
        "xnli": lambda: {"premise": text(9), "hypothesis": text(5)},
        "csqa": lambda: {"stem": text(7)},
        "sib200": lambda: {"text": text(10)},
        "belebele": lambda: {"passage": text(14), "question": text(5)},
    }[bench]()


def write_set(out: Path, scale: float, seed: int = 0) -> dict:
    """The synthetic results set; kept when its manifest matches (scale, seed, sessions)."""
    manifest = json.loads(
        json.dumps({"scale": scale, "seed": seed, "sessions": SESSIONS, "items": item_counts(), "format": 2})
    )
    mark = out / "manifest.json"
    if mark.is_file() and json.loads(mark.read_text()) == manifest:
        return json.loads((out / "stats.json").read_text())
    sys.path.insert(0, str(ROOT / "src"))
    from langdec.evaluation import extractors

    strict, refined = extractors.get("strict"), extractors.get("refined")
    ours = {"csqa": "xcsqa"}
    if out.exists():
        shutil.rmtree(out)
    base = out / "phase3" / "conditions"
    counts = {b: max(4, int(n * scale)) for b, n in item_counts().items()}
    golds = {
        (b, d): [random.Random(f"{b}{d}{i}").choice(LABELS[b]) for i in range(n)]
        for b, n in counts.items()
        for d in LANGS
    }
    fields = {
        (b, d): [_fields(random.Random(f"f{b}{d}{i}"), b) for i in range(n)] for b, n in counts.items() for d in LANGS
    }
    rows_total, outputs = 0, set()
    started = time.perf_counter()
    for condition, s in SESSIONS:
        folder = base / condition / f"seed{s}"
        folder.mkdir(parents=True, exist_ok=True)
        skill = 0.55 if condition == "baseline" else 0.45 + 0.2 * random.Random(condition + s).random()
        for template in ("template1", "template2"):
            rng = random.Random(f"{seed}{condition}{s}{template}")
            body: dict = {"summary": {}, "parse_failure_rates": {}}
            orig, rep = {"summary": {}, "parse_failure_rates": {}}, {"summary": {}, "parse_failure_rates": {}}
            for data in LANGS:
                for instr in instruction_langs(condition):
                    for bench in BENCHES:
                        key = f"{template}_{bench}_data={data}_instr={instr}"
                        rows, n_strict, f_strict, n_ref, f_ref = [], 0, 0, 0, 0
                        for gold, extra in zip(golds[(bench, data)], fields[(bench, data)]):
                            raw = answer(rng, bench, gold, instr, skill)
                            outputs.add((bench, raw))
                            pred = strict(ours.get(bench, bench), raw)
                            again = refined(ours.get(bench, bench), raw)
                            n_strict += pred == gold
                            f_strict += pred is None
                            n_ref += again == gold
                            f_ref += again is None
                            rows.append(
                                {
                                    **extra,
                                    "template": template,
                                    "instruction_lang": instr,
                                    "raw_output": raw,
                                    "pred": pred,
                                    "gold": gold,
                                    "correct": pred == gold,
                                }
                            )
                        n = len(rows)
                        body[key] = rows
                        rows_total += n
                        orig["summary"][f"{key}_acc"] = n_strict / n
                        orig["parse_failure_rates"][key] = f_strict / n
                        rep["summary"].update({f"{key}_acc": n_ref / n, f"{key}_count": n, f"{key}_correct": n_ref})
                        rep["parse_failure_rates"][key] = f_ref / n
            body["summary"], body["parse_failure_rates"] = orig["summary"], orig["parse_failure_rates"]
            stem = f"{condition}_seed{s}"
            rep["reparse_metadata"] = {"original_results_filename": f"{stem}_results_{template}.json"}
            for kind, content in (("results", body), ("summary", orig), ("summary_reparsed", rep)):
                (folder / f"{stem}_{kind}_{template}.json").write_text(
                    json.dumps(content, ensure_ascii=False, indent=2), encoding="utf-8"
                )
        print(
            f"  wrote {condition}/seed{s} ({rows_total:,} rows so far, {time.perf_counter() - started:.0f}s)",
            flush=True,
        )
    size = sum(p.stat().st_size for p in out.rglob("*_results_*.json"))
    stats = {
        "rows": rows_total,
        "distinct_outputs": len(outputs),
        "result_mb": round(size / 2**20),
        "files": len(SESSIONS) * 2,
    }
    (out / "stats.json").write_text(json.dumps(stats))
    mark.write_text(json.dumps(manifest))
    return stats


def timed(command: list[str], cwd: Path, env: dict[str, str], log: Path) -> tuple[int, float, float]:
    """(exit status, seconds, peak GB of the process tree): each step runs under its own small Python parent,
    whose RUSAGE_CHILDREN maximum is the step's alone."""
    probe = (
        "import resource, subprocess, sys\n"
        "code = subprocess.call(sys.argv[1:])\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
        "sys.exit(code)"
    )
    start = time.perf_counter()
    with log.open("w") as out:
        done = subprocess.run(
            [sys.executable, "-c", probe, *command], cwd=cwd, env=env, stdout=out, stderr=subprocess.PIPE, text=True
        )
    seconds = time.perf_counter() - start
    lines = done.stderr.strip().splitlines()
    with log.open("a") as out:
        out.write("\n".join(lines[:-1]))
    peak_kb = int(lines[-1]) if lines and lines[-1].isdigit() else 0
    return done.returncode, seconds, peak_kb / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--scale", type=float, default=1.0, help="fraction of each benchmark's items (1.0: the study's size)"
    )
    parser.add_argument("--out", default=os.environ.get("LANGDEC_BENCH_DIR", "/tmp/langdec-study-scale"))
    parser.add_argument("--steps", nargs="+", default=["import", "report-refusal", "report", "reparse", "study-tables"])
    parser.add_argument(
        "--keep-store", action="store_true", help="reuse the store of an earlier run instead of a fresh one"
    )
    args = parser.parse_args()
    out = Path(args.out)
    print(f"synthetic results set (scale {args.scale}) in {out / 'set'} ...", flush=True)
    stats = write_set(out / "set", args.scale)
    work = out / "work"
    if work.exists() and not args.keep_store:
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}",
        "LANGDEC_HOME": str(work / "home"),
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "HF_HUB_OFFLINE": "1",
    }
    langdec = [sys.executable, "-m", "langdec.cli", "--quiet"]
    help_text = subprocess.run([*langdec, "--help"], capture_output=True, text=True, env=env).stdout
    experiment = "imported-phase-3"
    commands = {
        "import": [*langdec, "import-results", str(out / "set")],
        "report-refusal": [*langdec, "report", "--experiment", experiment, "--out", str(work / "report-pooled")],
        "report": [*langdec, "report", "--experiment", experiment, "--by-tier", "--out", str(work / "report")],
        "reparse": [*langdec, "reparse", "--experiment", experiment, "--extractor", "langdec"],
        "study-tables": [*langdec, "study-tables", "--experiment", experiment, "--out", str(work / "study-tables")],
    }
    rows = []
    for step in args.steps:
        command = commands[step]
        available = command[len(langdec)] in help_text and (
            step != "reparse"
            or "--experiment"
            in subprocess.run([*langdec, "reparse", "--help"], capture_output=True, text=True, env=env).stdout
        )
        if not available:
            rows.append((step, "not available", "", "", ""))
            continue
        code, seconds, peak = timed(command, work, env, work / f"{step}.log")
        seconds_target, memory_target = TARGETS[step]
        verdict = (
            "refused (exit 2)"
            if step == "report-refusal" and code == 2
            else ("ok" if code == 0 else f"exit {code}, see {step}.log")
        )
        target = " / ".join(
            x for x in (f"<= {seconds_target} s" if seconds_target else "", f"<= {memory_target} GB") if x
        )
        rows.append((step, verdict, f"{seconds:.1f}", f"{peak:.2f}", target))
        print(f"  {step}: {verdict} in {seconds:.1f}s, peak {peak:.2f} GB", flush=True)
    print()
    print(
        f"rows {stats['rows']:,} ({stats['distinct_outputs']:,} distinct answers), {stats['files']} result files, "
        f"{stats['result_mb']} MB of result JSON; {os.cpu_count()} CPUs"
    )
    print()
    print("| step | outcome | seconds | peak GB | target |")
    print("|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
