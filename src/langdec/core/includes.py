"""YAML experiment files that `include:` others, so a part several files share is written once.

`include:` names one file or a list of them, each relative to the including file. The included
mappings are merged in order, then the file's own keys on top: mappings merge key by key at
every depth, any other value (a list, a string) is replaced whole. An included file may include
others; a missing file or a cycle fails in one line naming the file that asked for it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from langdec.core.errors import LangdecError
from langdec.core.schema import read_yaml

KEY = "include"


def read_with_includes(path: Path) -> dict[str, Any]:
    """The file's mapping with its includes merged in."""
    return _read(Path(path).resolve(), ())


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` on top of `base`: mappings merge key by key, anything else in `over` replaces what `base` had."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def _read(path: Path, chain: tuple[Path, ...]) -> dict[str, Any]:
    data = read_yaml(path)
    merged: dict[str, Any] = {}
    seen = (*chain, path)
    for target in _targets(path, data.pop(KEY, [])):
        if target in seen:
            loop = " -> ".join(p.name for p in (*seen[seen.index(target) :], target))
            raise LangdecError(f"{path}: include cycle {loop}; remove one of these includes")
        merged = merge(merged, _read(target, seen))
    return merge(merged, data)


def _targets(path: Path, named: Any) -> list[Path]:
    names = [named] if isinstance(named, str) else named
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise LangdecError(
            f"{path}: `{KEY}:` must be a file name or a list of them (relative to this file), got {named!r}"
        )
    out = []
    for name in names:
        target = (path.parent / name).resolve()
        if not target.is_file():
            raise LangdecError(
                f"{path}: include {name!r} is not a file (looked for {target}); give a path relative to {path.parent}"
            )
        out.append(target)
    return out
