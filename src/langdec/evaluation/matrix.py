"""The evaluation matrix: which (template, benchmark, data language, instruction language)
cells a condition is scored on, the uniform metric keys, and per-cell scoring."""

from __future__ import annotations

import collections
from collections.abc import Iterable
from dataclasses import dataclass

from langdec.core.config import Condition
from langdec.evaluation import benchmarks
from langdec.evaluation.prompts import DEFAULT_SET, instruction_languages


@dataclass(frozen=True)
class Cell:
    template: str
    benchmark: str
    data: str
    instr: str

    @property
    def name(self) -> str:
        # MLflow metric names cannot contain '=', so cells are written data:ur.instr:en
        return f"{self.template}.{self.benchmark}.data:{self.data}.instr:{self.instr}"


def gen_key(extractor: str, cell: Cell, stat: str = "acc") -> str:
    return f"gen.{extractor}.{cell.name}.{stat}"


def ll_key(benchmark: str, data: str, stat: str = "acc") -> str:
    return f"ll.{benchmark}.data:{data}.{stat}"


def instruction_languages_for(
    cond: Condition, trained: str | None, data_languages: list[str], prompt_set: str = DEFAULT_SET
) -> list[str]:
    available = set(instruction_languages(prompt_set))
    if cond.instruction_languages == "all" or not trained:
        langs = [l for l in data_languages if l in available]
    else:
        langs = [l for l in dict.fromkeys(["en", trained]) if l in available]
    return langs


def cells(
    cond: Condition,
    trained: str | None,
    data_languages: list[str],
    bench_names: Iterable[str],
    templates: list[str],
    prompt_set: str = DEFAULT_SET,
) -> list[Cell]:
    instr = instruction_languages_for(cond, trained, data_languages, prompt_set)
    out = []
    for bench_name in bench_names:
        bench = benchmarks.get(bench_name)
        for data in data_languages:
            if data not in bench.languages:
                continue
            for template in templates:
                for i in instr:
                    out.append(Cell(template, bench_name, data, i))
    return out


@dataclass
class CellScore:
    n: int
    acc: float
    unparsed: float
    top_label_share: float
    predicted: dict[str, int]
    gold: dict[str, int]


def score(predictions: list[str | None], gold: list[str]) -> CellScore:
    n = len(gold)
    correct = sum(p == g for p, g in zip(predictions, gold))
    parsed = [p for p in predictions if p is not None]
    counts = collections.Counter(parsed)
    top = counts.most_common(1)[0][1] / n if counts and n else 0.0
    return CellScore(
        n=n,
        acc=correct / n if n else 0.0,
        unparsed=(n - len(parsed)) / n if n else 0.0,
        top_label_share=top,
        predicted=dict(sorted(counts.items())),
        gold=dict(sorted(collections.Counter(gold).items())),
    )
