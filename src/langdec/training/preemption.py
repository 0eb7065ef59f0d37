"""Stopping when the scheduler asks: SLURM sends SIGUSR2 ahead of a preemption or a time limit (`--signal`) and
SIGTERM at the preemption itself; Ray, Kubernetes and `kill` send SIGTERM.

Outside training a signal ends the command at once with `Preempted` (the stage run is marked FAILED and resumed
next time). During training it only asks the trainer to stop: the step in progress finishes, a checkpoint is
saved, and then `Preempted` is raised, so the next attempt resumes at that step (`TrainingStop`)."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Iterator

from langdec.core.errors import Preempted

SIGNALS = tuple(s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGUSR2", None)) if s is not None)
_owner: int | None = None
_stop = None  # the TrainingStop of the training in progress, when one is


def install() -> None:
    """Route SIGTERM and SIGUSR2 here for the rest of this process (idempotent)."""
    global _owner
    if sys.platform == "win32" or _owner == os.getpid():
        return
    _owner = os.getpid()
    for signum in SIGNALS:
        signal.signal(signum, _handler)


def _handler(signum, frame) -> None:
    if os.getpid() != _owner:
        # a forked worker (the transpiler's pool) inherited this handler: end as the signal would, without a message
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    if _stop is not None:
        _stop.request(signum)
        return
    raise Preempted(
        f"stopped by {signal.Signals(signum).name} before training began; run the same command again "
        "(a scheduler requeues it) and finished stages are reused"
    )


@contextlib.contextmanager
def graceful(stop) -> Iterator[None]:
    """While training: a signal asks `stop` to end training after a checkpoint instead of ending the process."""
    global _stop
    previous, _stop = _stop, stop
    try:
        yield
    finally:
        _stop = previous
