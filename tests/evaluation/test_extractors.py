"""Answer extractors: langdec's rules over every answer word, the study's strict and refined, versions, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from langdec.evaluation import benchmarks, extractors, prompts


def _label_cases():
    for bench in ("xnli", "sib200"):
        for lang, table in prompts.answer_words(bench).items():
            for label, words in table.items():
                for word in words:
                    yield bench, lang, label, word


@pytest.mark.parametrize("bench,lang,label,word", list(_label_cases()))
def test_langdec_extractor_maps_every_answer_word_of_every_language(bench, lang, label, word):
    ex = extractors.get("langdec")
    assert ex(bench, word) == label
    assert ex(bench, f" {word}.\nmore text") == label


@pytest.mark.parametrize("bench,label", [(b, l) for b in ("xnli", "sib200") for l in benchmarks.get(b).labels])
def test_strict_accepts_english_labels(bench, label):
    assert extractors.get("strict")(bench, label.capitalize() + ".") == label


@pytest.mark.parametrize("output", ["sports and politics", "travel / health", "体育和政治", "صحت اور سیاست"])
def test_two_labels_are_a_hedge(output):
    for name in ("refined", "langdec"):
        assert extractors.get(name)("sib200", output) is None


@pytest.mark.parametrize("output", ["", "asdf qwer", "\n\n", "1234"])
def test_garbage_has_no_label(output):
    for name in ("strict", "refined", "langdec"):
        assert extractors.get(name)("sib200", output) is None


def test_strict_and_refined_differ_where_the_study_saw_flips():
    strict, refined = extractors.get("strict"), extractors.get("refined")
    assert strict("sib200", "politics and sports") == "politics" and refined("sib200", "politics and sports") is None
    assert strict("sib200", "سیاست") is None and refined("sib200", "سیاست") == "politics"
    assert strict("xnli", "答案是entailment") is None and refined("xnli", "答案是entailment") == "entailment"
    assert strict("belebele", "the answer is b") == refined("belebele", "the answer is b") == "B"
    assert refined("mgsm", "so ۱۲,۵۰۰ in total") == "12500"


def test_extractor_versions_are_stable_and_distinct():
    first = {n: e.version for n, e in extractors.extractors().items()}
    extractors.extractors.cache_clear()
    assert {n: e.version for n, e in extractors.extractors().items()} == first
    assert len(set(first.values())) == len(first) == 3


def test_extract_cli_contract(tmp_path):
    lines = (
        "\n".join(json.dumps({"output": o}, ensure_ascii=False) for o in ["Sports", "体育和政治", "none of these"])
        + "\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "langdec.cli", "extract", "--benchmark", "sib200", "--extractor", "refined"],
        input=lines,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert [json.loads(l)["label"] for l in result.stdout.splitlines()] == ["sports", None, None]
    bad = subprocess.run(
        [sys.executable, "-m", "langdec.cli", "extract", "--benchmark", "sib200"],
        input="not json\n",
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert bad.returncode == 2 and "stdin line 1" in bad.stderr
