"""A ladder across many machines: an Optuna study on PostgreSQL as the work queue.

`enqueue` puts every (stage, condition, lang, tier, seed) item of a ladder into the
study once, as a WAITING trial. `work` (one per GPU machine) claims the next
waiting item with Optuna's row-locked WAITING -> RUNNING transition (so no item is
claimed twice), runs it with a heartbeat, and records COMPLETE or FAIL. A worker
that dies stops beating; after the grace period any other worker marks its item
failed and Optuna's RetryFailedTrialCallback puts a copy back in the queue. The
stage runs themselves are reused by key, so a retried item redoes only what the
dead worker had not finished.

SQLite cannot lock rows across processes (workers would double-claim items), so
several workers need PostgreSQL; one worker on SQLite works for trying it out.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path

from . import config, jobs
from .errors import LangdecError

ITEM = "item"
DEFAULT_HEARTBEAT = 30
DEFAULT_GRACE = 120


def _optuna():
    try:
        import optuna
    except ImportError:
        raise LangdecError("the work queue needs Optuna and a PostgreSQL driver: pip install 'langdec[scale]'") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def storage(url: str, *, heartbeat: int = DEFAULT_HEARTBEAT, grace: int = DEFAULT_GRACE, max_retry: int = 3):
    import warnings

    optuna = _optuna()  # a clear error if it is missing, and quiet logs
    from optuna.storages import RDBStorage

    # Optuna 4.9 renamed the retry callback; accept both so the supported range stays wide.
    retry = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None) or optuna.storages.RetryFailedTrialCallback
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # heartbeats are marked experimental, yet stable since 2.x
            return RDBStorage(url, heartbeat_interval=heartbeat, grace_period=grace,
                              heartbeat_stale_trial_callback=retry(max_retry=max_retry))
    except Exception as exc:
        from .urls import scrub

        raise LangdecError(f"cannot open the queue storage {_redact(url)} ({type(exc).__name__}: {scrub(str(exc).splitlines()[0], url)[:200]}); "
                           "check the URL, that PostgreSQL is reachable and a driver is installed (pip install 'langdec[scale]')") from None


def _redact(url: str) -> str:
    """Never print a database password."""
    from .urls import without_secrets

    return without_secrets(url)


def study_name(ladder: config.Ladder) -> str:
    return f"langdec-{ladder.name}-{ladder.phase}"


def item_attrs(job: config.Job) -> dict[str, str]:
    return {ITEM: job.run_name, "stage": "evaluate" if not job.trains else "train+evaluate", "condition": job.condition,
            "lang": job.lang or "", "tier": job.tier, "seed": str(job.seed)}


def enqueue(ladder_path: str | Path, url: str) -> tuple[str, int, int]:
    """Put every item of the ladder in the queue once; returns (study, added, already there)."""
    optuna = _optuna()
    ladder = jobs.load_ladder(ladder_path)
    name = study_name(ladder)
    study = optuna.create_study(study_name=name, storage=storage(url), load_if_exists=True)
    study.set_user_attr("ladder", str(Path(ladder.path).resolve()))
    present = {t.user_attrs.get(ITEM) for t in study.get_trials(deepcopy=False)}
    added = 0
    for job in jobs.ladder_jobs(ladder):
        if job.run_name in present:
            continue
        study.enqueue_trial({}, user_attrs=item_attrs(job))
        added += 1
    return name, added, len(present)


def _claim(study) -> int | None:
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    for trial in study._storage.get_all_trials(study._study_id, deepcopy=False, states=(TrialState.WAITING,)):
        try:
            if study._storage.set_trial_state_values(trial._trial_id, state=TrialState.RUNNING):
                return trial._trial_id
        except UpdateFinishedTrialError:
            continue
    return None


class _Heartbeat:
    def __init__(self, store, trial_id: int, interval: int) -> None:
        self.store, self.trial_id, self.interval = store, trial_id, interval
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self) -> None:
        while not self.stop.wait(self.interval):
            self.store.record_heartbeat(self.trial_id)

    def __enter__(self):
        self.store.record_heartbeat(self.trial_id)  # a trial with no heartbeat is never considered stale
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()


@dataclass
class WorkerResult:
    done: list[str]
    failed: list[str]


def work(url: str, name: str, *, heartbeat: int = DEFAULT_HEARTBEAT, grace: int = DEFAULT_GRACE,
         max_items: int | None = None, progress: bool = False, echo=print) -> WorkerResult:
    """Pull and run items until the queue is empty and nothing is left running elsewhere."""
    optuna = _optuna()
    from optuna.storages import fail_stale_trials
    from optuna.trial import TrialState

    from . import tracking
    from .ladder import run_job

    store = storage(url, heartbeat=heartbeat, grace=grace)
    try:
        study = optuna.load_study(study_name=name, storage=store)
    except KeyError:
        raise LangdecError(f"no study {name!r} in {_redact(url)}; enqueue it with `langdec ladder FILE --storage URL`") from None
    ladder = jobs.load_ladder(study.user_attrs["ladder"])
    profile = config.load_profile(ladder.profile, ladder.overrides)
    jobs_by_name = {j.run_name: j for j in jobs.ladder_jobs(ladder)}  # arms and entry overrides travel by name
    tracking.configure()
    experiment = tracking.experiment_name(profile.name, ladder.phase)
    me = f"{socket.gethostname()}:{os.getpid()}"
    result = WorkerResult([], [])
    while max_items is None or len(result.done) + len(result.failed) < max_items:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # experimental-API notice, once per loop otherwise
            fail_stale_trials(study)  # a dead worker's item goes back to the queue
        trial_id = _claim(study)
        if trial_id is None:
            running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if not running:
                break
            time.sleep(max(1, heartbeat))  # items still running elsewhere may yet come back
            continue
        frozen = store.get_trial(trial_id)
        attrs = frozen.user_attrs
        job = jobs_by_name.get(attrs[ITEM]) or config.Job(attrs["condition"], attrs["lang"] or None, attrs["tier"], int(attrs["seed"]))
        store.set_trial_user_attr(trial_id, "worker", me)
        echo(f"[{me}] {attrs[ITEM]} ...")
        start = time.perf_counter()
        with _Heartbeat(store, trial_id, heartbeat):
            try:
                outcome = run_job(profile, ladder, job, experiment, supersede=ladder.supersede, progress=progress)
                store.set_trial_user_attr(trial_id, "status", outcome.status)
                store.set_trial_state_values(trial_id, TrialState.COMPLETE, values=[time.perf_counter() - start])
                result.done.append(attrs[ITEM])
                echo(f"[{me}] {attrs[ITEM]} {outcome.status} in {time.perf_counter() - start:.1f}s")
            except Exception as exc:  # recorded on the trial; deterministic failures are not retried
                store.set_trial_user_attr(trial_id, "error", f"{type(exc).__name__}: {exc}"[:2000])
                store.set_trial_user_attr(trial_id, "traceback", traceback.format_exc(limit=5)[-4000:])
                store.set_trial_state_values(trial_id, TrialState.FAIL)
                result.failed.append(attrs[ITEM])
                echo(f"[{me}] {attrs[ITEM]} FAILED: {exc}")
    return result


def status(url: str, name: str) -> dict:
    optuna = _optuna()
    try:
        study = optuna.load_study(study_name=name, storage=storage(url))
    except KeyError:
        raise LangdecError(f"no study {name!r} in {_redact(url)}") from None
    items: dict[str, dict] = {}
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        if ITEM not in t.user_attrs:
            continue
        entry = items.setdefault(t.user_attrs[ITEM], {"attempts": 0})
        entry["attempts"] += 1
        entry.update(state=t.state.name, worker=t.user_attrs.get("worker", ""), error=t.user_attrs.get("error", ""),
                     seconds=round(t.values[0], 1) if t.values else None)
    counts: dict[str, int] = {}
    for entry in items.values():
        counts[entry["state"]] = counts.get(entry["state"], 0) + 1
    return {"study": name, "items": len(items), "counts": counts, "detail": items}
