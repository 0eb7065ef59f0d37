"""Data checks: real great_expectations suites pass good data, fail crafted bad data, gate training."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from langdec.core import config, languages
from langdec.core.errors import LangdecError
from langdec.data import checks
from langdec.data import stage as data
from langdec.training import stage as train


@pytest.fixture(scope="module")
def zh_data(smoke_profile):
    job = config.Job("2", "zh", "5k", 42)
    return data.prepare(smoke_profile, config.condition("2"), job, progress=False), job


def _frame(cdata) -> pd.DataFrame:
    return checks.load_data_frame(cdata.path)


@pytest.mark.slow
def test_good_corpus_passes(zh_data, smoke_profile):
    cdata, job = zh_data
    tier_idx = set(data.build_tier_idx(smoke_profile, job))
    result = checks.run_checks(_frame(cdata), config.condition("2"), tier_idx)
    assert result.success, result.failed
    assert len(result.results) == 13


def test_source_file_control_same_idx_and_split_across_conditions(zh_data, smoke_profile):
    cdata, job = zh_data
    english = data.prepare(smoke_profile, config.condition("1"), config.Job("1", None, "5k", 42), progress=False)
    zh_train, zh_val = cdata.frames()
    en_train, en_val = english.frames()
    assert set(zh_train.idx) == set(en_train.idx) and set(zh_val.idx) == set(en_val.idx)
    merged = zh_train.merge(en_train, on="idx", suffixes=("_zh", "_en"))
    assert (merged.code_en_zh == merged.code_en_en).all() and (merged.code_en_en == merged.code_en).all()


def test_each_rule_fails_on_crafted_bad_rows(zh_data, smoke_profile):
    cdata, job = zh_data
    frame = _frame(cdata)
    bad = frame.copy()
    bad.loc[0, "code"] = (
        bad.loc[0, "code"] + "\nif x:\n    pass\n"
    )  # English keyword left, no longer reverses to code_en
    bad.loc[1, "idx"] = bad.loc[2, "idx"]  # duplicate idx
    bad.loc[3, "license"] = "gpl-3.0"
    bad.loc[4, "token_count"] = 0
    bad = pd.concat(
        [bad, bad.iloc[[5]].assign(split="validation")], ignore_index=True
    )  # same file in train and validation
    result = checks.run_checks(bad, config.condition("2"), set(data.build_tier_idx(smoke_profile, job)))
    failed = {(r["expectation"], r["column"]) for r in result.failed}
    assert not result.success
    assert {
        ("expect_column_values_to_be_between", "english_keywords_left"),
        ("expect_column_values_to_be_in_set", "reverses_to_source"),
        ("expect_column_values_to_be_unique", "idx"),
        ("expect_column_values_to_be_in_set", "license"),
        ("expect_column_values_to_be_between", "token_count"),
        ("expect_column_values_to_be_unique", "code_sha256"),
    } <= failed
    assert ("expect_column_values_to_not_be_null", "code") not in failed
    report = checks.markdown_report(result, "bad")
    assert "**FAILED**" in report and "english_keywords_left" in report


def test_training_refuses_failed_and_missing_checks(zh_data, smoke_profile, store, tmp_path):
    cdata, job = zh_data
    cond = config.condition("2")
    experiment = "phase-3-smoke"
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    train_frame, val_frame = cdata.frames()
    train_frame.loc[0, "code"] = "print('left in English')\n"
    train_frame.to_parquet(bad_dir / "train.parquet", index=False)
    val_frame.to_parquet(bad_dir / "validation.parquet", index=False)
    bad = data.ConditionData(bad_dir, data.data_digest(train_frame, val_frame), dict(cdata.manifest))

    with pytest.raises(LangdecError, match="no data-check run"):
        train.run(
            smoke_profile, cond, job, phase="phase-3", experiment=experiment, data_run=(bad, "none"), progress=False
        )
    result, run_id = checks.run_stage(bad, cond, experiment, {"run_name": job.run_name})
    assert result is not None and not result.success
    with pytest.raises(LangdecError, match=r"data checks FAILED \(.*reverses_to_source"):
        train.run(
            smoke_profile, cond, job, phase="phase-3", experiment=experiment, data_run=(bad, "none"), progress=False
        )

    import mlflow

    run = mlflow.get_run(run_id)
    assert run.data.tags["langdec.check_status"] == "failed"
    assert run.data.metrics["check.passed"] == 0.0
    assert "data_checks.md" in {a.path for a in mlflow.MlflowClient().list_artifacts(run_id)}


@pytest.mark.slow
def test_check_cli_on_corrupt_parquet(tmp_path):
    (tmp_path / "train.parquet").write_bytes(b"not parquet at all")
    (tmp_path / "validation.parquet").write_bytes(b"PAR1")
    result = subprocess.run(
        [sys.executable, "-m", "langdec.cli", "check", str(tmp_path), "--condition", "2", "--lang", "zh"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**__import__("os").environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/m.db"},
    )
    assert result.returncode == 2
    assert "train.parquet: not a readable Parquet file" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_a_file_lost_in_one_language_is_dropped_from_every_aligned_condition(smoke_profile, monkeypatch, tmp_path):
    """Source-file control: inject one transpile failure (Urdu only) and watch both conditions lose the file."""
    from langdec.data.transpiler import batch, engine

    monkeypatch.setenv("LANGDEC_HOME", str(tmp_path))  # fresh caches for this test only
    tier = data.build_tier(smoke_profile, "5k", 42, progress=False)
    victim = tier.frame.iloc[3]
    real = engine.translate

    def flaky(text, pack, direction="forward"):
        if pack.code == "ur" and text == victim.code_en:
            raise engine.TranspileError("roundtrip", "injected failure")
        return real(text, pack, direction=direction)

    monkeypatch.setattr(batch, "translate", flaky)
    english = data.prepare(smoke_profile, config.condition("1"), config.Job("1", None, "5k", 42), progress=False)
    chinese = data.prepare(smoke_profile, config.condition("2"), config.Job("2", "zh", "5k", 42), progress=False)
    for cdata in (english, chinese):
        train_frame, val_frame = cdata.frames()
        assert victim.idx not in set(train_frame.idx) | set(val_frame.idx)
        assert cdata.manifest["aligned_files"] == len(tier.frame) - 1
        assert cdata.manifest["lost_by_alignment"] == [
            {
                "idx": int(victim.idx),
                "file_path": victim.file_path,
                "language": "ur",
                "reason": "roundtrip",
                "detail": "injected failure",
            }
        ]
    assert set(english.frames()[0].idx) == set(chinese.frames()[0].idx)


def test_condition5_suite_checks_target_script_share(zh_data):
    """The condition-5 suite runs on LLM-translated rows; untranslated English fails the script share."""
    cdata, _ = zh_data
    frame = _frame(cdata).head(6).copy()
    frame["language"] = "ur"
    frame["code"] = ["تعریف جمع_کریں(عدد):\n    واپسی عدد + ۱  # عدد میں ایک جمع کریں\n"] * 5 + [
        "def add(n):\n    return n + 1  # add one\n"
    ]
    frame["idx"] = range(6)
    frame["code"] = [c + f"# {i}\n" for i, c in enumerate(frame["code"])]
    cond5 = config.condition("5")
    ok = checks.run_checks(frame.head(5), cond5, None)
    assert ok.success, ok.failed
    bad = checks.run_checks(frame.assign(code=[frame["code"].iloc[5]] * 3 + list(frame["code"].iloc[:3])), cond5, None)
    assert ("expect_column_values_to_be_between", "target_script_share") in {
        (r["expectation"], r["column"]) for r in bad.failed
    }
    assert languages.target_script_share("واپس x", "ur") == pytest.approx(4 / 5)
