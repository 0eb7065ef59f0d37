"""Jobs: which (condition, language, tier, seed, arm) a command or a ladder file names, checked against
the conditions, their data kinds and the profile before any work starts. The CLI and ladder files
resolve jobs here, so both apply the same rules."""

from __future__ import annotations

import re
from pathlib import Path

from langdec.core import languages
from langdec.core.config import Condition, Job, Ladder, Profile, condition, load_profile, named_yaml, variant_name
from langdec.core.errors import LangdecError
from langdec.core.registry import Registry
from langdec.core.schema import build, read_yaml
from langdec.data import kinds

ARM = re.compile(r"[A-Za-z0-9_-]{1,40}")


def needs_language(cond: Condition) -> bool:
    """Asked of the condition's data kind; a condition with no data yet needs one if it lists languages."""
    if not cond.data:
        return False
    if not cond.available:
        return bool(cond.languages)
    return kinds.get(cond.data).needs_language


def resolve(
    condition_name: str,
    lang: str | None,
    tier: str,
    seed: int,
    *,
    profile: Profile,
    arm: str | None = None,
    overrides: list[str] | None = None,
    supersede: bool = False,
) -> tuple[Condition, Job]:
    """The job a command names. An override that changes the adapter makes a variant of the cell (its own
    run, key and registered version), never a replacement of the cell's main adapter; `supersede` replaces it."""
    cond = condition(condition_name)
    lang = languages.normalise(lang) if lang else None
    if lang not in (None, "en") and not needs_language(cond) and cond.data:
        raise LangdecError(f"condition {cond.name} trains on English code; drop --lang {lang}")
    if needs_language(cond) and lang is None:
        raise LangdecError(f"condition {cond.name} needs --lang (one of {', '.join(cond.languages)})")
    if lang and cond.languages and lang not in cond.languages:
        raise LangdecError(f"condition {cond.name} has no language {lang!r}; valid: {', '.join(cond.languages)}")
    profile.tier_files(tier)  # validates the tier name
    if arm is not None and not ARM.fullmatch(arm):
        raise LangdecError(f"--arm {arm!r}: use 1-40 letters, digits, '-' or '_' (it names runs and registry aliases)")
    arm = arm or (None if supersede or not cond.data else variant_name(overrides or []))
    return cond, Job(cond.name, lang if needs_language(cond) else None, tier, seed, arm)


def load_ladder(path: str | Path) -> Ladder:
    path = Path(path)
    if not path.exists():
        path = named_yaml("ladders", str(path))
    data = read_yaml(path)
    ladder = build(Ladder, data, str(path))
    ladder.path = path
    profile = load_profile(ladder.profile, ladder.overrides)  # validates the profile it names
    for key, values in (("tiers", ladder.tiers), ("seeds", ladder.seeds), ("runs", ladder.runs)):
        if not values:
            raise LangdecError(f"{path}: {key} is empty; a ladder needs at least one (e.g. tiers: [5k], seeds: [42])")
    for tier in [*ladder.tiers, *ladder.seeds_per_tier]:
        profile.tier_files(tier)
    for tier, seeds in ladder.seeds_per_tier.items():
        if not seeds:
            raise LangdecError(f"{path}: seeds_per_tier.{tier} is empty; list its seeds or leave the tier out")
    for entry in ladder.runs:
        for key in ("tiers", "seeds"):
            if getattr(entry, key) == []:  # None: the ladder's; [] would make no job at all
                raise LangdecError(
                    f"{path}: condition {entry.condition}: {key} is empty; list some or leave the key out"
                )
        cond = condition(entry.condition)
        entry.condition = cond.name
        entry.langs = [languages.normalise(l) for l in entry.langs]
        for lang in entry.langs:
            if cond.languages and lang not in cond.languages:
                raise LangdecError(
                    f"{path}: condition {cond.name} has no language {lang!r}; valid: {', '.join(cond.languages)}"
                )
        if needs_language(cond) and not entry.langs:
            raise LangdecError(f"{path}: condition {cond.name} needs langs (one of {', '.join(cond.languages)})")
    ladder.data_languages = [languages.normalise(l) for l in ladder.data_languages]
    from langdec.evaluation.probe import PROBES

    probes = Registry("probe", dict.fromkeys(PROBES))  # names only: the probe stage runs each by name
    for name in ladder.probes:
        probes.get(name, where=f"{path}: probes")
    return ladder


def ladder_jobs(ladder: Ladder) -> list[Job]:
    jobs: list[Job] = []
    for entry in ladder.runs:
        tiers = entry.tiers or ladder.tiers
        seeds = entry.seeds or ladder.seeds
        if entry.condition == "baseline":
            jobs.append(Job("baseline", None, tiers[0], seeds[0]))
            continue
        for tier in tiers:
            for seed in entry.seeds or ladder.seeds_per_tier.get(tier, seeds):
                for lang in entry.langs or [None]:
                    jobs.append(Job(entry.condition, lang, tier, seed, entry.arm, tuple(entry.overrides)))
    names = [j.run_name for j in jobs]
    clash = sorted({n for n in names if names.count(n) > 1})
    if clash:
        raise LangdecError(
            f"{ladder.path}: jobs {clash} appear twice; give entries of the same condition distinct `arm` names"
        )
    return jobs


def job_profile(ladder: Ladder, job: Job) -> Profile:
    """The profile a ladder job runs with: the ladder's overrides, then the entry's own."""
    return load_profile(ladder.profile, [*ladder.overrides, *job.overrides])
