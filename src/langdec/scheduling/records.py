"""What was submitted where: one small JSON file per ladder under LANGDEC_HOME/scheduling, so `langdec ladder FILE
--status` can ask the scheduler about the job it holds. Whether an item is done is never read from here (MLflow)."""

from __future__ import annotations

import json
from pathlib import Path

from ..atomic import write_text
from ..paths import work_dir


def path(label: str) -> Path:
    return work_dir() / "scheduling" / f"{label}.json"


def save(label: str, record: dict) -> Path:
    target = path(label)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_text(target, json.dumps(record, indent=2))
    return target


def load(label: str) -> dict | None:
    try:
        return json.loads(path(label).read_text())
    except (OSError, ValueError):
        return None
