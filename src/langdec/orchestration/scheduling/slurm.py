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
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from langdec.core.errors import LangdecError
from langdec.orchestration.scheduling import launch, records
from langdec.orchestration.scheduling.base import Flag, ItemOptions, option

if TYPE_CHECKING:
    from langdec.orchestration.scheduling.item import Ladder

# submitit is imported where a submission or a task needs it: every `langdec` command builds the parser that lists
# this scheduler's flags, and none of them should pay for it.


def sbatch_options(pairs: list[str]) -> dict[str, str]:
    """--slurm-arg KEY=VALUE pairs -> sbatch options (a leading `--` on the key is dropped)."""
    extra = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise LangdecError(f"--slurm-arg {pair!r}: use KEY=VALUE, e.g. --slurm-arg account=my-lab")
        extra[key.strip().lstrip("-")] = value
    return extra


@dataclass
class Options(ItemOptions):
    partition: str | None = option(Flag("--partition"))
    time_minutes: int = option(
        Flag("--time", type=int, help="minutes per item (one training run and its evaluation)"), 240
    )
    array_parallelism: int = option(Flag("--array-parallelism", type=int, help="items running at once"), 64)
    cpus_per_item: int | None = option(Flag("--cpus-per-item", type=int))
    mem_gb: float | None = option(Flag("--mem-gb", type=float))
    # USR2 this long before the time limit: room for one step and a checkpoint
    signal_delay_s: int = option(
        Flag("--signal-delay", type=int, help="seconds between USR2 (checkpoint and requeue) and the kill"), 120
    )
    # more sbatch flags: account, qos, constraint, ...
    extra: dict[str, str] = option(
        Flag("--slurm-arg", action="append", metavar="KEY=VALUE", help="another sbatch option, e.g. account=my-lab"),
        [],
        convert=sbatch_options,
    )
    # shell lines before the task (module load, conda activate)
    setup: list[str] = option(
        Flag(
            "--slurm-setup", action="append", metavar="LINE", help="a shell line run before each item (module load ...)"
        ),
        [],
        convert=list,
    )
    logs: Path | None = option(
        Flag("--logs", help="folder for the per-task logs (default: LANGDEC_HOME/slurm/LADDER-PHASE)"),
        convert=lambda given: Path(given) if given else None,
    )
    wait: bool = option(
        Flag("--wait", action="store_true", help="wait for the array to end, then print each item's state"), False
    )
    poll: float = option(Flag("--poll", type=float, help="with --wait: seconds between looks at the queue"), 30.0)


EXIT_CANCELLED = 143  # 128 + SIGTERM: a task ended by `scancel` (SLURM records the job CANCELLED anyway)
REQUEUED_STATES = ("PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "PREEMPTED", "NODE_FAIL")
RUNNING_STATES = ("RUNNING", "SUSPENDED", "CONFIGURING", "RESIZING", "SIGNALING")


class ItemTask:
    """What each array task runs (pickled by submitit; it carries no secret: the job's environment does). It carries
    the ladder file as submitted (`pin`), so the item it runs is the one submitted at its index. submitit calls its
    `checkpoint` on USR2 because it has one (submitit looks the method up; its `Checkpointable` base adds nothing)."""

    def __init__(
        self,
        ladder: str,
        names: list[str],
        gpus: int,
        supersede: bool,
        max_retries: int,
        signal_delay_s: int,
        pin: records.Pin | None = None,
    ) -> None:
        self.ladder, self.names, self.gpus, self.supersede = ladder, names, gpus, supersede
        self.max_retries, self.signal_delay_s, self.pin = max_retries, signal_delay_s, pin
        self._child: launch.Child | None = None
        self._stop: tuple[str, str] | None = None  # why the task was told to stop (`stop_reason`), once it was

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("_child", "_stop")}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update({"pin": None, **state}, _child=None, _stop=None)

    def __call__(self, index: int) -> dict:
        name = self.names[index]
        signal.signal(signal.SIGTERM, self._on_sigterm)  # submitit only logs it; the item must hear it
        if self.pin is not None:
            records.keep(self.pin)  # this node's copy of the ladder as submitted, for `run-item --pin`
        start = time.time()
        ended = launch.Ended(EXIT_CANCELLED, "stopped before it started")
        for attempt in range(self.max_retries + 1):
            if self._stop is not None:  # told to stop while it waited to try again
                break
            self._child = launch.Child(
                launch.command(
                    self.ladder,
                    index,
                    gpus=self.gpus,
                    supersede=self.supersede,
                    pin=self.pin.digest if self.pin else None,
                ),
                processes=max(1, self.gpus),
            )
            ended = self._child.wait()
            self._child = None
            if ended.code == 0:
                return {
                    **ended.result,
                    "item": name,
                    "index": index,
                    "attempts": attempt + 1,
                    "seconds": round(time.time() - start, 1),
                }
            if self._stop is not None or not ended.retryable or attempt == self.max_retries:
                break
            print(
                f"langdec: item {name}: {ended.detail} (retryable); attempt {attempt + 2} of {self.max_retries + 1}",
                file=sys.stderr,
                flush=True,
            )
            time.sleep(launch.retry_pause(attempt))
        if self._stop is not None and (self._stop[0] == "cancelled" or ended.retryable or ended.code == EXIT_CANCELLED):
            self._stopped(name)
        message = f"failed (exit {ended.code}): item {name}: {ended.detail}" + (
            " (retryable: retries used up)" if ended.retryable else " (not retryable)"
        )
        _record_outcome(message)
        print(f"langdec: {message}", file=sys.stderr, flush=True)
        sys.exit(ended.code if 0 < ended.code < 256 else 1)  # sacct shows the item's own status: 2, 75 or 1

    def _on_sigterm(self, signum, frame) -> None:
        if self._child is not None:
            self._child.signal(signum)  # the item stops first (training: at the step's end, with a checkpoint)
        if self._stop is None:
            self._stop = stop_reason()
            print(f"langdec: SIGTERM: {self._stop[1]}", file=sys.stderr, flush=True)
            if self._stop[0] == "cancelled":  # said now: SLURM kills the task KillWait seconds after this signal
                _record_outcome(f"cancelled: {self._stop[1]}; the item stopped and is not requeued")

    def _stopped(self, name: str) -> None:
        """End the task as the reason for the SIGTERM asks: a user's cancel ends the item; a preemption, a time limit
        or a bare signal requeues it (it resumes from the checkpoint it just saved); a requeue SLURM does itself
        (a node taken down, `scontrol requeue`) needs nothing more."""
        kind, detail = self._stop
        if kind == "cancelled":
            print(f"langdec: item {name} cancelled; not requeued", file=sys.stderr, flush=True)
            sys.exit(EXIT_CANCELLED)
        if kind == "requeued":
            sys.exit(-1)
        _requeue_self()

    def checkpoint(self, index: int):
        """submitit's USR2 handler calls this: the time limit or a preemption is near. The item saves a checkpoint and
        stops; the returned submission is what the requeued task runs, and the item resumes from that checkpoint."""
        self._stop = ("preempted", "SIGUSR2: a preemption or the time limit is near")
        child = self._child
        if child is not None:
            child.signal(signal.SIGUSR2)
            if not child.exited_within(max(10, self.signal_delay_s - 15)):
                child.signal(signal.SIGKILL)  # the last complete checkpoint is still there
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(
            ItemTask(
                self.ladder, self.names, self.gpus, self.supersede, self.max_retries, self.signal_delay_s, self.pin
            ),
            index,
        )


def stop_reason(env: dict[str, str] | None = None) -> tuple[str, str]:
    """Why SLURM sent this job SIGTERM, asked of the controller at once: (kind, what it said). Kinds: `cancelled`
    (scancel by a user or an admin), `preempted`, `time limit`, `requeued` (SLURM requeues it itself: a node taken
    down, `scontrol requeue`) and `signal` (the job keeps running: `scancel --signal=TERM`, a preemption's grace
    warning). When the controller cannot say, a preemption is assumed: the item checkpoints and comes back."""
    env = os.environ if env is None else env
    job = env.get("SLURM_JOB_ID")
    if not job:
        return "signal", "SIGTERM outside a SLURM job"
    try:
        out = subprocess.run(["scontrol", "show", "job", "-o", job], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return "preempted", f"scontrol show job {job} failed ({type(exc).__name__}); treated as a preemption"
    if out.returncode != 0:
        return "preempted", f"scontrol show job {job}: {out.stderr.strip()[:200]}; treated as a preemption"
    return classify_stop(job_fields(out.stdout), int(env.get("SLURM_RESTART_COUNT") or 0))


def job_fields(text: str) -> dict[str, str]:
    """`scontrol show job -o`'s Key=Value pairs (the first of each key)."""
    fields: dict[str, str] = {}
    for key, value in re.findall(r"(?:^|\s)([A-Za-z][\w/:]*)=(\S*)", text):
        fields.setdefault(key, value)
    return fields


def classify_stop(fields: dict[str, str], restarts_at_start: int) -> tuple[str, str]:
    """The kind of stop `scontrol show job` describes at the moment of the SIGTERM. A cancel and a preemption both show
    JobState=COMPLETING: a preemption has a PreemptTime, a requeue (preemption in REQUEUE mode, a node taken down,
    `scontrol requeue`) counts one more restart than the task started with, a time limit has Reason=TimeLimit."""
    state, reason = fields.get("JobState", ""), fields.get("Reason", "")
    said = f"JobState={state} Reason={reason}"
    restarts = fields.get("Restarts", "0")
    if not state:
        return "preempted", "the controller did not say the job's state; treated as a preemption"
    if fields.get("PreemptTime", "None") not in ("None", "Unknown", ""):
        return "preempted", f"preempted at {fields['PreemptTime']} ({said}); checkpoint and requeue"
    if (restarts.isdigit() and int(restarts) > restarts_at_start) or state in REQUEUED_STATES:
        return "requeued", f"requeued by SLURM ({said}, restart {restarts}); checkpoint, and SLURM runs it again"
    if state == "TIMEOUT" or reason == "TimeLimit":
        return "time limit", f"the time limit ({said}); checkpoint and requeue"
    if state in RUNNING_STATES:
        return "signal", f"a SIGTERM while the job keeps running ({said}), as a preemption sends; checkpoint, requeue"
    return "cancelled", f"scancel by a user or an admin ({said}, no preemption, no requeue)"


def _record_outcome(message: str) -> None:
    """What `--status` shows for this task: submitit's result file, as submitit writes a failure's traceback."""
    try:
        import submitit

        target = Path(submitit.JobEnvironment().paths.result_pickle)
    except Exception:  # not under submitit (a task run by hand): the log has it
        return
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            pickle.dump(("error", message), handle)
        os.replace(tmp, target)
    except OSError:
        pass


def _requeue_self() -> None:
    env = os.environ
    job = (
        f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
        if env.get("SLURM_ARRAY_JOB_ID")
        else env.get("SLURM_JOB_ID")
    )
    if job:
        subprocess.run(["scontrol", "requeue", job], timeout=60, check=False)
    sys.exit(-1)  # as submitit does after its own requeue


def _needs_submitit():
    try:
        import submitit
    except ImportError:
        raise LangdecError("--slurm needs submitit: pip install 'langdec[slurm]'") from None
    return submitit


def submit(ladder: Ladder, options: Options, *, pin: records.Pin | None = None, echo=print) -> dict:
    """Submit every item of the ladder as one job array; returns the record saved for `--status`. `pin`: the ladder
    file as read for this submission (`records.pin`), which every task runs whatever happens to the file meanwhile."""
    sub = _needs_submitit()
    from langdec.core.paths import work_dir

    if options.gpus_per_item < 0 or options.time_minutes < 1 or options.array_parallelism < 1:
        raise LangdecError("--gpus-per-item must be >= 0, --time and --array-parallelism >= 1")
    logs = (options.logs or work_dir() / "slurm" / ladder.label).resolve()
    executor = sub.SlurmExecutor(folder=logs / "%j", max_num_timeout=3)
    params = _sbatch_parameters(ladder, options)
    try:
        executor.update_parameters(**{k: v for k, v in params.items() if v is not None})
        task = ItemTask(
            str(ladder.path),
            ladder.names,
            options.gpus_per_item,
            options.supersede,
            options.max_retries,
            options.signal_delay_s,
            pin,
        )
        jobs = executor.map_array(task, list(range(len(ladder.items))))
    except (subprocess.CalledProcessError, OSError, ValueError) as exc:
        raise _sbatch_refusal(ladder, exc) from None
    record = _submission(ladder, params["job_name"], jobs, pin)
    records.save(ladder.label, record)
    echo(
        f"submitted {len(jobs)} items of {ladder.label} as SLURM array {record['job_id']} (job name "
        f"{params['job_name']}, {options.gpus_per_item} GPU(s) each, at most {options.array_parallelism} at once)"
    )
    echo(
        f"per-task logs: {Path(record['logs'][0]).parent.parent}/{jobs[0].job_id}/... (.out and .err beside each other)"
    )
    return record


def _sbatch_parameters(ladder: Ladder, options: Options) -> dict:
    """submitit's SlurmExecutor parameters for the ladder's array (None: not given, left to SLURM's defaults)."""
    return {
        "job_name": f"langdec-{ladder.label}",
        "time": options.time_minutes,
        "nodes": 1,
        "ntasks_per_node": 1,
        "partition": options.partition,
        "cpus_per_task": options.cpus_per_item,
        "gres": f"gpu:{options.gpus_per_item}" if options.gpus_per_item else None,
        "mem": f"{options.mem_gb}GB" if options.mem_gb else None,
        "signal_delay_s": options.signal_delay_s,
        "array_parallelism": options.array_parallelism,
        "setup": options.setup or None,
        "additional_parameters": {"requeue": True, "dependency": "singleton", **options.extra},
    }


def _sbatch_refusal(ladder: Ladder, exc: Exception) -> LangdecError:
    """sbatch's own last line of complaint (or the error's text) and what to check."""
    detail = getattr(exc, "stderr", None) or getattr(exc, "output", None) or str(exc)
    detail = detail.decode(errors="replace") if isinstance(detail, bytes) else str(detail)
    return LangdecError(
        f"sbatch refused the ladder {ladder.path}: {detail.strip().splitlines()[-1][:300] if detail.strip() else exc}; "
        "check --partition, --gpus-per-item and --slurm-arg against `sinfo`"
    )


def _submission(ladder: Ladder, job_name: str, jobs: list, pin: records.Pin | None) -> dict:
    """The record `--status` reads: the array and each task's id and files."""
    array = jobs[0].job_id.split("_")[0]
    # one item is submitted as a plain job (no "_index"): the record keeps each task's id and files as submitit names them
    return {
        "backend": "slurm",
        "id": f"slurm-{array}",
        "job_id": array,
        "job_name": job_name,
        "tasks": [j.job_id for j in jobs],
        "logs": [str(j.paths.stdout) for j in jobs],
        "results": [str(j.paths.result_pickle) for j in jobs],
        "items": ladder.names,
        "ladder": str(ladder.path),
        "pin": pin.digest if pin else None,
        "submitted": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


LIVE = ("pending", "running", "configuring", "completing", "requeued", "suspended", "resizing", "signaling")
UNANSWERED = records.Seen("unknown (squeue did not answer)", live=True)
SETTLE_S = 30.0  # how long `--wait` watches a task that left the queue without writing how it ended


def describe(record: dict, index: int | None = None) -> str:
    """How `--status` names this submission (`index` None) or its task of item `index`."""
    if index is None:
        return f"slurm array {record.get('job_id')}"
    tasks = record.get("tasks", [])
    return f"slurm {tasks[index] if index < len(tasks) else record.get('job_id')}"


def scheduler_states(record: dict) -> dict[int, records.Seen]:
    """index -> what SLURM says now: its state in squeue, or how the task ended (the task's result file: done,
    cancelled, or failed with its exit status and reason)."""
    index_of = {task: i for i, task in enumerate(record.get("tasks", []))}
    states: dict[int, records.Seen] = {}
    try:
        out = subprocess.run(
            ["squeue", "-h", "-r", "-j", record["job_id"], "-o", "%i|%T|%N|%r"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        # a job SLURM has forgotten (past MinJobAge) is an answer: nothing queued; any other failure is none
        forgotten = "invalid job id" in out.stderr.lower()
        lines = out.stdout.splitlines() if out.returncode == 0 or forgotten else None
    except (OSError, subprocess.TimeoutExpired):
        lines = None
    if lines is None:  # squeue did not answer (a busy controller): a task without a result may still be queued
        return {
            i: _ended(result) if _ended(result).state != "not in the queue" else UNANSWERED
            for i, result in enumerate(record.get("results", []))
        }
    queued: dict[int, records.Seen] = {}
    for line in lines:
        jid, state, node, reason = (line.split("|") + ["", "", "", ""])[:4]
        if jid in index_of:
            where = f" on {node}" if node else (f" ({reason})" if reason and reason != "None" else "")
            queued[index_of[jid]] = records.Seen(f"{state.lower()}{where}", live=state.lower() in LIVE)
    tasks = record.get("tasks", [])
    for index, result in enumerate(record.get("results", [])):
        seen = queued.get(index)
        if seen is not None and seen.live:
            states[index] = seen
            continue
        ended = _ended(result)  # the task's own word on how it ended is better than squeue's state word
        if seen is not None and ended.state == "not in the queue":
            ended = records.Seen(f"ended: {seen.state}")
        elif ended.state == "not in the queue" and index < len(tasks):
            ended = _controller_state(tasks[index])
        states[index] = ended
    return states


def _controller_state(task: str) -> records.Seen:
    """A task squeue did not list and that wrote no result, asked of the controller directly: under load a task in
    the middle of a requeue was missing from squeue's listings for seconds while the controller still held it."""
    try:
        out = subprocess.run(["scontrol", "show", "job", "-o", task], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return UNANSWERED
    if out.returncode != 0:
        return records.Seen("not in the queue") if "invalid job id" in out.stderr.lower() else UNANSWERED
    fields = job_fields(out.stdout)
    state = fields.get("JobState", "").lower()
    if not state:
        return UNANSWERED
    if state in LIVE or state.startswith("requeue"):
        reason = fields.get("Reason", "None")
        return records.Seen(f"{state}" + (f" ({reason})" if reason not in ("None", "") else ""), live=True)
    return records.Seen(f"ended: {state}")


def _ended(result: str) -> records.Seen:
    try:
        with open(result, "rb") as handle:  # written by submitit, or by the task itself, in this user's own log folder
            outcome, value = pickle.load(handle)
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError):
        return records.Seen("not in the queue")
    if outcome == "success":
        return records.Seen(f"ended: {value.get('status', 'success')}" if isinstance(value, dict) else "ended: done")
    text = str(value).strip()
    if text.startswith("cancelled: "):
        return records.Seen("ended: cancelled", text[len("cancelled: ") :])
    failed = re.match(r"failed \(exit (\d+)\): (.*)", text, re.DOTALL)
    if failed:
        return records.Seen(f"ended: failed, exit {failed.group(1)}", failed.group(2).strip())
    last = text.splitlines()[-1] if text else ""  # a traceback: its last line names the error
    status = re.search(r"exit status (\d+)", last)
    return records.Seen(f"ended: failed, exit {status.group(1)}" if status else "ended: error", last[:400])


def wait(record: dict, options: Options, *, echo=print) -> bool:
    """Until no task of the array is pending or running (looking every `options.poll` seconds); says how many are in
    each state whenever that changes. True: how each item ended is MLflow's to say (the status table)."""
    said, settled, looks = "", None, 0
    while True:
        states = scheduler_states(record)
        counts: dict[str, int] = {}
        for seen in states.values():
            word = seen.state if seen.state.startswith("ended") else seen.state.split()[0].rstrip(":")
            counts[word] = counts.get(word, 0) + 1
        line = ", ".join(f"{n} {word}" for word, n in sorted(counts.items()))
        if line != said:
            echo(f"[{time.strftime('%H:%M:%S')}] {line}", flush=True)
            said = line
        # a task in the middle of a requeue can be missing from a listing: the array is over when two listings
        # agree, and a task that vanished without a word of its own stays missing for SETTLE_S first
        if not any(seen.live for seen in states.values()):
            settled = settled if settled is not None else time.monotonic()
            vanished = any(seen.state == "not in the queue" for seen in states.values())
            if time.monotonic() - settled >= (SETTLE_S if vanished else 0) and looks > 0:
                return True
            looks += 1
        else:
            settled, looks = None, 0
        time.sleep(options.poll)


class Slurm:
    """`langdec ladder --slurm`: the ladder as one job array, followed with `--status` (or `--wait`)."""

    name = "slurm"
    selector = Flag("--slurm", action="store_true", help="submit the items as one SLURM job array (submitit)")
    group = "SLURM (with --slurm)"
    Options = Options
    submit = staticmethod(submit)
    states = staticmethod(scheduler_states)
    wait = staticmethod(wait)
    describe = staticmethod(describe)

    @staticmethod
    def waits(options: Options) -> bool:
        return options.wait


SCHEDULER = Slurm()
