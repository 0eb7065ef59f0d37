"""Experiment files validate before any work; benchmarks load from every original format."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SHARED_BENCHMARKS
from langdec import config, jobs, languages
from langdec.errors import LangdecError
from langdec.evaluation import benchmarks, extractors, prompts


def test_profiles_and_ladder_load():
    smoke = config.load_profile("smoke")
    paper = config.load_profile("paper")
    assert smoke.model.id == "smoke" and paper.model.id == "CohereLabs/tiny-aya-base"
    assert (paper.training.lora_r, paper.training.lora_alpha, paper.training.lr, paper.training.max_length) == (16, 32, 2e-4, 1024)
    assert len(paper.training.target_modules) == 7
    named = jobs.ladder_jobs(jobs.load_ladder("experiments/ladders/smoke.yaml"))
    assert [j.run_name for j in named] == ["baseline", "cond1-5k-s42", "cond2-zh-5k-s42", "cond2-es-5k-s42", "cond2-ur-5k-s42",
                                          "cond3-zh-5k-s42", "cond5-zh-5k-s42", "cond5-es-5k-s42", "cond5-ur-5k-s42"]


def test_unknown_key_names_the_key_and_the_valid_ones():
    with pytest.raises(LangdecError) as err:
        config.load_profile("smoke", ["training.learning_rate=1e-3"])
    assert "unknown key 'learning_rate'" in str(err.value) and "lr" in str(err.value)


def test_bad_values_fail_before_training():
    with pytest.raises(LangdecError, match="training.precision = 'fp8'; valid values: auto, fp16, bf16, fp32"):
        config.load_profile("smoke", ["training.precision=fp8"])
    with pytest.raises(LangdecError, match="expected int"):
        config.load_profile("smoke", ["training.batch_size=eight"])
    assert config.load_profile("smoke", ["training.lr=1e-3"]).training.lr == pytest.approx(1e-3)


def test_unknown_condition_and_language_list_valid_names():
    with pytest.raises(LangdecError, match="unknown condition '7'; valid conditions: 1, 2, 3, 4, 5, baseline, flex"):
        config.condition("7")
    with pytest.raises(LangdecError, match="unknown language 'klingon'"):
        languages.normalise("klingon")


@pytest.mark.parametrize("code,expected", [("zh", "zh"), ("zho_Hans", "zh"), ("ZH-hans", "zh"), ("eng_Latn", "en"),
                                           ("spa_Latn", "es"), ("urd_Arab", "ur"), ("hin_Deva", "hi"), ("arb_Arab", "ar")])
def test_language_codes_normalise_in_one_place(code, expected):
    assert languages.normalise(code) == expected


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
@pytest.mark.parametrize("name,lang,rows", [("sib200", "ur", 204), ("sib200", "zh", 204), ("mgsm", "zh", 250), ("mgsm", "es", 250),
                                            ("xnli", "ur", 2490), ("xnli", "en", 2490)])
def test_real_benchmark_files(name, lang, rows):
    items = benchmarks.load(name, lang, source=str(SHARED_BENCHMARKS))
    assert len(items) == rows
    if name == "xnli":
        assert benchmarks.label_distribution(items) == {"contradiction": 830, "entailment": 830, "neutral": 830}
    if name == "mgsm":
        assert all(item.label.lstrip("-").replace(".", "").isdigit() for item in items)  # "2,125" -> "2125"


def test_benchmarks_show_cli(tmp_path):
    result = subprocess.run([sys.executable, "-m", "langdec.cli", "benchmarks", "show", "sib200", "--lang", "urd_Arab"],
                            capture_output=True, text=True, cwd=tmp_path)
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


@pytest.mark.parametrize("instr", prompts.instruction_languages())
def test_every_template_renders_for_every_benchmark(instr):
    for name in benchmarks.benchmark_names():
        item = benchmarks.load(name, benchmarks.get(name).languages[0])[0]
        for template in ("template1", "template2"):
            text = prompts.render(template, name, instr, item)
            assert "{" not in text.replace("{{", "")
            if benchmarks.get(name).task == "classification":
                assert all(label in text for label in benchmarks.get(name).labels)  # label words stay English


# ----------------------------------------------------------------------- extractors
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
    lines = "\n".join(json.dumps({"output": o}, ensure_ascii=False) for o in ["Sports", "体育和政治", "none of these"]) + "\n"
    result = subprocess.run([sys.executable, "-m", "langdec.cli", "extract", "--benchmark", "sib200", "--extractor", "refined"],
                            input=lines, capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert [json.loads(l)["label"] for l in result.stdout.splitlines()] == ["sports", None, None]
    bad = subprocess.run([sys.executable, "-m", "langdec.cli", "extract", "--benchmark", "sib200"], input="not json\n",
                         capture_output=True, text=True, cwd=tmp_path)
    assert bad.returncode == 2 and "stdin line 1" in bad.stderr


def test_parquet_benchmark_files_load(tmp_path):
    import pandas as pd

    rows = [{"premise": "A man sleeps.", "hypothesis": "A man rests.", "label": 0},
            {"premise": "A man sleeps.", "hypothesis": "A man runs.", "label": 2}]
    path = tmp_path / "xnli-en.parquet"
    pd.DataFrame(rows).to_parquet(path)
    items = benchmarks.load("xnli", "en", source=str(path))
    assert [i.label for i in items] == ["entailment", "contradiction"]  # the hub's integer labels


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parents[1] / "experiments" / "ladders").glob("*.yaml")),
                         ids=lambda p: p.stem)
def test_every_shipped_ladder_validates_with_every_jobs_overrides(path):
    """A ladder, its profile and each entry's overrides are checked before any model work."""
    ladder = jobs.load_ladder(path)
    named = jobs.ladder_jobs(ladder)
    assert named and len({j.run_name for j in named}) == len(named)
    for job in named:
        profile = jobs.job_profile(ladder, job)
        assert config.condition(job.condition).available or job.condition == "baseline"
        assert profile.name == ladder.profile


def test_hub_loader_flags_a_split_that_is_not_the_published_size(tmp_path):
    """The real `datasets.load_dataset` path, on a local dataset repository laid out as on the hub."""
    import dataclasses

    import pandas as pd

    repo = tmp_path / "xnli-repo"
    (repo / "en").mkdir(parents=True)
    pd.DataFrame([{"premise": "A man sleeps.", "hypothesis": "A man rests.", "label": 0},
                  {"premise": "A man sleeps.", "hypothesis": "A man runs.", "label": 2}]).to_parquet(repo / "en" / "test.parquet")
    (repo / "README.md").write_text("---\nconfigs:\n- config_name: en\n  data_files:\n  - split: test\n    path: en/test.parquet\n---\n")
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
