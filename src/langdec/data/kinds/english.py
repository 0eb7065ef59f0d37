"""`english`: the tier's source files as written (condition 1)."""

from __future__ import annotations

from langdec.data.kinds.base import Build, DataKind, Rows


def rows(b: Build) -> Rows:
    english = b.tier.frame
    return english.assign(code=english["code_en"], language="en"), {"dropped": []}


KIND = DataKind("english", needs_language=False, rows=rows, version=lambda profile, cond, lang: "1")
