"""What every job command shares: its arguments and the job, profile and experiment they name."""

from __future__ import annotations

import argparse

DEFAULT_LADDER = "experiments/ladders/smoke.yaml"


def job_args(p: argparse.ArgumentParser, *, lang_required: bool = False) -> None:
    p.add_argument("--condition", default="1", help="baseline, 1, 2, 3, 5 (experiments/conditions.yaml)")
    p.add_argument(
        "--lang", default=None, required=lang_required, help="trained language for conditions 2/3/5 (zh, es, ur, ...)"
    )
    p.add_argument("--tier", default="5k", help="file tier: 5k, 20k, 103k (sizes per profile)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--profile", default="smoke", help="smoke (offline default) or paper (experiments/profiles/)")
    p.add_argument("--phase", default="phase-3", help="phase-3 (paper) or phase-2 (preliminary)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a profile value for this run, e.g. --set training.lr=1e-3 (repeatable)",
    )
    p.add_argument(
        "--arm",
        default=None,
        help="name this variant of the cell (default: named from the --set overrides "
        "that change the adapter, e.g. lr1e-4; none for the cell's main adapter)",
    )
    p.add_argument(
        "--data",
        dest="data_source",
        choices=["build", "published"],
        default=None,
        help="published: train on the study's own rows (profile corpus.published, e.g. hf:legesher/language-decoded-data)",
    )


def job_of(args):
    from langdec.core import config
    from langdec.orchestration import jobs

    overrides = [*args.overrides, *([f"corpus.data={args.data_source}"] if args.data_source else [])]
    profile = config.load_profile(args.profile, overrides)
    cond, job = jobs.resolve(
        args.condition,
        args.lang,
        args.tier,
        args.seed,
        profile=profile,
        arm=args.arm,
        overrides=overrides,
        supersede=getattr(args, "supersede", False),
    )
    return profile, cond, job


def experiment_of(profile, phase: str) -> str:
    from langdec.tracking import runs as tracking

    tracking.configure()
    return tracking.experiment_name(profile.name, phase)


def where_of(args):
    from langdec.orchestration import pipeline

    profile, cond, job = job_of(args)
    return pipeline.Where(profile, cond, job, args.phase, experiment_of(profile, args.phase))
