"""A ladder on the schedulers researchers have: each item is one `langdec run-item LADDER INDEX` process, which
reads from MLflow what is already done, reuses it, resumes training from its last checkpoint, and exits with a
status that says whether a retry may help (`langdec.failures`). A scheduler backend only places and retries
those processes; it never decides whether an item is done.

Schedulers are looked up by name here (`get`, each module's `SCHEDULER`); what one is and how to add one:
`scheduling.base`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from langdec.core.registry import Registry

if TYPE_CHECKING:
    from langdec.orchestration.scheduling.base import Scheduler

# imported on first use: a scheduler's module is only needed where it schedules
BACKENDS: Registry[Scheduler] = Registry(
    "scheduler",
    lazy={
        "slurm": "langdec.orchestration.scheduling.slurm:SCHEDULER",
        "ray": "langdec.orchestration.scheduling.ray_tasks:SCHEDULER",
    },
)


def get(name: str) -> Scheduler:
    return BACKENDS.get(name)


def every() -> list[Scheduler]:
    """Every scheduler, in the registry's order: the order of their flags in `langdec ladder --help`."""
    return [get(name) for name in BACKENDS]
