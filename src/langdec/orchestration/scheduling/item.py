"""One ladder item: which it is (by index or name), running it to the end, and its state as MLflow records it."""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from langdec.core import config
from langdec.core.errors import LangdecError
from langdec.orchestration import jobs
from langdec.orchestration.scheduling.launch import RESULT_ENV


@dataclass(frozen=True)
class Ladder:
    """A ladder file with its profile, experiment and items in a fixed order (the array index is the position)."""

    path: Path
    spec: config.Ladder
    profile: config.Profile
    experiment: str
    items: list[config.Job]

    @property
    def names(self) -> list[str]:
        return [j.run_name for j in self.items]

    @property
    def label(self) -> str:
        return f"{self.spec.name}-{self.spec.phase}"

    def item(self, which: str | int) -> tuple[int, config.Job]:
        text = str(which)
        if text.isdigit():
            index = int(text)
            if index >= len(self.items):
                raise LangdecError(
                    f"{self.path}: item {index} does not exist; the ladder has items 0-{len(self.items) - 1} "
                    f"({', '.join(self.names[:6])}{', ...' if len(self.items) > 6 else ''})"
                )
            return index, self.items[index]
        if text in self.names:
            return self.names.index(text), self.items[self.names.index(text)]
        raise LangdecError(
            f"{self.path}: no item {text!r}; items: {', '.join(self.names)} (or their index 0-{len(self.items) - 1})"
        )


def load(path: str | Path, pin: str | None = None, echo=None) -> Ladder:
    """The ladder in `path`; with `pin` (the sha256 its submission recorded), the ladder as it was submitted."""
    from langdec.tracking import runs as tracking

    if pin:
        path = pinned(path, pin, echo)
    spec = jobs.load_ladder(path)
    profile = config.load_profile(spec.profile, spec.overrides)
    return Ladder(
        Path(spec.path).resolve(),
        spec,
        profile,
        tracking.experiment_name(profile.name, spec.phase),
        jobs.ladder_jobs(spec),
    )


def pinned(path: str | Path, pin: str, echo=None) -> Path:
    """The file to read for a ladder submitted with digest `pin`: the file itself while it is unchanged, else the copy
    kept at submission. An array waits in a queue for hours and people edit their ladders meanwhile; task i must run
    item i of what was submitted, never whatever sits at position i of the file now."""
    from langdec.orchestration.scheduling import records

    if not re.fullmatch(r"[0-9a-f]{64}", pin):
        raise LangdecError(f"--pin {pin!r}: expected the sha256 of the ladder file as submitted (64 hex digits)")
    file = Path(path)
    try:
        now = records.digest(file.read_bytes())
    except OSError:
        now = None
    if now == pin:
        return file
    copy = records.pinned_path(pin)
    if copy.is_file() and records.digest(copy.read_bytes()) == pin:
        if echo is not None:
            echo(
                f"note: {file} {'changed' if now else 'is gone'} since this ladder was submitted; "
                f"running the submitted version (kept at {copy})",
                flush=True,
            )
        return copy
    raise LangdecError(
        f"{file}: {'changed' if now else 'is gone'} since this ladder was submitted (sha256 {pin[:12]}"
        f"{f', now {now[:12]}' if now else ''}) and the submitted version is not at {copy}; "
        f"submit the ladder again (langdec ladder {file} --slurm or --ray) "
        "to run what the file says now"
    )


def run(
    path: str | Path,
    which: str | int,
    *,
    supersede: bool | None = None,
    progress: bool = False,
    pin: str | None = None,
    echo=print,
) -> dict:
    """Run one item to the end (every stage, reusing what MLflow says is finished); returns what it did. With `pin`,
    the item of the ladder as it was submitted (`pinned`)."""
    from langdec.orchestration.ladder import run_job
    from langdec.tracking import runs as tracking
    from langdec.training import preemption

    preemption.install()  # a scheduler's SIGTERM/SIGUSR2 ends it retryably, training with a checkpoint first
    _die_with_parent()
    ladder = load(path, pin, echo)
    index, job = ladder.item(which)
    tracking.configure()
    start = time.perf_counter()
    echo(f"item {index} {job.run_name} of ladder {ladder.label} (experiment {ladder.experiment!r})", flush=True)
    outcome = run_job(
        ladder.profile,
        ladder.spec,
        job,
        ladder.experiment,
        supersede=ladder.spec.supersede if supersede is None else supersede,
        progress=progress,
    )
    return {
        "item": job.run_name,
        "index": index,
        "status": outcome.status,
        "seconds": round(time.perf_counter() - start, 1),
        "train_run": outcome.train_run,
        "version": outcome.version,
        "eval_run": outcome.eval_run,
    }


def write_result(exit_code: int, detail: str) -> None:
    """For the launcher: the outcome of this process (rank), read back even when torchrun replaced the exit status."""
    target = os.environ.get(RESULT_ENV)
    if not target:
        return
    rank = os.environ.get("RANK", "0")
    path = Path(f"{target}.{rank}")
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"exit": exit_code, "detail": detail if exit_code == 0 else detail[:500]}))
    tmp.replace(path)


def _die_with_parent() -> None:
    """A launcher (a Ray worker, the SLURM task) that dies takes its item with it, as a lost node would: the item
    must never train on unseen after its scheduler has given it to another node."""
    launcher = os.environ.get("LANGDEC_PARENT_PID")
    if not launcher:
        return
    import signal
    import threading

    parent = os.getppid()  # the launcher, or torchrun between it and a DDP rank

    def launcher_alive() -> bool:
        try:
            os.kill(int(launcher), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return True

    def watch() -> None:
        while os.getppid() == parent and launcher_alive():
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="die-with-parent", daemon=True).start()


# --------------------------------------------------------------------------- state, from MLflow
@dataclass
class ItemState:
    index: int
    name: str
    state: str  # done | running | lost | failed | preempted | started | not started (| cancelled, from the scheduler)
    train: str = ""  # the training run's status (and where it ran)
    version: str = ""
    detail: str = ""


def states(ladder: Ladder) -> list[ItemState]:
    """Each item's state as MLflow records it: its newest training and evaluation runs and its registered version."""
    from mlflow.tracking import MlflowClient

    from langdec.tracking import lease, registry
    from langdec.tracking import runs as tracking

    tracking.configure()
    client = MlflowClient()
    exp = client.get_experiment_by_name(ladder.experiment)
    runs = []
    for stage in STAGES if exp is not None else ():
        token = None
        while True:  # tags have no IN filter: one search per stage
            page = client.search_runs(
                [exp.experiment_id],
                filter_string=f"tags.`langdec.stage` = '{stage}'",
                order_by=["attributes.start_time DESC"],
                max_results=1000,
                page_token=token,
            )
            runs.extend(page)
            token = page.token
            if not token:
                break
    out = []
    for index, job in enumerate(ladder.items):
        mine = [r for r in runs if _is_job(r, job)]
        newest_of = {
            stage: next((r for r in mine if r.data.tags.get("langdec.stage") == stage), None) for stage in STAGES
        }
        train, evaluation = newest_of["train"], newest_of["evaluate"]
        version = registry.live_version(ladder.profile.registered_model, ladder.spec.phase, job) if job.trains else None
        state = ItemState(index, job.run_name, "not started", version=str(version.version) if version else "")
        if train is not None:
            state.train = f"{train.info.status.lower()} on {train.data.tags.get('langdec.scheduler') or train.data.tags.get('langdec.host', '?')}"
            if train.data.tags.get("langdec.resumed_from"):
                state.train += f", resumed from {train.data.tags['langdec.resumed_from']}"
        newest = [r for r in newest_of.values() if r is not None]
        running = [stage for stage, r in newest_of.items() if r is not None and r.info.status == "RUNNING"]
        failed = [stage for stage, r in newest_of.items() if r is not None and r.info.status == "FAILED"]
        finished = [stage for stage, r in newest_of.items() if r is not None and r.info.status == "FINISHED"]
        if (
            evaluation is not None
            and evaluation.info.status == "FINISHED"
            and (not job.trains or (train and train.info.status == "FINISHED"))
        ):
            state.state = "done"
        elif any(newest_of[s].info.status == "RUNNING" and lease.alive(newest_of[s]) for s in running):
            state.state, state.detail = "running", _progress(finished, f"{_WORD[running[-1]]} running")
        elif running:
            state.state, state.detail = "lost", "its process stopped beating; the next attempt resumes it"
        elif train is not None and train.data.tags.get("langdec.preempted") and train.info.status != "FINISHED":
            state.state, state.detail = "preempted", f"at {train.data.tags['langdec.preempted']}"
        elif failed:
            state.state, state.detail = "failed", _progress(finished, f"{_WORD[failed[-1]]} failed")
        elif newest:  # some stages finished (data, checks) and the next has not begun: between stages, or stopped there
            state.state, state.detail = "started", _progress(finished, "")
        out.append(state)
    return out


STAGES = ("transpile", "check", "train", "evaluate")  # in the order an item runs them
_WORD = {"transpile": "data", "check": "checks", "train": "training", "evaluate": "evaluation"}


def _progress(finished: list[str], now: str) -> str:
    """`data, checks finished; training running`: how far the item got, in the order it runs its stages."""
    done = ", ".join(_WORD[s] for s in STAGES if s in finished)
    return "; ".join(part for part in (f"{done} finished" if done else "", now) if part)


def _is_job(run, job: config.Job) -> bool:
    tags = (
        run.data.tags
    )  # both stages tag their runs with the job's name; a published adapter's evaluation is not this item's
    return tags.get("run_name") == job.run_name and tags.get("origin", "langdec") == "langdec"
