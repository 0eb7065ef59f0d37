"""Experiment files validate before any work: unknown keys, bad values and unknown names fail naming what is valid."""

from __future__ import annotations

import time

import pytest
from conftest import cli_exit, one_error_line

from langdec import cli
from langdec.core import config, languages
from langdec.core.errors import LangdecError
from langdec.orchestration import jobs


def test_profiles_and_ladder_load():
    smoke = config.load_profile("smoke")
    paper = config.load_profile("paper")
    assert smoke.model.id == "smoke" and paper.model.id == "CohereLabs/tiny-aya-base"
    assert (paper.training.lora_r, paper.training.lora_alpha, paper.training.lr, paper.training.max_length) == (
        16,
        32,
        2e-4,
        1024,
    )
    assert len(paper.training.target_modules) == 7
    named = jobs.ladder_jobs(jobs.load_ladder("experiments/ladders/smoke.yaml"))
    assert [j.run_name for j in named] == [
        "baseline",
        "cond1-5k-s42",
        "cond2-zh-5k-s42",
        "cond2-es-5k-s42",
        "cond2-ur-5k-s42",
        "cond3-zh-5k-s42",
        "cond5-zh-5k-s42",
        "cond5-es-5k-s42",
        "cond5-ur-5k-s42",
    ]


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


@pytest.mark.parametrize(
    "code,expected",
    [
        ("zh", "zh"),
        ("zho_Hans", "zh"),
        ("ZH-hans", "zh"),
        ("eng_Latn", "en"),
        ("spa_Latn", "es"),
        ("urd_Arab", "ur"),
        ("hin_Deva", "hi"),
        ("arb_Arab", "ar"),
    ],
)
def test_language_codes_normalise_in_one_place(code, expected):
    assert languages.normalise(code) == expected


def test_a_stage_sees_only_the_profile_sections_it_declares():
    from langdec.data import checks
    from langdec.evaluation import probe
    from langdec.evaluation import stage as evaluation
    from langdec.orchestration import pipeline
    from langdec.training import stage as train

    profile = config.load_profile("smoke")
    seen = profile.only("evaluate", evaluation.SECTIONS)
    assert seen.evaluation is profile.evaluation and seen.model is profile.model and seen.name == "smoke"
    with pytest.raises(
        config.UndeclaredSection,
        match=r"the evaluate stage read profile.corpus.tiers, which it does not declare; "
        r"add 'corpus' to its SECTIONS",
    ):
        seen.corpus.tiers
    with pytest.raises(config.UndeclaredSection, match="profile.corpus,"):
        bool(seen.corpus)
    with pytest.raises(config.UndeclaredSection, match="the check stage read profile.training.lr"):
        profile.only("check", checks.SECTIONS).training.lr
    with pytest.raises(LangdecError, match="unknown profile section 'corpora'"):
        profile.only("x", ("corpora",))
    # every stage of the pipeline declares sections the profile has; training needs them all (it rebuilds data)
    for module in (checks, train, evaluation, probe):
        assert set(module.SECTIONS) <= set(config.SECTIONS)
    assert set(train.SECTIONS) == set(config.SECTIONS) and "corpus" not in evaluation.SECTIONS
    assert pipeline.STAGES == ("data", "check", "train", "evaluate", "probe")


@pytest.mark.parametrize(
    "override,message",
    [
        # each section checks its own values: Literal types, field metadata, its validate()
        ("model.tokenizer_vocab=many", "smoke.yaml.model.tokenizer_vocab: expected int, got 'many'"),
        ("corpus.sampling=random", "smoke.yaml: corpus.sampling = 'random'; valid values: study, keyed"),
        ("corpus.fetch_workers=0", "smoke.yaml: corpus.fetch_workers must be >= 1, got 0"),
        ("corpus.tiers.5K=3", "smoke.yaml: corpus.tiers key '5K' must look like 5k, 20k or 500"),
        ("training.lr=0", "smoke.yaml: training.lr must be positive, got 0.0"),
        ("training.lr=nan", "smoke.yaml: training.lr = nan; give a finite number"),
        ("training.warmup_ratio=1", "smoke.yaml: training.warmup_ratio must be in [0, 1), got 1.0"),
        (
            "evaluation.truncation_side=middle",
            "smoke.yaml: evaluation.truncation_side = 'middle'; valid values: right, left",
        ),
        ("evaluation.code_workers=0", "smoke.yaml: evaluation.code_workers must be positive, got 0"),
        (
            "evaluation.max_items=0",
            "smoke.yaml: evaluation.max_items must be a positive number of items (or null for all), got 0",
        ),
        ("translation.max_retries=-1", "smoke.yaml: translation.max_retries must be >= 0, got -1"),
        (
            "translation.base_url=ftp://x",
            "smoke.yaml: translation.base_url 'ftp://x' (query and credentials not shown)",
        ),
        # names a stage owns are checked by its registry, with the file and key in front
        (
            "training.peft_method=lorra",
            "smoke.yaml: training.peft_method: unknown PEFT method 'lorra'; valid PEFT methods: ",
        ),
        (
            "translation.backend=deepl",
            "smoke.yaml: translation.backend: unknown translation backend 'deepl'; "
            "valid translation backends: cohere, hf, openai",
        ),
        (
            "evaluation.prompts=mine",
            "smoke.yaml: evaluation.prompts: unknown prompt template set 'mine'; valid prompt template sets: ",
        ),
        (
            "evaluation.benchmarks=[xnlii]",
            "smoke.yaml: evaluation.benchmarks: unknown benchmark 'xnlii'; valid benchmarks: ",
        ),
    ],
)
def test_a_bad_value_in_each_section_fails_with_that_sections_message(override, message):
    with pytest.raises(LangdecError) as err:
        config.load_profile("smoke", [override])
    assert message in str(err.value) and "\n" not in str(err.value)


def test_config_owns_the_values_its_stages_read():
    """The stages that read a Literal setting take its values from config, or agree with it."""
    import typing

    from langdec.evaluation import benchmarks, inference
    from langdec.models.effective import TRAINING_BACKENDS

    assert TRAINING_BACKENDS == typing.get_args(config.TrainingBackend) == ("auto", "hf", "unsloth")
    assert benchmarks.SLICES == typing.get_args(config.Slice)
    assert inference.TRUNCATION_SIDES == typing.get_args(config.TruncationSide)


# ---------------------------------------------------------------------- hostile cases: impossible numbers and secrets in settings
GOOD = "def add(a, b):\n    return a + b\n"


_main = cli_exit


_one_error = one_error_line


_one_error_line = _one_error  # the name the first hostile round's tests call it by


@pytest.mark.parametrize(
    "override,expected",
    [
        ("training.lr=nan", "training.lr = nan"),
        ("training.lr=inf", "training.lr = inf"),
        ("corpus.tiers.5k=0", "corpus.tiers.5k = 0"),
    ],
)
def test_impossible_numbers_are_refused_before_any_work(capsys, override, expected):
    code, err = _main(capsys, "check", "--condition", "2", "--lang", "zh", "--set", override)
    assert code == 2 and expected in _one_error_line(err)


def test_a_secret_in_the_base_url_is_never_echoed(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    src = tmp_path / "m.py"
    src.write_text(GOOD)
    code, err = _main(
        capsys,
        "translate",
        str(src),
        "--lang",
        "zh",
        "--backend",
        "openai",
        "--model",
        "m",
        "--base-url",
        "http://user:hunter2@127.0.0.1:99999/v1?token=SUPERSECRET",
    )
    line = _one_error_line(err)
    assert code == 2 and "base_url" in line and "SUPERSECRET" not in err and "hunter2" not in err


@pytest.mark.slow
def test_a_password_in_an_override_reaches_no_name_tag_file_or_lock(
    store, tmp_path, capsys, langdec_home, smoke_profile
):
    url = "http://user:hunter2@127.0.0.1:9/v1?token=Qsecret"
    started = time.time() - 1
    code = cli.main(["--quiet", "train", "--condition", "2", "--lang", "zh", "--set", f"translation.base_url={url}"])
    out = capsys.readouterr().out
    assert code == 0, out
    name = config.variant_name([f"translation.base_url={url}"])
    assert name.startswith("base_url-") and "hunter2" not in name and "user" not in name
    assert config.variant_name(["translation.api_key=sk-live-123"]) == "api_key-set"
    # nothing anywhere under the store, its artifacts or langdec's home holds the password or the token
    found = []
    for folder in (tmp_path, langdec_home):
        for path in folder.rglob("*"):
            if "hunter2" in path.name or "Qsecret" in path.name:
                found.append(str(path))
            elif (
                path.is_file() and path.stat().st_mtime >= started and path.stat().st_size < 50_000_000
            ):  # what this run wrote
                data = path.read_bytes()
                if b"hunter2" in data or b"Qsecret" in data:
                    found.append(str(path))
    assert found == []
    assert "hunter2" not in out and "Qsecret" not in out


@pytest.mark.parametrize(
    "setting",
    [
        "evaluation.max_items=-2",
        "evaluation.batch_size=0",
        "evaluation.max_new_tokens=-3",
        "evaluation.max_prompt_tokens=0",
    ],
)
def test_evaluation_settings_that_would_score_something_else_are_refused(capsys, module_store, setting):
    code, err = _main(capsys, "evaluate", "--condition", "baseline", "--set", setting)
    assert code == 2 and setting.split("=")[0] in _one_error(err)
