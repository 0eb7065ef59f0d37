"""Prompt template sets render for every benchmark and instruction language."""

from __future__ import annotations

import pytest

from langdec.evaluation import benchmarks, prompts


@pytest.mark.parametrize("instr", prompts.instruction_languages())
def test_every_template_renders_for_every_benchmark(instr):
    for name in benchmarks.benchmark_names():
        if benchmarks.get(name).translate:
            continue  # its items need a translation backend (tests/evaluation/test_machine_translation.py); its wording is its family's
        item = benchmarks.load(name, benchmarks.get(name).languages[0])[0]
        for template in ("template1", "template2"):
            text = prompts.render(template, name, instr, item)
            assert "{" not in text.replace("{{", "")
            if benchmarks.get(name).task == "classification":
                assert all(label in text for label in benchmarks.get(name).labels)  # label words stay English
