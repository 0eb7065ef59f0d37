"""Jobs: which (condition, language, tier, seed, arm) a command or a ladder names, checked by the same rules."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import cli_exit, one_error_line

from langdec.core import config
from langdec.core.errors import LangdecError
from langdec.orchestration import jobs


@pytest.mark.parametrize(
    "path",
    sorted((Path(__file__).resolve().parents[2] / "experiments" / "ladders").glob("*.yaml")),
    ids=lambda p: p.stem,
)
def test_every_shipped_ladder_validates_with_every_jobs_overrides(path):
    """A ladder, its profile and each entry's overrides are checked before any model work."""
    ladder = jobs.load_ladder(path)
    named = jobs.ladder_jobs(ladder)
    assert named and len({j.run_name for j in named}) == len(named)
    for job in named:
        profile = jobs.job_profile(ladder, job)
        assert config.condition(job.condition).available or job.condition == "baseline"
        assert profile.name == ladder.profile


def _profile():
    return config.load_profile("smoke")


def test_a_command_names_its_job_by_the_same_rules_as_a_ladder():
    cond, job = jobs.resolve("2", "urd_Arab", "5k", 42, profile=_profile())
    assert (cond.name, job.run_name) == ("2", "cond2-ur-5k-s42")  # language codes normalise in one place
    assert jobs.resolve("1", "en", "5k", 42, profile=_profile())[1].lang is None
    with pytest.raises(LangdecError, match="condition 1 trains on English code; drop --lang zh"):
        jobs.resolve("1", "zh", "5k", 42, profile=_profile())
    with pytest.raises(LangdecError, match="condition flex trains on English code"):
        jobs.resolve("flex", "zh", "5k", 42, profile=_profile())
    with pytest.raises(LangdecError, match=r"condition 2 needs --lang \(one of zh, es, ur, hi, ar, fr\)"):
        jobs.resolve("2", None, "5k", 42, profile=_profile())
    with pytest.raises(LangdecError, match="condition 3 has no language 'es'; valid: zh"):
        jobs.resolve("3", "es", "5k", 42, profile=_profile())
    with pytest.raises(LangdecError, match="condition 4 needs --lang"):  # no data yet, but it lists languages
        jobs.resolve("4", None, "5k", 42, profile=_profile())
    with pytest.raises(LangdecError, match="--arm 'a b'"):
        jobs.resolve("2", "zh", "5k", 42, profile=_profile(), arm="a b")
    with pytest.raises(LangdecError, match="unknown tier '7x'"):
        jobs.resolve("2", "zh", "7x", 42, profile=_profile())


def test_an_override_that_changes_the_adapter_names_a_variant():
    _, job = jobs.resolve("2", "zh", "5k", 42, profile=_profile(), overrides=["training.lr=1e-4"])
    assert job.arm == "lr1e-4" and job.run_name == "cond2-zh-5k-s42-lr1e-4"
    assert (
        jobs.resolve("2", "zh", "5k", 42, profile=_profile(), overrides=["training.lr=1e-4"], supersede=True)[1].arm
        is None
    )
    assert jobs.resolve("baseline", None, "5k", 42, profile=_profile(), overrides=["training.lr=1e-4"])[1].arm is None


def test_a_ladder_entry_without_the_language_its_kind_needs_fails(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\nprofile: smoke\nphase: phase-3\ntiers: [5k]\nseeds: [42]\nruns:\n  - condition: 5\n")
    with pytest.raises(LangdecError, match=r"bad.yaml: condition 5 needs langs \(one of zh, es, ur\)"):
        jobs.load_ladder(path)


def test_a_ladder_names_its_probes_from_the_registry(tmp_path):
    path = tmp_path / "probed.yaml"
    path.write_text(
        "name: probed\nprofile: smoke\nphase: phase-3\ntiers: [5k]\nseeds: [42]\nprobes: [isotropy]\nruns:\n"
        "  - condition: baseline\n"
    )
    assert jobs.load_ladder(path).probes == ["isotropy"]
    path.write_text(path.read_text().replace("probes: [isotropy]", "probes: [isotropic]"))
    with pytest.raises(LangdecError, match="probe 'isotropic'; valid .*: isotropy"):
        jobs.load_ladder(path)


# ---------------------------------------------------------------------- hostile cases: bad ladder files
_main = cli_exit


_one_error = one_error_line


@pytest.mark.parametrize(
    "content, message",
    [
        (
            b"name: x\nprofile: smoke\nphase: phase-3\ntiers: []\nseeds: [42]\nruns:\n  - condition: 1\n",
            "tiers is empty",
        ),
        (
            b"name: x\nprofile: smoke\nphase: phase-3\ntiers: [5k]\nseeds: []\nruns:\n  - condition: 1\n",
            "seeds is empty",
        ),
        (b"name: x\nprofile: smoke\nruns:\n  - condition: \xff\xfe\n", "not UTF-8 text"),
        (b"name: x\nprofile: smoke\n1: 2\n", "unknown key 1"),
        (
            b"a: &a [l, l, l, l, l, l, l, l, l]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n",
            "take no anchors or aliases",
        ),
    ],
)
def test_a_bad_ladder_file_is_one_line(tmp_path, capsys, module_store, content, message):
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    code, err = _main(capsys, "ladder", str(path))
    assert code == 2 and message in _one_error(err)


def test_a_ladder_path_that_is_a_folder_is_one_line(tmp_path, capsys, module_store):
    (tmp_path / "ladder.yaml").mkdir()
    code, err = _main(capsys, "ladder", str(tmp_path / "ladder.yaml"))
    assert code == 2 and "a folder" in _one_error(err)
