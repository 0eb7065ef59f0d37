"""Runs untrusted generated code: one fresh directory, one separate process tree, hard limits.

Isolation comes from bubblewrap (`bwrap`, Debian package `bubblewrap`): the
candidate sees a read-only /usr, /etc and /dev, the interpreter's own prefix, its own
working directory, a private /tmp and /dev/shm (each a tmpfs capped at `disk_mb`, so
no writable filesystem can grow past its cap, on disk or in memory), nothing of the
user's files (/root, /home, the project and its data are simply not mounted); the
program's files are copied in from a read-only staging folder. bubblewrap itself starts
from an empty environment, so no process inside (bubblewrap is PID 1 there) holds the
caller's variables, API keys included. It gets new network
(no interface but a down loopback), PID, IPC and UTS namespaces, and dies with
its parent. Limits are kernel rlimits set before exec: CPU seconds, address
space, file size, open files, and processes. When langdec runs as root, each
concurrent slot drops to its own unprivileged uid first, because the kernel
never applies the process limit to root; a fork bomb then hits that uid's limit,
and the PID namespace takes every leftover process down with the sandbox.
Wall-clock time is enforced from outside (the process group is killed). Each slot also
runs in a memory cgroup of its own (`langdec.cgroup`), charged for what the kernel keeps for
the candidate (tmpfs pages, the inodes of empty directories, extended attributes), so one
candidate can never take more of the host than `Limits.slot_memory_bytes`.
stdout/stderr go to files capped by the file-size limit and are read back
truncated, so a candidate that prints forever costs bounded memory.
"""

from __future__ import annotations

import functools
import os
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from langdec.core.errors import LangdecError
from langdec.evaluation.cgroup import kill_until_gone

if TYPE_CHECKING:
    from langdec.evaluation.cgroup import MemoryGroup

BASE_UID = 61000  # slot i runs as uid BASE_UID + i when langdec is root


@dataclass
class Limits:
    wall_seconds: float = 10.0
    cpu_seconds: int = 10
    memory_mb: int = 1024  # address space; the JVM gets its heap from -Xmx within this
    processes: int = 128  # threads count too: a JVM starts a few dozen
    file_mb: int = 16
    disk_mb: int = 64  # each writable filesystem (working directory, /tmp, /dev/shm) is a tmpfs of this size
    open_files: int = 256
    output_chars: int = 4000
    # the whole slot (every process, its tmpfs pages, inodes and extended attributes) in a memory cgroup of this
    # many MB; None: memory_mb + the three tmpfs of disk_mb + 256 MB for bubblewrap and the kernel's share
    host_memory_mb: int | None = None

    @property
    def slot_memory_bytes(self) -> int:
        return (self.host_memory_mb or self.memory_mb + 3 * self.disk_mb + 256) * 2**20


@dataclass
class ExecResult:
    status: str  # passed | failed | timeout | killed | error
    returncode: int | None
    seconds: float
    stdout: str = ""
    stderr: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "passed"


@dataclass
class Program:
    """Files to write into the fresh directory and the command lines to run there, in order. With `done_marker`,
    a run passes only if the text is on its standard output too: the program prints it after its last test."""

    files: dict[str, str]
    commands: list[list[str]]
    extra_binds: list[str] = field(default_factory=list)
    done_marker: str = ""


@functools.lru_cache(maxsize=1)
def bwrap() -> str:
    path = shutil.which("bwrap")
    if path is None:
        raise LangdecError(
            "executing generated code needs bubblewrap for isolation: apt-get install bubblewrap "
            "(langdec never runs candidates unsandboxed)"
        )
    probe = subprocess.run(
        [
            path,
            "--ro-bind",
            "/usr",
            "/usr",
            "--symlink",
            "usr/bin",
            "/bin",
            "--symlink",
            "usr/lib",
            "/lib",
            "--symlink",
            "usr/lib64",
            "/lib64",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--unshare-all",
            "--die-with-parent",
            "/bin/true",
        ],
        capture_output=True,
        text=True,
    )
    if probe.returncode != 0:
        raise LangdecError(
            f"bubblewrap cannot create namespaces here ({probe.stderr.strip()[:200]}); enable unprivileged "
            "user namespaces (sysctl kernel.unprivileged_userns_clone=1) or run on a host that allows them"
        )
    return path


@functools.lru_cache(maxsize=1)
def _base_binds() -> tuple[str, ...]:
    args = ["--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc", "--proc", "/proc", "--dev", "/dev"]
    for link in ("bin", "lib", "lib64", "sbin"):
        target = Path("/") / link
        if target.is_symlink():
            args += ["--symlink", os.readlink(target), f"/{link}"]
        elif target.is_dir():
            args += ["--ro-bind", str(target), f"/{link}"]
    interpreter = Path(_python()).resolve()
    if not str(interpreter).startswith("/usr/"):
        prefix = interpreter.parent.parent
        args += ["--ro-bind", str(prefix), str(prefix)]  # a pyenv/conda interpreter: only its own prefix
    return tuple(args)


@functools.lru_cache(maxsize=1)
def _python() -> str:
    """The system Python when there is one (visible to any uid), else this interpreter's base."""
    for candidate in ("/usr/bin/python3", str(Path(sys.base_prefix) / "bin" / "python3")):
        if Path(candidate).exists():
            return candidate
    raise LangdecError("no Python interpreter to run candidates with (looked for /usr/bin/python3 and sys.base_prefix)")


def python_command(script: str) -> list[str]:
    """A bare interpreter in isolated mode: no venv, no site-packages, no user site."""
    return [_python(), "-I", "-S", script]


def _bwrap_argv(program: Program, stage: Path, disk_mb: int) -> list[str]:
    """The bubblewrap command line that runs the program's commands in order on a fresh copy of `stage`/in, each
    writable filesystem a tmpfs of `disk_mb`."""
    size = str(disk_mb * 1024 * 1024)
    script = " && ".join(["cp -R /in/. /sandbox/", *(shlex.join(c) for c in program.commands)])
    return [
        bwrap(),
        *_base_binds(),
        "--size",
        size,
        "--tmpfs",
        "/dev/shm",
        "--remount-ro",
        "/dev",
        "--size",
        size,
        "--tmpfs",
        "/tmp",
        *program.extra_binds,
        "--ro-bind",
        str(stage / "in"),
        "/in",
        "--size",
        size,
        "--tmpfs",
        "/sandbox",
        "--chdir",
        "/sandbox",
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
        "--clearenv",
        "--setenv",
        "HOME",
        "/sandbox",
        "--setenv",
        "PATH",
        "/usr/bin:/bin",
        "--setenv",
        "LANG",
        "C.UTF-8",
        "/bin/sh",
        "-c",
        script,
    ]


class Sandbox:
    """Execute programs with `run`; safe to use from several threads (each call takes a slot)."""

    def __init__(self, limits: Limits | None = None, slots: int = 2) -> None:
        self.limits = limits or Limits()
        self._slots: list[int] = list(range(slots))
        self._lock = threading.Condition()
        self.root = Path(tempfile.mkdtemp(prefix="langdec-sandbox-"))
        os.chmod(self.root, 0o711)

    def _take(self) -> int:
        with self._lock:
            while not self._slots:
                self._lock.wait()
            return self._slots.pop()

    def _give(self, slot: int) -> None:
        with self._lock:
            self._slots.append(slot)
            self._lock.notify()

    def _preexec(self, slot: int, group: "MemoryGroup | None" = None):
        limits = self.limits
        as_root = os.geteuid() == 0
        # without root the process limit counts all of the user's processes: allow those plus the budget
        processes = limits.processes if as_root else limits.processes + _processes_of(os.getuid())

        def apply() -> None:
            if group is not None:
                group.join()  # first, while still privileged: bwrap and everything it starts are charged to the group
            os.setsid()
            resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 1))
            resource.setrlimit(resource.RLIMIT_AS, (limits.memory_mb * 2**20,) * 2)
            resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_mb * 2**20,) * 2)
            resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files,) * 2)
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            resource.setrlimit(resource.RLIMIT_NPROC, (processes,) * 2)
            if as_root:
                uid = BASE_UID + slot
                os.setgroups([])
                os.setgid(uid)
                os.setuid(uid)

        return apply

    def run(self, program: Program) -> ExecResult:
        """Copy the program's files into a fresh capped working directory and run its commands there, in order,
        in one sandbox; the first command that fails ends the program and gives its status."""
        slot = self._take()
        stage = Path(tempfile.mkdtemp(prefix=f"slot{slot}-", dir=self.root))
        work = stage / "in"
        try:
            for name, text in program.files.items():
                target = work / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8")
            work.mkdir(exist_ok=True)
            for path in [stage, *stage.rglob("*")]:
                os.chmod(path, 0o755 if path.is_dir() else 0o644)  # read-only for the candidate's uid
            return self._program(program, stage, slot)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
            self._give(slot)

    def _program(self, program: Program, stage: Path, slot: int) -> ExecResult:
        limits = self.limits
        argv = _bwrap_argv(program, stage, limits.disk_mb)
        out_path, err_path = stage / "stdout", stage / "stderr"
        group = _memory_group(f"langdec-sandbox-{os.getpid()}-{slot}-{stage.name}", limits.slot_memory_bytes)
        start = time.perf_counter()
        try:
            with open(out_path, "wb") as out, open(err_path, "wb") as err:
                # an empty environment for bubblewrap itself: inside, it is PID 1 and /proc/1/environ is readable
                proc = subprocess.Popen(
                    argv,
                    stdout=out,
                    stderr=err,
                    stdin=subprocess.DEVNULL,
                    preexec_fn=self._preexec(slot, group),
                    env={"PATH": "/usr/bin:/bin"},
                )
                try:
                    code = proc.wait(timeout=limits.wall_seconds * max(1, len(program.commands)))
                    status = "passed" if code == 0 else "failed"
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                    code, status = None, "timeout"
            if os.geteuid() == 0:
                _reap(BASE_UID + slot)  # the PID namespace dies with bwrap; make sure before the slot is reused
            if code is not None and (code < 0 or code - 128 in _LIMIT_SIGNALS):
                status = "killed"  # a signal death shows as 128 + signal: CPU limit, file size, ...
            if group is not None and code != 0 and group.hit_limit():
                status = "killed"  # the slot's memory bound (what the kernel keeps for it included)
            stdout = _tail(out_path, limits.output_chars)
            if status == "passed" and program.done_marker and program.done_marker not in stdout:
                status = "failed"  # it exited 0 before its tests finished (sys.exit(0), os._exit)
        finally:
            if group is not None:
                group.close()
        return ExecResult(status, code, time.perf_counter() - start, stdout, _tail(err_path, limits.output_chars))

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_LIMIT_SIGNALS = {signal.SIGKILL, signal.SIGXCPU, signal.SIGXFSZ, signal.SIGSEGV, signal.SIGABRT}


_UNBOUNDED_NOTED = threading.Event()


def _memory_group(name: str, limit_bytes: int) -> "MemoryGroup | None":
    """The slot's memory cgroup; None (said once) where this machine lets langdec make none."""
    from langdec.evaluation.cgroup import MemoryGroup

    try:
        return MemoryGroup(name, limit_bytes)
    except OSError as exc:
        if not _UNBOUNDED_NOTED.is_set():
            _UNBOUNDED_NOTED.set()
            print(
                f"note: the sandbox bounds each process's memory but not what the kernel keeps for it (tmpfs pages, inodes): "
                f"no memory cgroup can be made here ({exc}); run langdec as root or in a delegated cgroup",
                file=sys.stderr,
            )
        return None


def _processes(uid: int) -> Iterator[Path]:
    """/proc entries of a uid's live processes (zombies are dead and only wait for their parent to reap them)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid and (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                    yield entry
            except (OSError, IndexError):
                pass


def _pids_of(uid: int) -> list[int]:
    return [int(entry.name) for entry in _processes(uid)]


def _reap(uid: int, seconds: float = 3.0) -> None:
    kill_until_gone(lambda: _pids_of(uid), seconds)


def _processes_of(uid: int) -> int:
    """Threads count against the process limit, so count them."""
    count = 0
    for entry in _processes(uid):
        try:
            count += len(list((entry / "task").iterdir()))
        except OSError:
            pass
    return count


def _tail(path: Path, chars: int) -> str:
    try:
        with open(path, "rb") as handle:
            data = handle.read(chars * 4)
    except OSError:
        return ""
    text = data.decode("utf-8", errors="replace")
    return text if len(text) <= chars else text[:chars] + f"\n... [truncated at {chars} characters]"
