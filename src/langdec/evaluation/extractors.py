"""Answer extractors: registered steps chained per benchmark or task, versioned by their code and tables.

A chain runs its steps left to right; a step takes the previous value (text) and
returns new text, or the final label (None = no answer). Chains are declared in
experiments/extractors.yaml, per benchmark (`xnli: [...]`) or per task kind
(`classification: [...]`); a benchmark's own chain wins. The steps live in
`extract_steps` (langdec's) and `study_steps` (the study's two extractors).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import sys
from dataclasses import dataclass

import yaml

from ..paths import experiments_dir
from ..errors import LangdecError, did_you_mean
from . import benchmarks, study_steps
from .extract_steps import STEPS, Context, Label
from .prompts import and_words, answer_words

@dataclass(frozen=True)
class Extractor:
    name: str
    description: str
    chains: dict[str, tuple[str, ...]]  # benchmark name -> steps
    version: str

    def __call__(self, benchmark: str, output: str) -> str | None:
        return self.trace(benchmark, output)[0]

    def trace(self, benchmark: str, output: str) -> tuple[str | None, str | None]:
        """The label and the rule that read it (the step's own rule name, else the step's name); (None, None)
        when nothing was read."""
        ctx = _context(benchmark)
        chain = self.chains[ctx.benchmark]  # the benchmark's family
        value: str | None = output
        rule = None
        for name in chain:
            value = STEPS[name](value, ctx)
            rule = name
            if value is None or isinstance(value, Label):
                break
        if value is None or value == "":
            return None, None
        return str(value), getattr(value, "rule", rule)


@functools.lru_cache(maxsize=None)
def _context(benchmark: str) -> Context:
    bench = benchmarks.get(benchmark)
    return Context(bench.family, tuple(bench.labels), bench.task)


def _chain(path, name: str, spec: dict, bench: benchmarks.Benchmark) -> tuple[str, ...]:
    steps = spec.get(bench.name) or spec.get(bench.task)
    if not steps:
        raise LangdecError(f"{path}: extractor {name!r} has no chain for benchmark {bench.name!r} "
                           f"(give `{bench.name}:` or `{bench.task}:` a list of steps)")
    for s in steps:
        if s not in STEPS:
            raise did_you_mean("extractor step", s, STEPS)
    return tuple(steps)


@functools.lru_cache(maxsize=1)
def extractors() -> dict[str, Extractor]:
    path = experiments_dir() / "extractors.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    out = {}
    # variants (`like:`) use their family's chains and tables, so they add nothing to a version
    families = [b for b in benchmarks.benchmark_names() if not benchmarks.get(b).like]
    tables = {"answers": {b: answer_words(b) for b in families}, "and": and_words(),
              "study": study_steps.terms()}
    for name, spec in data.items():
        known = {"description", *benchmarks.TASKS, *benchmarks.benchmark_names()}
        unknown = sorted(set(spec) - known)
        if unknown:
            raise LangdecError(f"{path}: extractor {name!r} has unknown key(s) {', '.join(unknown)}; "
                               f"valid: {', '.join(sorted(known))}")
        chains = {b: _chain(path, name, spec, benchmarks.get(b)) for b in families}
        # A version hashes the chains, the whole source of every module a used step lives in
        # (so helpers are covered too) and every table a step can read.
        modules = sorted({STEPS[s].__module__ for chain in chains.values() for s in chain})
        material = json.dumps({"chains": chains, "code": [inspect.getsource(sys.modules[m]) for m in modules], "tables": tables},
                              sort_keys=True, ensure_ascii=False)
        out[name] = Extractor(name, str(spec.get("description", "")), chains, hashlib.sha256(material.encode()).hexdigest()[:10])
    return out


def get(name: str) -> Extractor:
    found = extractors().get(name)
    if found is None:
        raise did_you_mean("extractor", name, extractors())
    return found
