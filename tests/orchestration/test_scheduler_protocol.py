"""The schedulers behind one protocol (issue 35): each scheduler's options dataclass makes the flags `langdec ladder`
shows and reads them back, the registry names the valid schedulers, and a scheduler added as one module gets its own
flags with no command changed. No cluster needed; the real submissions are in tests/orchestration/test_schedulers.py."""

from __future__ import annotations

import argparse
import dataclasses
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

from langdec.core.errors import LangdecError

# every flag of both schedulers set away from its default, and the options that must come of it
SET = {
    "slurm": (
        (
            "--slurm --gpus-per-item 2 --max-retries 5 --partition gpu --time 30 --array-parallelism 3 --cpus-per-item 4 "
            "--mem-gb 7.5 --signal-delay 60 --slurm-arg account=my-lab --slurm-arg=--qos=high "
            "--slurm-setup 'module load cuda' --logs /tmp/logs --wait --poll 2"
        ),
        {
            "gpus_per_item": 2,
            "max_retries": 5,
            "partition": "gpu",
            "time_minutes": 30,
            "array_parallelism": 3,
            "cpus_per_item": 4,
            "mem_gb": 7.5,
            "signal_delay_s": 60,
            "extra": {"account": "my-lab", "qos": "high"},
            "setup": ["module load cuda"],
            "logs": Path("/tmp/logs"),
            "wait": True,
            "poll": 2.0,
        },
    ),
    "ray": (
        "--ray head:6379 --gpus-per-item 2 --max-retries 5",
        {"gpus_per_item": 2, "max_retries": 5, "address": "head:6379"},
    ),
}


def _ladder_parser(monkeypatch) -> argparse.ArgumentParser:
    from langdec import cli

    monkeypatch.setenv("COLUMNS", "1000")  # one help line per flag: a flag's help is found whole
    root = cli.parser()
    commands = next(a for a in root._actions if isinstance(a, argparse._SubParsersAction))
    return commands.choices["ladder"]


def _flags(options) -> list:
    from langdec.orchestration.scheduling import base

    return [f.metadata[base.OPTION].flag for f in dataclasses.fields(options) if base.OPTION in f.metadata]


def test_each_schedulers_options_make_the_flags_ladder_help_shows(monkeypatch):
    from langdec.orchestration import scheduling

    ladder = _ladder_parser(monkeypatch)
    shown = " ".join(ladder.format_help().split())
    given = {option for action in ladder._actions for option in action.option_strings}
    assert [s.name for s in scheduling.every()] == ["slurm", "ray"]
    for scheduler in scheduling.every():
        flags = [scheduler.selector, *_flags(scheduler.Options)]
        assert len(flags) > 1, scheduler.name
        for flag in flags:
            assert flag.name in given and flag.name in shown, (scheduler.name, flag.name)
            if flag.help:
                assert " ".join(flag.help.split()) in shown, (scheduler.name, flag.name)
    assert "SLURM (with --slurm):" in ladder.format_help()
    group = next(g for g in ladder._action_groups if g.title == "SLURM (with --slurm)")
    assert {o for a in group._group_actions for o in a.option_strings} == {
        f.name for f in _flags(scheduling.get("slurm").Options)
    } - {"--gpus-per-item", "--max-retries"}


@pytest.mark.parametrize("name", ["slurm", "ray"])
def test_the_real_parser_gives_each_scheduler_its_options(monkeypatch, name):
    from langdec.orchestration import scheduling
    from langdec.orchestration.scheduling import base

    ladder = _ladder_parser(monkeypatch)
    argv, expected = SET[name]
    args = ladder.parse_args(["f.yaml", *shlex.split(argv)])
    scheduler = base.chosen(args, scheduling.every())
    assert scheduler is scheduling.get(name)
    assert base.options_from(scheduler, args, supersede=True) == scheduler.Options(supersede=True, **expected)
    # nothing given: the flags' defaults are the dataclass's own, so a submission from code matches one from the CLI
    bare = ladder.parse_args(["f.yaml", "--slurm" if name == "slurm" else "--ray"])
    assert base.options_from(scheduler, bare, supersede=False) == scheduler.Options()
    assert scheduler.waits(base.options_from(scheduler, bare)) is (name == "ray")  # Ray's driver stays; SLURM: --wait


def test_an_unknown_scheduler_lists_the_valid_ones_and_two_at_once_are_refused(capsys):
    from langdec import cli
    from langdec.orchestration import scheduling

    with pytest.raises(LangdecError) as raised:
        scheduling.get("pbs")
    assert str(raised.value) == "unknown scheduler 'pbs'; valid schedulers: ray, slurm"
    assert cli.main(["ladder", "f.yaml", "--slurm", "--ray"]) == 2
    assert capsys.readouterr().err.strip() == "error: choose one scheduler: --slurm or --ray"


def test_a_flag_the_scheduler_cannot_read_names_itself_and_what_to_write(monkeypatch):
    from langdec.orchestration import scheduling
    from langdec.orchestration.scheduling import base

    args = _ladder_parser(monkeypatch).parse_args(["f.yaml", "--slurm", "--slurm-arg", "account"])
    with pytest.raises(LangdecError, match=r"^--slurm-arg 'account': use KEY=VALUE, e.g. --slurm-arg account=my-lab$"):
        base.options_from(scheduling.get("slurm"), args)


def test_a_scheduler_added_as_one_module_gets_its_own_flags_and_a_clash_is_caught():
    from langdec.orchestration import scheduling
    from langdec.orchestration.scheduling import base

    @dataclass
    class PbsOptions(base.ItemOptions):
        queue: str = base.option(base.Flag("--pbs-queue", help="the PBS queue"), "batch")
        walltime: int = base.option(base.Flag("--walltime", type=int, help="minutes per item"), 60)

    class Pbs:
        name, group, Options = "pbs", "PBS (with --pbs)", PbsOptions
        selector = base.Flag("--pbs", action="store_true", help="submit the items to PBS")

    parser = argparse.ArgumentParser()
    base.add_flags(parser, [*scheduling.every(), Pbs()])
    args = parser.parse_args(["--pbs", "--pbs-queue", "gpu", "--gpus-per-item", "4"])
    assert base.chosen(args, [*scheduling.every(), Pbs()]).name == "pbs"
    assert base.options_from(Pbs(), args) == PbsOptions(gpus_per_item=4, queue="gpu")
    assert "PBS (with --pbs)" in [g.title for g in parser._action_groups]

    @dataclass
    class ClashOptions(base.ItemOptions):
        time: int = base.option(base.Flag("--time", type=float, help="hours"), 1)

    class Clash(Pbs):
        name, Options = "clash", ClashOptions
        selector = base.Flag("--clash", action="store_true")

    with pytest.raises(TypeError, match="--time"):
        base.add_flags(argparse.ArgumentParser(), [*scheduling.every(), Clash()])
