"""One process at a time per piece of work: a stage run's key, the tracking store's creation.

A lock is an advisory `flock` on a file under `$LANGDEC_HOME/locks/` (beside the
checkpoints it protects). The kernel releases it when its holder exits, however it
exits (SIGKILL included), so a lock is never stale, and a process that finds a run of
its key still RUNNING while holding the lock knows that run's process is dead. The
holder writes who it is into the file, so a process that has to wait says whom it
waits for. Locks are re-entrant within a process; threads of one process share them.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from langdec.core.errors import LangdecError
from langdec.core.paths import work_dir

_held: dict[Path, int] = {}  # lock file -> depth in this process
_guard = threading.RLock()


def lock_dir() -> Path:
    path = work_dir() / "locks"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _file(name: str) -> Path:
    readable = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:80]
    return lock_dir() / f"{readable}-{hashlib.sha256(name.encode()).hexdigest()[:12]}.lock"


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, 4096, 0).decode("utf-8", errors="replace").strip()
    except OSError:
        text = ""
    return text or "another langdec process"


@contextlib.contextmanager
def hold(name: str, what: str, *, wait: bool = True) -> Iterator[None]:
    """Hold the lock `name` while the block runs. Busy: wait for it (saying for whom), or with
    wait=False stop with a message naming the holder."""
    path = _file(name)
    with _guard:
        nested = path in _held
        if nested:
            _held[path] += 1
    if nested:
        try:
            yield
        finally:
            with _guard:
                _held[path] -= 1
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            if not wait:
                raise LangdecError(
                    f"{what} is already being run by {holder}; wait for it to finish, or stop it"
                ) from None
            sys.stderr.write(f"langdec: waiting for {holder}, which is running {what}\n")
            sys.stderr.flush()
            fcntl.flock(fd, fcntl.LOCK_EX)
        me = f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%H:%M:%S')} ({' '.join(sys.argv[:6])[:160]})"
        os.ftruncate(fd, 0)
        os.pwrite(fd, me.encode(), 0)
        with _guard:
            _held[path] = 1
        try:
            yield
        finally:
            with _guard:
                del _held[path]
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
