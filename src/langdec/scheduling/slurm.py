"""SLURM: the ladder as one job array, submitted through submitit; each array task runs one item.

- Placement: each task asks for `--gres=gpu:N`; SLURM gives it its GPUs (CUDA_VISIBLE_DEVICES) on some node.
- One running copy: the array is named for the ladder with `--dependency=singleton`, so submitting the same ladder
  again waits for the running array; the tasks of one array run side by side (SLURM's singleton is per job name,
  and an array has one). Anything else that runs an item twice meets langdec's claim and registration in MLflow.
- Preemption and time limits: `--signal=USR2@S` (submitit's); the task forwards it to the item, training saves a
  checkpoint and stops, and submitit requeues the task, which resumes at that step. A SIGTERM (a preemption with no
  warning) is forwarded the same way and the task requeues itself.
- Node failure: `--requeue`; the item reruns elsewhere and resumes from its last checkpoint (LANGDEC_CHECKPOINTS,
  on storage every node sees).
- Retryable failures (exit status EXIT_RETRY) are retried in place up to `max_retries` times; others fail the task.
- Logs: submitit's per-task files, `<logs>/<array id>_<index>/<array id>_<index>_0_log.{out,err}` (`--status` lists them).
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import LangdecError
from . import launch, records
from .item import Ladder

try:
    import submitit
    from submitit.helpers import Checkpointable
except ImportError:  # the error comes when a submission needs it
    submitit = None
    Checkpointable = object


@dataclass
class Options:
    partition: str | None = None
    gpus_per_item: int = 1
    time_minutes: int = 240
    array_parallelism: int = 64
    cpus_per_item: int | None = None
    mem_gb: float | None = None
    max_retries: int = 2
    signal_delay_s: int = 120  # USR2 this long before the time limit: room for one step and a checkpoint
    logs: Path | None = None
    extra: dict[str, str] = field(default_factory=dict)  # more sbatch flags: account, qos, constraint, ...
    setup: list[str] = field(default_factory=list)  # shell lines before the task (module load, conda activate)
    supersede: bool = False


class ItemTask(Checkpointable):
    """What each array task runs (pickled by submitit; it carries no secret: the job's environment does)."""

    def __init__(self, ladder: str, names: list[str], gpus: int, supersede: bool, max_retries: int, signal_delay_s: int) -> None:
        self.ladder, self.names, self.gpus, self.supersede = ladder, names, gpus, supersede
        self.max_retries, self.signal_delay_s = max_retries, signal_delay_s
        self._child: launch.Child | None = None
        self._stopping = False

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("_child", "_stopping")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _child=None, _stopping=False)

    def __call__(self, index: int) -> dict:
        name = self.names[index]
        signal.signal(signal.SIGTERM, self._on_sigterm)  # submitit only logs it; the item must hear it
        start = time.time()
        for attempt in range(self.max_retries + 1):
            self._child = launch.Child(launch.command(self.ladder, index, gpus=self.gpus, supersede=self.supersede))
            ended = self._child.wait()
            self._child = None
            if ended.code == 0:
                return {**ended.result, "item": name, "index": index, "attempts": attempt + 1, "seconds": round(time.time() - start, 1)}
            if self._stopping and ended.retryable:
                _requeue_self()  # preempted without USR2's warning: the item checkpointed; run again later
            if not ended.retryable or attempt == self.max_retries:
                break
            print(f"langdec: item {name}: {ended.detail} (retryable); attempt {attempt + 2} of {self.max_retries + 1}",
                  file=sys.stderr, flush=True)
            time.sleep(launch.retry_pause(attempt))
        raise RuntimeError(f"item {name}: {ended.detail} (exit status {ended.code}"
                           + (", retryable: retries used up)" if ended.retryable else ", not retryable)"))

    def _on_sigterm(self, signum, frame) -> None:
        self._stopping = True
        if self._child is not None:
            self._child.signal(signum)

    def checkpoint(self, index: int):
        """submitit's USR2 handler calls this: the time limit or a preemption is near. The item saves a checkpoint and
        stops; the returned submission is what the requeued task runs, and the item resumes from that checkpoint."""
        self._stopping = True
        child = self._child
        if child is not None:
            child.signal(signal.SIGUSR2)
            if not child.exited_within(max(10, self.signal_delay_s - 15)):
                child.signal(signal.SIGKILL)  # the last complete checkpoint is still there
        return submitit.helpers.DelayedSubmission(ItemTask(self.ladder, self.names, self.gpus, self.supersede,
                                                           self.max_retries, self.signal_delay_s), index)


def _requeue_self() -> None:
    env = os.environ
    job = f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}" if env.get("SLURM_ARRAY_JOB_ID") else env.get("SLURM_JOB_ID")
    if job:
        subprocess.run(["scontrol", "requeue", job], timeout=60, check=False)
        sys.exit(-1)  # as submitit does after its own requeue


def _needs_submitit():
    if submitit is None:
        raise LangdecError("--slurm needs submitit: pip install 'langdec[slurm]'")
    return submitit


def submit(ladder: Ladder, options: Options, echo=print) -> dict:
    """Submit every item of the ladder as one job array; returns the record saved for `--status`."""
    sub = _needs_submitit()
    from ..paths import work_dir

    if options.gpus_per_item < 0 or options.time_minutes < 1 or options.array_parallelism < 1:
        raise LangdecError("--gpus-per-item must be >= 0, --time and --array-parallelism >= 1")
    logs = (options.logs or work_dir() / "slurm" / ladder.label).resolve()
    executor = sub.SlurmExecutor(folder=logs / "%j", max_num_timeout=3)
    params = {"job_name": f"langdec-{ladder.label}", "time": options.time_minutes, "nodes": 1, "ntasks_per_node": 1,
              "partition": options.partition, "cpus_per_task": options.cpus_per_item,
              "gres": f"gpu:{options.gpus_per_item}" if options.gpus_per_item else None,
              "mem": f"{options.mem_gb}GB" if options.mem_gb else None, "signal_delay_s": options.signal_delay_s,
              "array_parallelism": options.array_parallelism, "setup": options.setup or None,
              "additional_parameters": {"requeue": True, "dependency": "singleton", **options.extra}}
    try:
        executor.update_parameters(**{k: v for k, v in params.items() if v is not None})
        task = ItemTask(str(ladder.path), ladder.names, options.gpus_per_item, options.supersede, options.max_retries,
                        options.signal_delay_s)
        jobs = executor.map_array(task, list(range(len(ladder.items))))
    except (subprocess.CalledProcessError, OSError, ValueError) as exc:
        detail = getattr(exc, "stderr", None) or getattr(exc, "output", None) or str(exc)
        detail = detail.decode(errors="replace") if isinstance(detail, bytes) else str(detail)
        raise LangdecError(f"sbatch refused the ladder {ladder.path}: {detail.strip().splitlines()[-1][:300] if detail.strip() else exc}; "
                           "check --partition, --gpus-per-item and --slurm-arg against `sinfo`") from None
    array = jobs[0].job_id.split("_")[0]
    # one item is submitted as a plain job (no "_index"): the record keeps each task's id and files as submitit names them
    record = {"backend": "slurm", "job_id": array, "job_name": params["job_name"], "tasks": [j.job_id for j in jobs],
              "logs": [str(j.paths.stdout) for j in jobs], "results": [str(j.paths.result_pickle) for j in jobs],
              "items": ladder.names, "ladder": str(ladder.path), "submitted": time.strftime("%Y-%m-%d %H:%M:%S")}
    records.save(ladder.label, record)
    echo(f"submitted {len(jobs)} items of {ladder.label} as SLURM array {array} (job name {params['job_name']}, "
         f"{options.gpus_per_item} GPU(s) each, at most {options.array_parallelism} at once)")
    echo(f"per-task logs: {Path(record['logs'][0]).parent.parent}/{jobs[0].job_id}/... (.out and .err beside each other)")
    return record


def scheduler_states(record: dict) -> dict[int, str]:
    """index -> what SLURM says now: its state in squeue, or how the task ended (submitit's result file)."""
    index_of = {task: i for i, task in enumerate(record.get("tasks", []))}
    states: dict[int, str] = {}
    try:
        out = subprocess.run(["squeue", "-h", "-r", "-j", record["job_id"], "-o", "%i|%T|%N|%r"], capture_output=True, text=True,
                             timeout=30)
        lines = out.stdout.splitlines() if out.returncode == 0 else []
    except (OSError, subprocess.TimeoutExpired):
        lines = []
    for line in lines:
        jid, state, node, reason = (line.split("|") + ["", "", "", ""])[:4]
        if jid in index_of:
            where = f" on {node}" if node else (f" ({reason})" if reason and reason != "None" else "")
            states[index_of[jid]] = f"{state.lower()}{where}"
    for index, result in enumerate(record.get("results", [])):
        if index in states:
            continue
        try:
            with open(result, "rb") as handle:  # written by submitit in this user's own log folder
                outcome, value = pickle.load(handle)
            states[index] = (f"ended: {value.get('status', 'success')}" if outcome == "success" and isinstance(value, dict)
                             else "ended: error (see its log)")
        except (OSError, pickle.UnpicklingError, EOFError, ValueError):
            states[index] = "not in the queue"
    return states


def wait(record: dict, *, poll: float = 10.0, echo=print) -> dict[int, str]:
    """Until no task of the array is pending or running; says how many are in each state whenever that changes."""
    said = ""
    while True:
        states = scheduler_states(record)
        counts: dict[str, int] = {}
        for state in states.values():
            word = state.split()[0].rstrip(":") if not state.startswith("ended") else state
            counts[word] = counts.get(word, 0) + 1
        line = ", ".join(f"{n} {word}" for word, n in sorted(counts.items()))
        if line != said:
            echo(f"[{time.strftime('%H:%M:%S')}] {line}", flush=True)
            said = line
        if not any(s.startswith(("pending", "running", "configuring", "completing", "requeued", "suspended")) for s in states.values()):
            return states
        time.sleep(poll)
