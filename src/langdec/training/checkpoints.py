"""Where a training run's checkpoints go, the last complete one, and the interrupted run of a key they resume."""

from __future__ import annotations

import os
from pathlib import Path

from langdec.core.paths import work_dir
from langdec.tracking import runs as tracking
from langdec.training.keys import TRAIN_STAGE


def checkpoint_dir(experiment: str, key: str) -> Path:
    """Where a training run's checkpoints go: LANGDEC_CHECKPOINTS when set (a folder every machine sees, so an
    item retried on another machine resumes where the first stopped), else under LANGDEC_HOME."""
    shared = os.environ.get("LANGDEC_CHECKPOINTS")
    return (Path(shared) if shared else work_dir() / "checkpoints") / experiment / key


def last_checkpoint(folder: Path) -> Path | None:
    """The newest complete checkpoint: the trainer writes trainer_state.json last, so a folder without it is one a
    kill interrupted mid-save."""
    found = (
        sorted(
            (
                p
                for p in folder.glob("checkpoint-*")
                if p.name.split("-")[1].isdigit() and (p / "trainer_state.json").exists()
            ),
            key=lambda p: int(p.name.split("-")[1]),
        )
        if folder.exists()
        else []
    )
    return found[-1] if found else None


def resumable_run(experiment: str, key: str):
    """The newest run of the key, unless it finished: the one an interrupted training resumes."""
    from mlflow.tracking import MlflowClient

    runs = MlflowClient().search_runs(
        [tracking.experiment_id(experiment)],
        filter_string=f"tags.`langdec.stage` = '{TRAIN_STAGE}' and tags.`langdec.run_key` = '{key}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0] if runs and runs[0].info.status != "FINISHED" else None
