"""What a condition data kind is: how its rows are made, what versions that processing, which
columns its data-check suite measures."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pandas as pd

from langdec.core.errors import LangdecError
from langdec.data.transpiler.engine import parses, reverse
from langdec.data.transpiler.packs import load as load_pack

if TYPE_CHECKING:
    from langdec.core.config import Condition, Job, Profile
    from langdec.data.corpus import Tier

Rows = tuple[pd.DataFrame, dict]


@dataclass(frozen=True)
class Build:
    """Everything a builder may read: the profile, the English tier, the condition and the job."""

    profile: Profile
    tier: Tier
    cond: Condition
    job: Job
    progress: bool = True


def measure_parses(frame: pd.DataFrame) -> None:
    frame["reverse_parses"] = [parses(str(c)) for c in frame["code"]]


def no_tags(profile: Profile) -> dict[str, str]:
    return {}


@dataclass(frozen=True)
class DataKind:
    name: str
    needs_language: bool
    rows: Callable[[Build], Rows]
    version: Callable[[Profile, Condition, str | None], str]
    # adds, in place, the columns this kind's suite checks (beyond the hashes and tier membership every kind gets)
    derive: Callable[[pd.DataFrame], None] = measure_parses
    # `origin` values of rows that do not come from the English tier (tier alignment does not apply to them)
    outside_tier: tuple[str, ...] = ()
    # registered-version tags that the condition's published name needs
    registry_tags: Callable[[Profile], dict[str, str]] = no_tags
    notes: list[str] = field(default_factory=list)


def reverse_keywords(code: str, lang: str) -> str:
    """The file with the language's keywords put back into English; empty when the pack cannot."""
    try:
        return reverse(code, load_pack(lang))
    except LangdecError:
        return ""  # unknown language: the row fails the reversal checks
