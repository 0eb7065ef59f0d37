"""What was submitted where: one small JSON file per ladder under LANGDEC_HOME/scheduling, so `langdec ladder FILE
--status` can ask each scheduler about the jobs it holds. Whether an item is done is never read from here (MLflow).

The file keeps every recent submission of the ladder (newest last), not only the latest: a Ray driver started
after a SLURM array must not hide the array's tasks that still run. Beside it, `ladders/<sha256>.yaml` keeps the
ladder file exactly as each submission read it (`pin`), so an item runs what was submitted even when the file is
edited while the items wait in a queue."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

from langdec.core.atomic import atomic_path, write_text
from langdec.core.paths import work_dir

KEEP = 8  # submissions remembered per ladder; older ones have long ended


def path(label: str) -> Path:
    return work_dir() / "scheduling" / f"{label}.json"


def save(label: str, record: dict) -> Path:
    """Add this submission, or update it (its `id`) when it is already there (a Ray driver records each outcome)."""
    record.setdefault("id", f"{record.get('backend', '?')}-{record.get('job_id') or time.time_ns()}")
    kept = [r for r in load_all(label) if r.get("id") != record["id"]]
    kept = [*kept, record][-KEEP:]
    target = path(label)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_text(target, json.dumps({"submissions": kept}, indent=2))
    return target


def load_all(label: str) -> list[dict]:
    """Every submission remembered for the ladder, oldest first."""
    try:
        data = json.loads(path(label).read_text())
    except (OSError, ValueError):
        return []
    if isinstance(data, dict) and isinstance(data.get("submissions"), list):
        return [r for r in data["submissions"] if isinstance(r, dict) and r.get("backend")]
    return [data] if isinstance(data, dict) and data.get("backend") else []  # a record from before several were kept


def load(label: str) -> dict | None:
    """The newest submission of the ladder, or None."""
    found = load_all(label)
    return found[-1] if found else None


@dataclass(frozen=True)
class Seen:
    """One item as one submission's scheduler sees it."""

    state: str  # "running on n1", "pending (BeginTime)", "ended: done", "ended: failed, exit 2", "ended: cancelled"
    reason: str = ""  # why it failed or was cancelled, in the scheduler's or the task's words
    live: bool = False  # queued or running now


# --------------------------------------------------------------------------- the ladder as submitted
@dataclass(frozen=True)
class Pin:
    digest: str  # sha256 of the file's bytes
    content: bytes


def pin(ladder_file: str | Path) -> Pin:
    """The ladder file as it is now, kept under LANGDEC_HOME/scheduling/ladders by its digest."""
    content = Path(ladder_file).read_bytes()
    made = Pin(digest(content), content)
    keep(made)
    return made


def digest(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def pinned_path(sha256: str) -> Path:
    return work_dir() / "scheduling" / "ladders" / f"{sha256}.yaml"


def keep(made: Pin) -> Path:
    """Write the pinned copy where this machine's `run-item --pin` finds it (once; content-addressed)."""
    target = pinned_path(made.digest)
    if not (target.exists() and digest(target.read_bytes()) == made.digest):
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as tmp:
            tmp.write_bytes(made.content)
    return target
