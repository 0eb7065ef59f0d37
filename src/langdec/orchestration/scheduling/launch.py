"""Starting one item's process for a scheduler task and reading how it ended.

The item runs in a child process of the scheduler's task (a SLURM array task, a Ray task), so that a lost node or
a killed worker takes the item with it (the child watches its parent) and a signal for the task reaches the item.
An item on several GPUs is one DDP job: torchrun starts a process per GPU on the node it was given."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from langdec.core.errors import EXIT_CONFIG, EXIT_RETRY

# the file each of the item's processes writes its outcome to (`item.write_result`): read back here even when torchrun
# replaced the exit status (it exits 1). Defined here, not with the item, so a scheduler starts without loading one.
RESULT_ENV = "LANGDEC_ITEM_RESULT"
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def command(
    ladder: str | Path, index: int, *, gpus: int = 1, supersede: bool = False, pin: str | None = None
) -> list[str]:
    tail = [
        "-m",
        "langdec.cli",
        "--quiet",
        "run-item",
        str(ladder),
        str(index),
        *(["--supersede"] if supersede else []),
        *(["--pin", pin] if pin else []),
    ]
    if gpus > 1:
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={gpus}", *tail]
    return [sys.executable, *tail]


def allotted_cpus(env: dict[str, str] | None = None) -> int:
    """The CPUs the scheduler gave this task: SLURM's per-task count, else its count on this node, else this process's
    CPU affinity (what Ray, taskset or a cgroup's cpuset leave it)."""
    env = os.environ if env is None else env
    for name in ("SLURM_CPUS_PER_TASK", "SLURM_CPUS_ON_NODE"):
        value = (env.get(name) or "").split("(")[0]  # SLURM_CPUS_ON_NODE may read "4(x2)" on heterogeneous nodes
        if value.isdigit() and int(value) > 0:
            return int(value)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def with_threads(env: dict[str, str], processes: int = 1) -> dict[str, str]:
    """`env` with OpenMP/BLAS thread counts set to the CPUs allotted, shared among the item's `processes` (DDP ranks).
    Without them torch starts a thread per core of the whole machine, and items side by side on a node (or one item
    given 2 of 64 cores) spin against each other: a step took 7 s under SLURM against 0.6 s with the count set.
    A count the user set is kept."""
    if env.get("OMP_NUM_THREADS"):
        return dict(env)
    threads = str(max(1, allotted_cpus(env) // max(1, processes)))
    return {**env, **{name: env.get(name) or threads for name in THREAD_VARIABLES}}


def retry_pause(attempt: int) -> float:
    """Seconds to wait before attempt `attempt + 2` of an item that failed retryably: a store or network outage
    needs a moment to pass (10 s, 20 s, 40 s, ... at most 2 minutes)."""
    return min(120.0, 10.0 * 2**attempt)


@dataclass
class Ended:
    code: int  # 0, EXIT_RETRY, EXIT_CONFIG, 1; a signal's death counts as EXIT_RETRY (OOM killer, a lost node)
    detail: str

    @property
    def retryable(self) -> bool:
        return self.code == EXIT_RETRY

    @property
    def result(self) -> dict:
        """What `run-item` reported on success (status done|reused, its runs and version), else {}."""
        if self.code != 0:
            return {}
        try:
            return json.loads(self.detail)
        except ValueError:
            return {}


class Child:
    """The item's process: started, signalled (forwarding the scheduler's SIGTERM/SIGUSR2), waited for."""

    def __init__(
        self, cmd: list[str], env: dict[str, str] | None = None, log: Path | None = None, processes: int = 1
    ) -> None:
        """`processes`: how many the command starts that compute (torchrun's ranks); they share the allotted CPUs."""
        self._results = tempfile.mkdtemp(prefix="langdec-item-")
        environment = {
            **with_threads(dict(os.environ if env is None else env), processes),
            RESULT_ENV: str(Path(self._results) / "result"),
            "LANGDEC_PARENT_PID": str(os.getpid()),
        }
        output = None
        if log is not None:  # appended: every attempt of the item in one file
            log.parent.mkdir(parents=True, exist_ok=True)
            output = log.open("ab")
        try:
            self.process = subprocess.Popen(
                cmd, env=environment, stdout=output, stderr=subprocess.STDOUT if output else None
            )
        finally:
            if output is not None:
                output.close()

    def signal(self, signum: int) -> None:
        if self.process.poll() is None:
            try:
                self.process.send_signal(signum)
            except ProcessLookupError:
                pass

    def exited_within(self, seconds: float) -> bool:
        """Whether the child ends within `seconds`, without reaping it. For signal handlers: the interrupted main
        thread may be inside `Popen.wait`, holding the lock a second `wait` would spin on until its timeout."""
        import time

        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                if os.waitid(os.P_PID, self.process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                    return True
            except ChildProcessError:  # already reaped
                return True
            time.sleep(0.2)
        return False

    def wait(self, timeout: float | None = None) -> Ended:
        code = self.process.wait(timeout=timeout)
        return self._ended(code)

    def _ended(self, code: int) -> Ended:
        written = []
        for path in Path(self._results).glob("result.*"):
            try:
                written.append(json.loads(path.read_text()))
            except (OSError, ValueError):
                continue
        shutil.rmtree(self._results, ignore_errors=True)
        if written:  # the worst outcome of any rank decides: a bug, then a config error, then a retry
            order = {1: 0, EXIT_CONFIG: 1, EXIT_RETRY: 2, 0: 3}
            worst = min(written, key=lambda r: order.get(r["exit"], 0))
            if code == 0 or worst["exit"] != 0:
                return Ended(worst["exit"], worst["detail"])
        if code < 0:
            return Ended(EXIT_RETRY, f"killed by {signal.Signals(-code).name}")
        return Ended(code, "" if code == 0 else f"exit status {code}")
