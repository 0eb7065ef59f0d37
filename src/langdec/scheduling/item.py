"""One ladder item: which it is (by index or name), running it to the end, and its state as MLflow records it."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from .. import config, jobs
from ..errors import LangdecError

RESULT_ENV = "LANGDEC_ITEM_RESULT"  # a file the launcher reads: the item's outcome, also under torchrun (which exits 1)


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
                raise LangdecError(f"{self.path}: item {index} does not exist; the ladder has items 0-{len(self.items) - 1} "
                                   f"({', '.join(self.names[:6])}{', ...' if len(self.items) > 6 else ''})")
            return index, self.items[index]
        if text in self.names:
            return self.names.index(text), self.items[self.names.index(text)]
        raise LangdecError(f"{self.path}: no item {text!r}; items: {', '.join(self.names)} (or their index 0-{len(self.items) - 1})")


def load(path: str | Path) -> Ladder:
    from .. import tracking

    spec = jobs.load_ladder(path)
    profile = config.load_profile(spec.profile, spec.overrides)
    return Ladder(Path(spec.path).resolve(), spec, profile, tracking.experiment_name(profile.name, spec.phase), jobs.ladder_jobs(spec))


def run(path: str | Path, which: str | int, *, supersede: bool | None = None, progress: bool = False, echo=print) -> dict:
    """Run one item to the end (every stage, reusing what MLflow says is finished); returns what it did."""
    from .. import preemption, tracking
    from ..ladder import run_job

    preemption.install()  # a scheduler's SIGTERM/SIGUSR2 ends it retryably, training with a checkpoint first
    _die_with_parent()
    ladder = load(path)
    index, job = ladder.item(which)
    tracking.configure()
    start = time.perf_counter()
    echo(f"item {index} {job.run_name} of ladder {ladder.label} (experiment {ladder.experiment!r})", flush=True)
    outcome = run_job(ladder.profile, ladder.spec, job, ladder.experiment,
                      supersede=ladder.spec.supersede if supersede is None else supersede, progress=progress)
    return {"item": job.run_name, "index": index, "status": outcome.status, "seconds": round(time.perf_counter() - start, 1),
            "train_run": outcome.train_run, "version": outcome.version, "eval_run": outcome.eval_run}


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
    state: str  # done | running | lost | failed | preempted | not started
    train: str = ""  # the training run's status (and where it ran)
    version: str = ""
    detail: str = ""


def states(ladder: Ladder) -> list[ItemState]:
    """Each item's state as MLflow records it: its newest training and evaluation runs and its registered version."""
    from mlflow.tracking import MlflowClient

    from .. import registry, tracking

    tracking.configure()
    client = MlflowClient()
    exp = client.get_experiment_by_name(ladder.experiment)
    runs = []
    for stage in ("train", "evaluate") if exp is not None else ():
        token = None
        while True:  # tags have no IN filter: one search per stage
            page = client.search_runs([exp.experiment_id], filter_string=f"tags.`langdec.stage` = '{stage}'",
                                      order_by=["attributes.start_time DESC"], max_results=1000, page_token=token)
            runs.extend(page)
            token = page.token
            if not token:
                break
    out = []
    for index, job in enumerate(ladder.items):
        mine = [r for r in runs if _is_job(r, job)]
        train = next((r for r in mine if r.data.tags.get("langdec.stage") == "train"), None)
        evaluation = next((r for r in mine if r.data.tags.get("langdec.stage") == "evaluate"), None)
        version = registry.live_version(ladder.profile.registered_model, ladder.spec.phase, job) if job.trains else None
        state = ItemState(index, job.run_name, "not started", version=str(version.version) if version else "")
        if train is not None:
            state.train = f"{train.info.status.lower()} on {train.data.tags.get('langdec.scheduler') or train.data.tags.get('langdec.host', '?')}"
            if train.data.tags.get("langdec.resumed_from"):
                state.train += f", resumed from {train.data.tags['langdec.resumed_from']}"
        newest = [r for r in (train, evaluation) if r is not None]
        if evaluation is not None and evaluation.info.status == "FINISHED" and (not job.trains or (train and train.info.status == "FINISHED")):
            state.state = "done"
        elif any(r.info.status == "RUNNING" and tracking.alive(r) for r in newest):
            state.state = "running"
        elif any(r.info.status == "RUNNING" for r in newest):
            state.state, state.detail = "lost", "its process stopped beating; the next attempt resumes it"
        elif train is not None and train.data.tags.get("langdec.preempted") and train.info.status != "FINISHED":
            state.state, state.detail = "preempted", f"at {train.data.tags['langdec.preempted']}"
        elif newest:
            state.state = "failed" if any(r.info.status == "FAILED" for r in newest) else "running"
        out.append(state)
    return out


def _is_job(run, job: config.Job) -> bool:
    tags = run.data.tags  # both stages tag their runs with the job's name; a published adapter's evaluation is not this item's
    return tags.get("run_name") == job.run_name and tags.get("origin", "langdec") == "langdec"
