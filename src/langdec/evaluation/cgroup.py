"""A memory bound on a whole process tree: a memory cgroup of its own (cgroup v2, or v1's memory controller).

An address-space rlimit bounds each process's own memory, not what the kernel keeps on its behalf: pages of a
tmpfs it fills, the inodes of empty directories it makes there, extended attributes. A memory cgroup is
charged for all of those, so a sandbox slot placed in one can never take more of the host than its limit.
The group is made under the cgroup this process is in (limits nest), joined by the child before it execs, and
removed when the run ends.
"""

from __future__ import annotations

import functools
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")


def _own(controller: str) -> str | None:
    """This process's cgroup path for a v1 controller ("memory"), or for v2 (controller "")."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if (controller and controller in controllers.split(",")) or (not controller and controllers == ""):
            return path
    return None


@functools.lru_cache(maxsize=1)
def base() -> tuple[Path, int] | None:
    """(the folder new groups go in, cgroup version), or None when no memory cgroup can be made here."""
    v2 = ROOT / "cgroup.controllers"
    if v2.is_file() and "memory" in v2.read_text().split():
        own = _own("")
        where = ROOT / (own or "/").lstrip("/")
        if _writable(where, 2):
            return where, 2
    v1 = ROOT / "memory"
    own = _own("memory")
    if (v1 / "memory.limit_in_bytes").is_file() and own is not None:
        where = v1 / own.lstrip("/")
        if _writable(where, 1):
            return where, 1
    return None


def _writable(where: Path, version: int) -> bool:
    probe = where / f"langdec-probe-{os.getpid()}"
    try:
        probe.mkdir()
    except OSError:
        return False
    try:
        limit = probe / ("memory.max" if version == 2 else "memory.limit_in_bytes")
        return limit.is_file()
    finally:
        try:
            probe.rmdir()
        except OSError:
            pass


class MemoryGroup:
    """One cgroup with a memory limit; `join_file` is what a child writes "0" to, to join it before exec."""

    def __init__(self, name: str, limit_bytes: int) -> None:
        found = base()
        if found is None:
            raise OSError("no memory cgroup can be made here")
        where, self.version = found
        self.path = where / name
        self.path.mkdir(exist_ok=True)
        if self.version == 2:
            (self.path / "memory.max").write_text(str(limit_bytes))
            if (self.path / "memory.swap.max").exists():
                (self.path / "memory.swap.max").write_text("0")
        else:
            (self.path / "memory.limit_in_bytes").write_text(str(limit_bytes))
            swap = self.path / "memory.memsw.limit_in_bytes"
            if swap.exists():
                try:
                    swap.write_text(str(limit_bytes))
                except OSError:
                    pass
        self.join_file = str(self.path / "cgroup.procs")

    def join(self) -> None:
        """Move the calling process into the group (call it in the child, before exec)."""
        fd = os.open(self.join_file, os.O_WRONLY)
        try:
            os.write(fd, b"0")
        finally:
            os.close(fd)

    def hit_limit(self) -> bool:
        """Whether the group ran into its limit and the kernel killed for it."""
        try:
            if self.version == 2:
                events = dict(line.split() for line in (self.path / "memory.events").read_text().splitlines())
                return int(events.get("oom_kill", 0)) > 0 or int(events.get("max", 0)) > 0
            control = dict(line.split() for line in (self.path / "memory.oom_control").read_text().splitlines())
            return int(control.get("oom_kill", 0)) > 0 or int((self.path / "memory.failcnt").read_text()) > 0
        except (OSError, ValueError):
            return False

    def peak_bytes(self) -> int:
        name = "memory.peak" if self.version == 2 else "memory.max_usage_in_bytes"
        try:
            return int((self.path / name).read_text())
        except (OSError, ValueError):
            return 0

    def pids(self) -> list[int]:
        try:
            return [int(p) for p in (self.path / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def close(self) -> None:
        """Kill what is left in the group and remove it."""
        kill_until_gone(self.pids)
        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.02)


def kill_until_gone(pids: Callable[[], list[int]], seconds: float = 3.0) -> None:
    """SIGKILL every process `pids()` lists, again, until it lists none or `seconds` pass."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = pids()
        if not found:
            return
        for pid in found:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.02)
