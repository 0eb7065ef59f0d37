"""A ladder on the schedulers researchers have: each item is one `langdec run-item LADDER INDEX` process, which
reads from MLflow what is already done, reuses it, resumes training from its last checkpoint, and exits with a
status that says whether a retry may help (`langdec.failures`). A scheduler backend only places and retries
those processes; it never decides whether an item is done.

Backends are looked up by name here (`get`); a new one is one module with `submit` and `scheduler_states`."""

from __future__ import annotations

import importlib

from ..errors import did_you_mean

BACKENDS = {"slurm": "langdec.scheduling.slurm", "ray": "langdec.scheduling.ray_tasks"}


def get(name: str):
    if name not in BACKENDS:
        raise did_you_mean("scheduler", name, BACKENDS)
    return importlib.import_module(BACKENDS[name])
