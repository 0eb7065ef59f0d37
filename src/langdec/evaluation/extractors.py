"""Answer extractors: registered steps chained per benchmark, versioned by their code and tables.

A chain runs its steps left to right; a step takes the previous value (text) and
returns new text, or the final label (None = no answer). experiments/extractors.yaml
names the extractors; each benchmark's file gives its chain for every one of them
(`extractors:`, usually from the shared/<task>.yaml it includes). The steps live in
`extract_steps` (langdec's) and `study_steps` (the study's two extractors).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import sys
from dataclasses import dataclass

from langdec.core.errors import LangdecError, did_you_mean
from langdec.core.paths import experiments_dir
from langdec.core.schema import read_yaml
from langdec.evaluation import benchmarks, study_steps
from langdec.evaluation.extract_steps import STEPS, Context, Label
from langdec.evaluation.prompts import and_words, answer_words


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


def _chain(name: str, bench: benchmarks.Benchmark) -> tuple[str, ...]:
    steps = bench.extractors.get(name)
    if not steps:
        raise LangdecError(
            f"{bench.path}: no chain for extractor {name!r}; give `extractors: {name}: [steps]` "
            f"or include the shared file of its task kind (shared/{bench.task}.yaml)"
        )
    for s in steps:
        STEPS.get(s, f"{bench.path}: extractors.{name}")  # an unknown step fails here, naming the file
    return tuple(steps)


def _declared() -> dict[str, str]:
    """Extractor name -> description, as experiments/extractors.yaml declares them."""
    path = experiments_dir() / "extractors.yaml"
    out = {}
    for name, spec in read_yaml(path).items():
        if not isinstance(spec, dict) or set(spec) - {"description"}:
            raise LangdecError(
                f"{path}: extractor {name!r} takes only `description:`; its chains are in the benchmark "
                "files (`extractors:` in experiments/benchmarks/<name>.yaml)"
            )
        out[str(name)] = str(spec.get("description", ""))
    return out


@functools.lru_cache(maxsize=1)
def extractors() -> dict[str, Extractor]:
    declared = _declared()
    # variants (`like:`) use their family's chains and tables, so they add nothing to a version
    families = [benchmarks.get(b) for b in benchmarks.benchmark_names() if not benchmarks.get(b).like]
    for bench in families:
        unknown = sorted(set(bench.extractors) - set(declared))
        if unknown:
            raise LangdecError(
                f"{bench.path}: extractors.{unknown[0]} is not an extractor (experiments/extractors.yaml); "
                f"valid: {', '.join(sorted(declared))}"
            )
    tables = {
        "answers": {b.name: answer_words(b.name) for b in families},
        "and": and_words(),
        "study": study_steps.terms(),
    }
    out = {}
    for name, description in declared.items():
        chains = {b.name: _chain(name, b) for b in families}
        # A version hashes the chains, the whole source of every module a used step lives in
        # (so helpers are covered too) and every table a step can read.
        modules = sorted({STEPS[s].__module__ for chain in chains.values() for s in chain})
        material = json.dumps(
            {"chains": chains, "code": [inspect.getsource(sys.modules[m]) for m in modules], "tables": tables},
            sort_keys=True,
            ensure_ascii=False,
        )
        out[name] = Extractor(name, description, chains, hashlib.sha256(material.encode()).hexdigest()[:10])
    return out


def get(name: str) -> Extractor:
    found = extractors().get(name)
    if found is None:
        raise did_you_mean("extractor", name, extractors())
    return found
