"""Execution-scored code benchmarks (MBPP, MultiPL-E): declared as data, scored by running tests.

A code benchmark file (experiments/benchmarks/code/*.yaml) names its record
format (`mbpp` or `multipl_e`), programming language, hub source and local file.
Completions are generated with stop sequences, cut at the first stop, assembled
with the benchmark's tests into a program and executed in the sandbox
(`langdec.sandbox`). pass@k uses the unbiased estimator of Chen et al. (2021):
1 - C(n-c, k) / C(n, k) for n samples of which c pass, averaged over tasks.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from langdec.core.errors import LangdecError, did_you_mean
from langdec.core.paths import experiments_dir
from langdec.core.schema import build
from langdec.evaluation.sandbox import Limits, Program, Sandbox, python_command

FORMATS = ("mbpp", "multipl_e")
JAVA_FLAGS = [
    "-Xmx256m",
    "-Xss1m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-XX:ReservedCodeCacheSize=32m",
    "-XX:MaxMetaspaceSize=128m",
    "-XX:CompressedClassSpaceSize=64m",
]
# MBPP task-id ranges of the original release (the hub's "full" config splits the same way)
MBPP_SPLITS = {"prompt": (1, 10), "test": (11, 510), "validation": (511, 600), "train": (601, 974)}
MBPP_PROMPT = "You are an expert Python programmer, and here is your task: {text} Your code should pass these tests:\n\n{tests}\n[BEGIN]\n"


@dataclass
class CodeHub:
    id: str
    config: str | None = None
    split: str = "test"


@dataclass
class CodeLocal:
    path: str
    split_by_task_id: bool = False


@dataclass
class CodeBenchmark:
    name: str
    format: str
    programming_language: str
    hub: CodeHub
    local: CodeLocal
    stop: list[str] = field(default_factory=list)
    java_classpath: list[str] = field(default_factory=list)
    path: Path | None = None


@dataclass
class CodeTask:
    id: str
    prompt: str
    tests: str
    stop: list[str]
    setup: str = ""
    reference: str | None = None  # MBPP ships a reference solution; MultiPL-E does not
    text: str = ""


def code_dir() -> Path:
    return experiments_dir() / "benchmarks" / "code"


@functools.lru_cache(maxsize=None)
def code_benchmarks() -> dict[str, CodeBenchmark]:
    out = {}
    for path in sorted(code_dir().glob("*.yaml")):
        bench = build(CodeBenchmark, yaml.safe_load(path.read_text(encoding="utf-8")), str(path))
        if bench.format not in FORMATS:
            raise LangdecError(f"{path}: format {bench.format!r}; valid formats: {', '.join(FORMATS)}")
        if bench.programming_language not in ("python", "java"):
            raise LangdecError(
                f"{path}: programming_language {bench.programming_language!r}; langdec executes python and java"
            )
        bench.path = path
        out[bench.name] = bench
    return out


def get(name: str) -> CodeBenchmark:
    benches = code_benchmarks()
    if name not in benches:
        raise did_you_mean("code benchmark", name, benches)
    return benches[name]


def _records(bench: CodeBenchmark, source: str, split: str) -> list[dict[str, Any]]:
    if source == "hub":
        import datasets

        try:
            rows = datasets.load_dataset(
                bench.hub.id, bench.hub.config, split=split if split != "test" else bench.hub.split
            )
        except Exception as exc:
            raise LangdecError(
                f"{bench.name}: cannot load hf:{bench.hub.id} ({type(exc).__name__}: {str(exc)[:160]}). Offline? "
                f"Download it first, or use the local fixtures (evaluation.source=fixtures)"
            ) from None
        return [dict(r) for r in rows]
    from langdec.evaluation.benchmarks import fixtures_dir

    root = fixtures_dir() if source == "fixtures" else Path(source)
    path = root / bench.local.path
    if not path.exists():
        raise LangdecError(
            f"{bench.name}: no local file {path} (declared in {bench.path}); pass the folder that holds "
            f"{bench.local.path} or use evaluation.source=hub"
        )
    records = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise LangdecError(f"{path}:{number}: not valid JSON ({exc.msg}); fix or remove the line") from None
    if bench.local.split_by_task_id:
        low, high = MBPP_SPLITS[split]
        records = [r for r in records if low <= int(r["task_id"]) <= high]
    return records


def source_digest(name: str, source: str) -> str:
    """Changes when the benchmark's declaration or its local file changes (a hub source is taken as named)."""
    import hashlib

    bench = get(name)
    h = hashlib.sha256(bench.path.read_bytes() if bench.path else name.encode())
    h.update(source.encode())
    if source != "hub":
        from langdec.evaluation.benchmarks import fixtures_dir

        local = (fixtures_dir() if source == "fixtures" else Path(source)) / bench.local.path
        if local.exists():
            h.update(local.read_bytes())
    return h.hexdigest()[:12]


def _task(bench: CodeBenchmark, record: dict[str, Any]) -> CodeTask:
    if bench.format == "mbpp":
        tests = list(record["test_list"])
        return CodeTask(
            str(record["task_id"]),
            MBPP_PROMPT.format(text=record["text"], tests="\n".join(tests)),
            "\n".join(tests),
            bench.stop,
            record.get("test_setup_code") or "",
            record.get("code"),
            record["text"],
        )
    return CodeTask(
        str(record["name"]), record["prompt"], record["tests"], list(record.get("stop_tokens") or bench.stop)
    )


def load(name: str, *, source: str = "hub", split: str = "test", limit: int | None = None) -> list[CodeTask]:
    bench = get(name)
    tasks = [_task(bench, r) for r in _records(bench, source, split)]
    return tasks[:limit] if limit else tasks


def truncate(text: str, stops: list[str]) -> str:
    cut = len(text)
    for stop in stops:
        at = text.find(stop)
        if at != -1:
            cut = min(cut, at)
    return text[:cut]


def program(bench: CodeBenchmark, task: CodeTask, completion: str) -> Program:
    """The candidate, then the task's tests, then a line printing a fresh random marker: a candidate passes only
    if the process exits 0 *and* printed the marker, so one that ends the process early (sys.exit(0),
    System.exit(0)) before its tests ran fails."""
    marker = f"langdec-tests-done-{secrets.token_hex(8)}"
    if bench.programming_language == "python":
        return Program(
            {"main.py": f"{completion}\n\n{task.setup}\n{task.tests}\nprint({marker!r})\n"},
            [python_command("main.py")],
            done_marker=marker,
        )
    classpath = [*bench.java_classpath, *filter(None, os.environ.get("LANGDEC_JAVA_CLASSPATH", "").split(":"))]
    binds: list[str] = []
    for jar in classpath:
        binds += ["--ro-bind", str(Path(jar).resolve()), f"/classpath/{Path(jar).name}"]
    cp = ":".join([".", *(f"/classpath/{Path(j).name}" for j in classpath)])
    # the tests' own main runs first; the marker is printed only when it returns
    runner = (
        "public class LangdecTestsDone { public static void main(String[] args) throws Throwable { Problem.main(args); "
        f'System.out.println("{marker}"); }} }}'
    )
    return Program(
        {"Problem.java": task.prompt + completion + "\n" + task.tests, "LangdecTestsDone.java": runner},
        [
            ["javac", *(f"-J{f}" for f in JAVA_FLAGS), "-cp", cp, "Problem.java", "LangdecTestsDone.java"],
            ["java", "-ea", *JAVA_FLAGS, "-cp", cp, "LangdecTestsDone"],
        ],
        binds,
        done_marker=marker,
    )


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one task: n samples, c correct."""
    if n - c < k:
        return 1.0
    product = 1.0
    for i in range(n - c + 1, n + 1):
        product *= 1.0 - k / i
    return 1.0 - product


@dataclass
class CodeSettings:
    samples: int = 1
    temperature: float = 0.0
    ks: tuple[int, ...] = (1,)
    max_new_tokens: int = 256
    batch_size: int = 8
    max_prompt_tokens: int = 1024
    limits: Limits = field(default_factory=Limits)
    workers: int = 2


def complete(scorer, tasks: list[CodeTask], settings: CodeSettings, progress: bool = False) -> list[list[str]]:
    """`samples` completions per task (greedy when temperature is 0), cut at the task's stop sequences.
    `scorer` is an evaluation backend's model (`evaluation.backends`)."""
    outs = scorer.generate(
        [t.prompt for t in tasks],
        max_new_tokens=settings.max_new_tokens,
        batch_size=settings.batch_size,
        max_prompt_tokens=settings.max_prompt_tokens,
        progress=progress,
        samples=settings.samples,
        temperature=settings.temperature,
        stop=sorted({s for t in tasks for s in t.stop}),
        truncation_side="left",
    )  # a completion continues the prompt's end
    return [[truncate(o, t.stop) for o in per_task] for t, per_task in zip(tasks, outs)]


def execute(
    bench: CodeBenchmark,
    tasks: list[CodeTask],
    completions: list[list[str]],
    settings: CodeSettings,
    sandbox: Sandbox | None = None,
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Run every candidate in the sandbox; pass@k per benchmark and one record per candidate."""
    jobs = [(t, s, c) for t, cs in zip(tasks, completions) for s, c in enumerate(cs)]
    own = sandbox is None
    sandbox = sandbox or Sandbox(settings.limits, slots=settings.workers)
    start = time.perf_counter()
    try:
        with ThreadPoolExecutor(max_workers=settings.workers) as pool:
            results = list(pool.map(lambda job: sandbox.run(program(bench, job[0], job[2])), jobs))
    finally:
        if own:
            sandbox.close()
    seconds = time.perf_counter() - start
    records = [
        {
            "benchmark": bench.name,
            "task_id": t.id,
            "sample": s,
            "completion": c,
            "status": r.status,
            "passed": r.passed,
            "seconds": round(r.seconds, 3),
            "stderr": r.stderr[-800:],
        }
        for (t, s, c), r in zip(jobs, results)
    ]
    per_task: dict[str, list[bool]] = {}
    for rec in records:
        per_task.setdefault(rec["task_id"], []).append(rec["passed"])
    metrics: dict[str, float] = {}
    n = settings.samples
    for k in settings.ks:
        if k <= n:
            metrics[f"code.{bench.name}.pass_at_{k}"] = sum(pass_at_k(n, sum(v), k) for v in per_task.values()) / max(
                len(per_task), 1
            )
    metrics[f"code.{bench.name}.tasks"] = float(len(per_task))
    metrics[f"code.{bench.name}.candidates_per_s"] = len(jobs) / max(seconds, 1e-9)
    return metrics, records
