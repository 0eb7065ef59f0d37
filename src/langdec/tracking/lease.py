"""The lease on a stage key: one process at a time works on a key, and a finished run of it is reused.

The protocol (docs/scale.md, "Claim" and "Stepping aside"):
- **Reuse**: a stage whose key matches a FINISHED run takes that run's result instead of working again.
- **Claim** (`claim`): on this machine an `flock` on the key (`locks.hold`); across machines, a RUNNING run of the
  key whose process still beats is waited for, then its finished run is reused.
- **Heartbeat** (`Heartbeat`, `HEARTBEAT_TAG`): every run a lease starts carries "<machine> <pid> <time>",
  refreshed every `heartbeat_seconds()` from a daemon thread, from the moment it is created.
- **Liveness** (`alive`): on this machine the process table says whether a run's process is at work (its pid
  exists and started before the last beat); elsewhere a beat older than four intervals means gone. A RUNNING run
  whose process is gone is closed as abandoned (FAILED) by the next holder of the claim.
- **Stepping aside** (`Yielded`, `yield_to_earlier`, `rival`): two machines that pass the claim together both
  start; the later run ends KILLED (`langdec.yielded_to`) and its caller claims again, which waits for the earlier
  run and reuses it. A heartbeat can keep looking (`Watch`) for a stage that can stop midway.

`stage_run` is the lease around one tracked run (reuse, claim, a started run that beats); `hold` is the lease
around any work that knows its key before it starts (`Leased`): reuse, or the work under the claim, claimed again
after stepping aside.
"""

from __future__ import annotations

import contextlib
import functools
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from langdec.tracking.runs import TAG, code_version, experiment_id, find_finished, run_key

T = TypeVar("T")


class Leased(Protocol[T]):
    """Work the lease can wrap (`hold`): a stage that knows its run key before it starts."""

    name: str  # the stage, as its runs are tagged (langdec.stage)
    run_name: str  # who holds the claim, in what a waiting process says

    def key(self) -> str:
        """The run key a finished run must carry to be reused."""
        ...

    def reused(self, finished: Any) -> T:
        """The result of a finished run of the key (an MLflow Run)."""
        ...

    def work(self) -> T:
        """The stage's work, under the key's claim, when no finished run can be reused. Raise `Yielded` to step
        aside for an earlier run of the key: the claim is taken again, which waits for that run."""
        ...


def hold(experiment: str, leased: Leased[T]) -> T:
    """Run `leased` under its key's claim: reuse a finished run of the key, else do the work; after stepping
    aside, claim again (the claim waits for the run yielded to), then reuse what it left."""
    key = leased.key()
    while True:
        with claim(experiment, leased.name, key, leased.run_name):
            finished = find_finished(experiment, leased.name, key)
            if finished is not None:
                return leased.reused(finished)
            try:
                return leased.work()
            except Yielded:
                continue


@dataclass
class StageRun:
    run_id: str
    reused: bool
    experiment: str


@contextlib.contextmanager
def stage_run(
    experiment: str,
    stage: str,
    run_name: str,
    *,
    params: dict[str, Any],
    tags: dict[str, str],
    data_digest: str | None = None,
    reuse: bool = True,
    run_id: str | None = None,
    system_metrics: bool = False,
    on_earlier: Callable[[str], None] | None = None,
) -> Iterator[StageRun]:
    """Start (or reuse, or resume `run_id`) a tracked stage run; failure marks the run FAILED.

    Only one process at a time works on a key (`claim`): a second one waits, then reuses the
    first's finished run. `on_earlier(run_id)` is called (from the heartbeat's thread) if an earlier live run of
    the key turns up while this one works, for a stage that can stop midway and step aside."""
    key = run_key(stage, params, data_digest)
    if reuse and run_id is None:
        found = find_finished(experiment, stage, key)
        if found is not None:
            yield StageRun(found.info.run_id, True, experiment)
            return
    with claim(experiment, stage, key, run_name) as waited_for:
        if reuse and run_id is None:
            found = find_finished(experiment, stage, key)  # finished while we waited for the claim
            if found is not None:
                yield StageRun(found.info.run_id, True, experiment)
                return
        elif waited_for is not None and on_earlier is not None:
            # another machine's run of the key appeared after the caller looked for a finished one and ran while
            # this one waited: the caller, which can step aside, claims again and reuses what that run left
            raise Yielded(waited_for)
        with started_run(
            experiment, stage, run_name, key, params, tags, data_digest, run_id, system_metrics, on_earlier
        ) as run:
            yield run


@contextlib.contextmanager
def claim(experiment: str, stage: str, key: str, run_name: str) -> Iterator[str | None]:
    """The one claim of a stage key: its run, its checkpoint folder and its registered version. On this machine a
    lock (`locks.hold`); across machines, a run of the key that is RUNNING with a fresh heartbeat (`Heartbeat`)
    from another process is waited for, so two machines never train the same key at once and a run whose
    machine is alive is never taken for abandoned."""
    from langdec.core.locks import hold

    what = f"{stage} {run_name} (key {key}) in {experiment}"
    with hold(f"{experiment}-{stage}-{key}", what):
        yield _wait_while_alive_elsewhere(experiment, stage, key, what)


HEARTBEAT_TAG = f"{TAG}.heartbeat"  # "<host> <pid> <unix seconds>", refreshed while a stage run works


def heartbeat_seconds() -> float:
    import os

    return float(os.environ.get("LANGDEC_HEARTBEAT_SECONDS", "30"))


def alive(run) -> bool:
    """Whether a RUNNING run's process is still working on it (see `_alive`)."""
    return run.info.status == "RUNNING" and _alive(run.data.tags, time.time()) is not None


@functools.lru_cache(maxsize=1)
def machine() -> str:
    """This machine in a heartbeat: its host name and boot id, so two machines that share a host name (containers,
    `localhost`) are never taken for one (whose process table would then wrongly say a live run is gone)."""
    import socket

    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip().replace("-", "")[:8]
    except OSError:
        return socket.gethostname().replace(" ", "_")
    return f"{socket.gethostname().replace(' ', '_')}#{boot}"


def _process_start(pid: int) -> float | None:
    """When process `pid` of this machine started (unix seconds), from /proc; None where /proc cannot say."""
    import os

    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        boot = next(
            float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime ")
        )
    except (OSError, IndexError, StopIteration, ValueError):
        return None
    return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22 of stat: start time in clock ticks after boot


def _alive(tags: dict[str, str], now: float) -> tuple[str, str] | None:
    """(host, pid) of the process working on a RUNNING run, or None when it is gone. On this machine the process
    table says: the pid exists and started before the run's last beat (a pid reused since is another process),
    however late the beat, since a loaded machine or a slow store delays beats of a process that is alive. On
    another machine the beat says: gone when older than four beats. A run without a heartbeat (an older
    langdec's) counts as gone, as before."""
    import os

    try:
        host, pid, when = tags.get(HEARTBEAT_TAG, "").rsplit(" ", 2)
        when_s, pid_n = float(when), int(pid)
    except ValueError:
        return None
    if host == machine():
        if pid_n == os.getpid():
            return None
        try:
            os.kill(pid_n, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        started = _process_start(pid_n)
        if started is not None:
            return (host, pid) if started <= when_s + 1 else None  # beats are whole seconds
    return (host, pid) if now - when_s < 4 * heartbeat_seconds() else None


def _running(experiment: str, stage: str, key: str) -> list:
    """The RUNNING runs of a stage key, earliest first."""
    from mlflow.tracking import MlflowClient

    return MlflowClient().search_runs(
        [experiment_id(experiment)],
        filter_string=f"tags.`{TAG}.stage` = '{stage}' and tags.`{TAG}.run_key` = '{key}' and attributes.status = 'RUNNING'",
        order_by=["attributes.start_time ASC"],
    )


def _wait_while_alive_elsewhere(experiment: str, stage: str, key: str, what: str) -> str | None:
    """Wait while another process's run of the key is alive; the id of the run waited for, or None."""
    import sys

    waited_for = None
    while True:
        alive = [(r, who) for r in _running(experiment, stage, key) if (who := _alive(r.data.tags, time.time()))]
        if not alive:
            return waited_for
        if waited_for is None:
            run, (host, pid) = alive[0]
            sys.stderr.write(
                f"langdec: waiting for run {run.info.run_id} (pid {pid} on {host}), which is running {what}\n"
            )
            sys.stderr.flush()
            waited_for = run.info.run_id
        time.sleep(min(5.0, heartbeat_seconds()))


class Yielded(Exception):
    """This process's new run stepped aside for an earlier live run of the same key (`yield_to_earlier`)."""

    def __init__(self, run_id: str) -> None:
        super().__init__(run_id)
        self.run_id = run_id


def rival(run_id: str, experiment: str, stage: str, key: str) -> str | None:
    """The live run of the same stage and key that `run_id` should step aside for, or None: one that comes before
    it in the order every process sees (start time, then run id); or, once another machine closed `run_id` as
    abandoned (its beats kept from the store for four intervals), the run that took over, whichever started
    first, since that is the one the claim let through."""
    from mlflow.tracking import MlflowClient

    mine = MlflowClient().get_run(run_id)
    closed, order = mine.info.status != "RUNNING", (mine.info.start_time, run_id)
    others = sorted(
        (r for r in _running(experiment, stage, key) if r.info.run_id != run_id and alive(r)),
        key=lambda r: (r.info.start_time, r.info.run_id),
    )
    return next((r.info.run_id for r in others if closed or (r.info.start_time, r.info.run_id) < order), None)


def yield_to_earlier(run_id: str, experiment: str, stage: str, key: str) -> None:
    """Raise `Yielded` when another process started a run of the same stage and key just before this one and is
    alive: the claim's wait cannot see a run that does not exist yet, so two machines can pass it together. The
    later one steps aside: its run ends KILLED, tagged with the one it yielded to. A start time is taken by the
    client before its run reaches the store, so the later run may look before the earlier one has landed and see
    nothing; the heartbeat of a training run keeps looking (`Heartbeat(watch=...)`) and stops it then."""
    earlier = rival(run_id, experiment, stage, key)
    if earlier is not None:
        mark_yielded(run_id, earlier)
        raise Yielded(earlier)


def mark_yielded(run_id: str, earlier: str) -> None:
    from mlflow.tracking import MlflowClient

    MlflowClient().set_tag(run_id, f"{TAG}.yielded_to", earlier)


def placement_tags() -> dict[str, str]:
    """Where this process runs, as the scheduler placed it: the host, the GPUs it may use, the scheduler's job."""
    import os
    import socket

    env = os.environ
    tags = {f"{TAG}.host": socket.gethostname()}
    if "CUDA_VISIBLE_DEVICES" in env:
        tags[f"{TAG}.gpus"] = env["CUDA_VISIBLE_DEVICES"] or "none"
    if env.get("SLURM_JOB_ID"):
        job = (
            f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
            if env.get("SLURM_ARRAY_JOB_ID")
            else env["SLURM_JOB_ID"]
        )
        tags[f"{TAG}.scheduler"] = (
            f"slurm job {job} on {env.get('SLURMD_NODENAME', '?')} (restart {env.get('SLURM_RESTART_COUNT', '0')})"
        )
    elif env.get("LANGDEC_RAY_PLACEMENT"):
        tags[f"{TAG}.scheduler"] = env["LANGDEC_RAY_PLACEMENT"]
    return tags


def _beat_value() -> str:
    import os

    return f"{machine()} {os.getpid()} {time.time():.0f}"


@dataclass(frozen=True)
class Watch:
    """What a heartbeat also looks for at each beat: a live run of its own stage and key to step aside for
    (`rival`: two machines that passed the claim together, or one that took over), reported to `on_earlier`."""

    experiment: str
    stage: str
    key: str
    on_earlier: Callable[[str], None]


class Heartbeat:
    """Refreshes a run's heartbeat tag every `heartbeat_seconds()` from a daemon thread while its stage works."""

    def __init__(self, run_id: str, watch: Watch | None = None) -> None:
        import threading

        self.run_id, self.watch = run_id, watch
        self._stop = threading.Event()
        self._beat()
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat-{run_id[:8]}", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        from mlflow.tracking import MlflowClient

        MlflowClient().set_tag(self.run_id, HEARTBEAT_TAG, _beat_value())

    def _look(self) -> None:
        w = self.watch
        if w is None:
            return
        other = rival(self.run_id, w.experiment, w.stage, w.key)
        if other is not None:
            self.watch = None  # said once; the stage stops at its next step
            w.on_earlier(other)

    def _loop(self) -> None:
        while not self._stop.wait(heartbeat_seconds()):
            try:
                self._beat()
                self._look()
            except Exception:  # the store is away for a moment: the next beat says it again
                pass

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


@contextlib.contextmanager
def started_run(
    experiment: str,
    stage: str,
    run_name: str,
    key: str,
    params: dict[str, Any],
    tags: dict[str, str],
    data_digest: str | None,
    run_id: str | None,
    system_metrics: bool,
    on_earlier: Callable[[str], None] | None = None,
) -> Iterator[StageRun]:
    """A new (or resumed: `run_id`) MLflow run of the key, beating from its creation; the caller holds the claim.
    RUNNING runs of the key whose process is gone are closed first; `Yielded` in the block ends the run KILLED."""
    import mlflow

    mlflow.set_experiment(experiment_id=experiment_id(experiment))
    if run_id is None:
        _close_abandoned(experiment, stage, key)
    nested = mlflow.active_run() is not None
    # born beating: another machine that looks between this run's creation and its first beat must see it alive,
    # neither taking it for abandoned nor passing it by when deciding who steps aside
    all_tags = {
        f"{TAG}.stage": stage,
        f"{TAG}.run_key": key,
        f"{TAG}.code_version": code_version(),
        **tags,
        HEARTBEAT_TAG: _beat_value(),
    }
    if data_digest:
        all_tags[f"{TAG}.data_digest"] = data_digest
    with mlflow.start_run(
        run_id=run_id,
        run_name=None if run_id else run_name,
        nested=nested,
        tags=all_tags,
        log_system_metrics=system_metrics or None,
    ) as run:
        if run_id is None:
            mlflow.log_params({k: _param(v) for k, v in params.items()})
        mlflow.set_tags(placement_tags())  # a resumed run says where its latest attempt ran
        beat = Heartbeat(run.info.run_id, Watch(experiment, stage, key, on_earlier) if on_earlier else None)
        try:
            yield StageRun(run.info.run_id, False, experiment)
        except Yielded:
            beat.stop()
            mlflow.end_run("KILLED")  # it did no work: not a failure to look into
            raise
        finally:
            beat.stop()


def _close_abandoned(experiment: str, stage: str, key: str) -> None:
    """A run of the same stage and key still RUNNING belongs to a process that died (SIGKILL, a lost
    machine): the caller holds the key's claim, which a live process would still hold. Mark it FAILED
    so nothing is left running, and say why."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    for run in _running(experiment, stage, key):
        if alive(run):  # its process still beats: the claim's wait let it through only because it is that process
            continue
        client.set_tag(
            run.info.run_id, f"{TAG}.abandoned", "a later attempt of the same stage started; this one never finished"
        )
        client.set_terminated(run.info.run_id, "FAILED")


def _param(value: Any) -> str:
    text = json.dumps(value, sort_keys=True) if isinstance(value, (dict, list, tuple)) else str(value)
    return text[:6000]
