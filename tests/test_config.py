"""Experiment files validate before any work: unknown keys, bad values and unknown names fail naming what is valid."""

from __future__ import annotations


import pytest

from langdec import config, jobs, languages
from langdec.errors import LangdecError



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



def test_a_stage_sees_only_the_profile_sections_it_declares():
    from langdec import checks, pipeline, train
    from langdec.evaluation import probe
    from langdec.evaluation import stage as evaluation

    profile = config.load_profile("smoke")
    seen = profile.only("evaluate", evaluation.SECTIONS)
    assert seen.evaluation is profile.evaluation and seen.model is profile.model and seen.name == "smoke"
    with pytest.raises(config.UndeclaredSection, match=r"the evaluate stage read profile.corpus.tiers, which it does not declare; "
                                                        r"add 'corpus' to its SECTIONS"):
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
