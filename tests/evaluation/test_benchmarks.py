"""Benchmarks load from every original format through their YAML record mappings."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import SHARED_BENCHMARKS

from langdec.core.errors import LangdecError
from langdec.evaluation import benchmarks, prompts

FIXTURE_COUNTS = {"xnli": 12, "sib200": 14, "belebele": 4, "xcsqa": 4, "mgsm": 12}


@pytest.mark.parametrize("name", sorted(FIXTURE_COUNTS))
def test_fixtures_load_in_their_original_formats(name):
    bench = benchmarks.get(name)
    for lang in bench.languages:
        items = benchmarks.load(name, lang)
        assert len(items) == FIXTURE_COUNTS[name]
        assert all(item.label for item in items)
        if bench.task != "numeric":
            assert all(item.label in bench.labels for item in items)


def test_xnli_crlf_is_not_in_labels():
    items = benchmarks.load("xnli", "ur")
    assert benchmarks.label_distribution(items) == {"contradiction": 4, "entailment": 4, "neutral": 4}


@pytest.mark.skipif(not SHARED_BENCHMARKS.exists(), reason="../shared/benchmarks not present")
@pytest.mark.parametrize(
    "name,lang,rows",
    [
        ("sib200", "ur", 204),
        ("sib200", "zh", 204),
        ("mgsm", "zh", 250),
        ("mgsm", "es", 250),
        ("xnli", "ur", 2490),
        ("xnli", "en", 2490),
    ],
)
def test_real_benchmark_files(name, lang, rows):
    items = benchmarks.load(name, lang, source=str(SHARED_BENCHMARKS))
    assert len(items) == rows
    if name == "xnli":
        assert benchmarks.label_distribution(items) == {"contradiction": 830, "entailment": 830, "neutral": 830}
    if name == "mgsm":
        assert all(item.label.lstrip("-").replace(".", "").isdigit() for item in items)  # "2,125" -> "2125"


def test_benchmarks_show_cli(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "langdec.cli", "benchmarks", "show", "sib200", "--lang", "urd_Arab"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["rows"] == 14 and shown["labels"]["travel"] == 2


def test_missing_benchmark_file_is_a_clear_error(tmp_path):
    with pytest.raises(LangdecError, match="no file at"):
        benchmarks.load("sib200", "en", source=str(tmp_path))
    bad = tmp_path / "sib200" / "eng_Latn"
    bad.mkdir(parents=True)
    (bad / "test.tsv").write_text("index_id\tcategory\ttext\n1\tcooking\tsoup\n")
    with pytest.raises(LangdecError, match="record 1: .*cooking"):
        benchmarks.load("sib200", "en", source=str(tmp_path))


def test_parquet_benchmark_files_load(tmp_path):
    import pandas as pd

    rows = [
        {"premise": "A man sleeps.", "hypothesis": "A man rests.", "label": 0},
        {"premise": "A man sleeps.", "hypothesis": "A man runs.", "label": 2},
    ]
    path = tmp_path / "xnli-en.parquet"
    pd.DataFrame(rows).to_parquet(path)
    items = benchmarks.load("xnli", "en", source=str(path))
    assert [i.label for i in items] == ["entailment", "contradiction"]  # the hub's integer labels


def test_hub_loader_flags_a_split_that_is_not_the_published_size(tmp_path):
    """The real `datasets.load_dataset` path, on a local dataset repository laid out as on the hub."""
    import dataclasses

    import pandas as pd

    repo = tmp_path / "xnli-repo"
    (repo / "en").mkdir(parents=True)
    pd.DataFrame(
        [
            {"premise": "A man sleeps.", "hypothesis": "A man rests.", "label": 0},
            {"premise": "A man sleeps.", "hypothesis": "A man runs.", "label": 2},
        ]
    ).to_parquet(repo / "en" / "test.parquet")
    (repo / "README.md").write_text(
        "---\nconfigs:\n- config_name: en\n  data_files:\n  - split: test\n    path: en/test.parquet\n---\n"
    )
    bench = benchmarks.get("xnli")
    assert bench.hub.items == 5010  # the published XNLI test split
    local = dataclasses.replace(bench, hub=dataclasses.replace(bench.hub, id=str(repo)))
    with pytest.warns(UserWarning, match=r"xnli \(en\): .* has 2 rows, the published split has 5010"):
        rows = benchmarks._read_hub(local, "en")
    assert [r["label"] for r in rows] == [0, 2]
    exact = dataclasses.replace(bench, hub=dataclasses.replace(bench.hub, id=str(repo), items=2))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(benchmarks._read_hub(exact, "en")) == 2


def test_a_new_benchmark_in_a_known_format_is_only_yaml(tmp_path):
    """An XCOPA-like benchmark (premise, two choices, a 0-based answer index as a label) declared in YAML,
    read from a JSONL file, with no Python of its own."""
    import yaml

    from langdec.core.schema import build

    spec = yaml.safe_load("""
name: copa_like
task: multiple_choice
labels: [A, B]
languages: [en]
hub: {id: example/copa, config: "{code}", split: test}
local: {format: jsonl, path: "copa/{code}.jsonl"}
record:
  fields: {premise: [premise], question: [question]}
  choices: [choice1, choice2]
  label: [label]
  label_kind: label
  id: "{idx}"
""")
    bench = build(benchmarks.Benchmark, spec, "copa_like.yaml")
    item = benchmarks.to_item(
        bench,
        {
            "premise": "The man fell.",
            "question": "cause",
            "choice1": "He slipped.",
            "choice2": "He sang.",
            "label": 0,
            "idx": 7,
        },
        0,
    )
    assert item == benchmarks.Item(
        "7",
        {"premise": "The man fell.", "question": "cause", "choices": "A. He slipped.\nB. He sang."},
        "A",
        ["A", "B"],
    )
    nested = benchmarks.to_item(
        benchmarks.get("xcsqa"),
        {
            "id": "q1",
            "answerKey": " C ",
            "question": {"stem": "Where?", "choices": {"label": ["A", "B", "C"], "text": ["x", "y", "z"]}},
        },
        3,
    )
    assert (nested.id, nested.label, nested.options, nested.fields["choices"]) == (
        "q1",
        "C",
        ["A", "B", "C"],
        "A. x\nB. y\nC. z",
    )
    assert (
        benchmarks.to_item(benchmarks.get("xnli"), {"premise": "p", "hypothesis": "h", "label": 1}, 5).id == "5"
    )  # no id: the row


def test_a_bad_record_mapping_fails_when_the_benchmarks_load(tmp_path, monkeypatch):
    (tmp_path / "odd.yaml").write_text(
        "name: odd\ntask: classification\nlabels: [a]\nlanguages: [en]\n"
        "hub: {id: x, config: en, split: test}\nlocal: {format: jsonl, path: odd.jsonl}\n"
        "record: {fields: {text: [text]}, label: [label], label_kind: letters}\n"
    )
    monkeypatch.setattr(benchmarks, "benchmarks_dir", lambda: tmp_path)
    benchmarks._all.cache_clear()
    try:
        with pytest.raises(
            LangdecError, match="unknown label_kind 'letters'; valid label_kinds: label, letter, number, text"
        ):
            benchmarks.get("odd")
    finally:
        monkeypatch.undo()
        benchmarks._all.cache_clear()


def test_mixed_language_xnli_pairs_a_premise_with_the_parallel_hypothesis(tmp_path):
    ur, en, zh = (benchmarks.load("xnli", lang) for lang in ("ur", "en", "zh"))
    mixed = benchmarks.load("xnli_mixed", "ur")
    assert [m.fields["premise"] for m in mixed] == [i.fields["premise"] for i in ur]
    assert [m.fields["hypothesis"] for m in mixed] == [i.fields["hypothesis"] for i in en]  # English hypotheses
    assert [m.label for m in mixed] == [i.label for i in ur] and [m.id for m in mixed] == [i.id for i in ur]
    assert [m.fields["hypothesis"] for m in benchmarks.load("xnli_mixed", "en")] == [i.fields["hypothesis"] for i in zh]
    bench = benchmarks.get("xnli_mixed")
    assert (bench.family, bench.labels, bench.languages) == (
        "xnli",
        benchmarks.get("xnli").labels,
        benchmarks.get("xnli").languages,
    )
    assert prompts.render("template1", "xnli_mixed", "en", mixed[0]) == prompts.render(
        "template1", "xnli", "en", ur[0]
    ).replace(ur[0].fields["hypothesis"], en[0].fields["hypothesis"])
    # rows that are not parallel are refused, naming the row
    folder = tmp_path / "xnli"
    folder.mkdir()
    (folder / "dev-ur.tsv").write_text("p\th\tneutral\np2\th2\tentailment\n")
    (folder / "dev-en.tsv").write_text("p\th\tneutral\np2\th2\tcontradiction\n")
    with pytest.raises(LangdecError, match="xnli_mixed: row 2 is 'entailment' in ur but 'contradiction' in en"):
        benchmarks.load("xnli_mixed", "ur", source=str(tmp_path))


@pytest.fixture
def benchmark_folder(tmp_path, monkeypatch):
    """Benchmarks read from a temporary folder (with the checkout's template sets and extractors) for one test."""
    from langdec.evaluation import extractors

    caches = (benchmarks._all, prompts.prompt_sets, extractors.extractors, extractors._context)
    monkeypatch.setattr(benchmarks, "benchmarks_dir", lambda: tmp_path)
    for cache in caches:
        cache.cache_clear()
    yield tmp_path
    monkeypatch.undo()
    for cache in caches:
        cache.cache_clear()


QUIZ = """\
name: quiz
include: shared/choice.yaml
labels: [A, B]
languages: [en]
hub: {id: example/quiz, config: "{code}", split: test}
local: {format: jsonl, path: "quiz/{code}.jsonl"}
record: {fields: {question: [q]}, choices: [a, b], label: [gold], label_kind: letter, id: "{n}"}
prompts:
  langdec:
    template2: {en: "Pick A or B.\\n{question}\\n{choices}\\nLetter:"}
"""


def test_a_new_benchmark_is_its_own_file_with_shared_parts_included(benchmark_folder):
    """A benchmark in its own folder: its task kind, extractor chains and template1 wording come from shared files
    (an include inside an include, each path relative to its own file), its template2 wording is its own."""
    (benchmark_folder / "shared").mkdir()
    (benchmark_folder / "shared" / "choice.yaml").write_text(
        "include: letter_prompts.yaml\ntask: multiple_choice\n"
        "extractors: {strict: [study_choice], refined: [study_choice], langdec: [first_line, refined_letter]}\n"
    )
    (benchmark_folder / "shared" / "letter_prompts.yaml").write_text(
        'prompts:\n  langdec:\n    source: written for this test\n    template1: {en: "{question}\\n{choices}\\nAnswer:"}\n'
    )
    (benchmark_folder / "quiz.yaml").write_text(QUIZ)
    (benchmark_folder / "quiz").mkdir()
    (benchmark_folder / "quiz" / "en.jsonl").write_text(
        json.dumps({"n": 7, "q": "Which is red?", "a": "sky", "b": "rose", "gold": 2}) + "\n"
    )
    from langdec.evaluation import extractors

    assert benchmarks.benchmark_names() == ["quiz"] and benchmarks.get("quiz").task == "multiple_choice"
    (item,) = benchmarks.load("quiz", "en", source=str(benchmark_folder))
    assert (item.id, item.label, item.options) == ("7", "B", ["A", "B"])
    assert prompts.render("template1", "quiz", "en", item, "langdec") == "Which is red?\nA. sky\nB. rose\nAnswer:"
    assert (
        prompts.render("template2", "quiz", "en", item, "langdec")
        == "Pick A or B.\nWhich is red?\nA. sky\nB. rose\nLetter:"
    )
    # the study's set has no quiz wording: it falls back to langdec's, and says so
    assert prompts.resolve("study", "template1", "quiz", "en") == ("{question}\n{choices}\nAnswer:", "langdec")
    assert prompts.instruction_languages("langdec") == ["en"]
    assert extractors.get("langdec")("quiz", "(B) rose") == "B" and extractors.get("strict").chains == {
        "quiz": ("study_choice",)
    }


@pytest.mark.parametrize(
    "shared,message",
    [
        (None, "include 'shared/choice.yaml' is not a file"),
        ("include: ../quiz.yaml\n", "include cycle quiz.yaml -> choice.yaml -> quiz.yaml"),
    ],
)
def test_a_missing_or_circular_include_fails_in_one_line_naming_the_file(benchmark_folder, shared, message):
    (benchmark_folder / "quiz.yaml").write_text(QUIZ)
    if shared:
        (benchmark_folder / "shared").mkdir()
        (benchmark_folder / "shared" / "choice.yaml").write_text(shared)
    with pytest.raises(LangdecError) as err:
        benchmarks.get("quiz")
    assert message in str(err.value) and "\n" not in str(err.value)
    named = benchmark_folder / ("quiz.yaml" if shared is None else "shared/choice.yaml")
    assert str(err.value).startswith(f"{named.resolve()}: ")


def test_benchmark_prompts_and_chains_name_known_sets_and_extractors(benchmark_folder):
    (benchmark_folder / "shared").mkdir()
    (benchmark_folder / "shared" / "choice.yaml").write_text("task: multiple_choice\n")
    (benchmark_folder / "quiz.yaml").write_text(QUIZ.replace("  langdec:\n", "  langdek:\n    source: a typo\n"))
    with pytest.raises(
        LangdecError,
        match=r"quiz.yaml: prompts.langdek is not a template set \(experiments/prompts/\); "
        "sets: langdec, study",
    ):
        prompts.get_set("study")
    from langdec.evaluation import extractors

    (benchmark_folder / "quiz.yaml").write_text(QUIZ.replace("template2:", "source: ours\n    template2:"))
    benchmarks._all.cache_clear()
    with pytest.raises(
        LangdecError,
        match=r"quiz.yaml: no chain for extractor 'strict'; give `extractors: strict: \[steps\]` "
        r"or include the shared file of its task kind \(shared/multiple_choice.yaml\)",
    ):
        extractors.extractors()
