"""The lease wraps any stage: a new stage written in a few lines against the pipeline's `Stage` protocol and the
lease's (`tracking.lease.Leased`) works under its key's claim, in a run that beats, and a finished run of its key
is reused instead of worked again; after stepping aside it reuses the run it stepped aside for."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from langdec.core import config, locks
from langdec.orchestration import pipeline
from langdec.tracking import lease
from langdec.tracking import runs as tracking
from langdec.training import stage as train

EXPERIMENT = "lease-smoke"


def _claimed(stage: str, key: str) -> bool:
    """Whether some open file holds the key's claim (a second `flock` on the lock file would have to wait)."""
    fd = os.open(locks._file(f"{EXPERIMENT}-{stage}-{key}"), os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


class Count:
    """A stage that counts a text's words, keyed by the text."""

    name = "count"

    def __init__(self, text: str) -> None:
        self.text, self.run_name, self.worked, self.result = text, "count-words", [], None

    def key(self) -> str:
        return tracking.run_key(self.name, {"text": self.text}, None)

    def reused(self, finished) -> str:
        return finished.info.run_id

    def work(self) -> str:
        self.worked.append(_claimed(self.name, self.key()))
        with lease.started_run(
            EXPERIMENT, self.name, self.run_name, self.key(), {"text": self.text}, {}, None, None, False
        ) as run:
            MlflowClient().log_metric(run.run_id, "words", len(self.text.split()))
        return run.run_id

    def wanted(self, plan: pipeline.Plan, out: pipeline.Outcome) -> bool:
        return self.name in plan.stages

    def run(self, plan: pipeline.Plan, out: pipeline.Outcome) -> None:
        self.result = lease.hold(plan.where.experiment, self)


def _plan() -> pipeline.Plan:
    where = pipeline.Where(
        config.load_profile("smoke"), config.condition("2"), config.Job("2", "es", "5k", 42), "phase-3", EXPERIMENT
    )
    return pipeline.Plan(where, ("count",), train.Options(), pipeline.Evaluate(), None, False)


def test_a_new_stage_runs_under_the_lease_through_the_protocol(store):
    first = Count("one two three")
    pipeline.run_stages((first,), _plan(), pipeline.Outcome())
    assert first.worked == [True]  # it worked, holding its key's claim
    run = MlflowClient().get_run(first.result)
    assert run.info.status == "FINISHED" and run.data.metrics["words"] == 3
    assert run.data.tags["langdec.stage"] == "count" and run.data.tags["langdec.run_key"] == first.key()
    assert run.data.tags[lease.HEARTBEAT_TAG].split()[:2] == [lease.machine(), str(os.getpid())]
    assert not _claimed("count", first.key())  # released once the work ended

    again = Count("one two three")
    pipeline.run_stages((again,), _plan(), pipeline.Outcome())
    assert again.worked == [] and again.result == first.result  # the same key: its finished run is reused

    other = Count("four five")
    pipeline.run_stages((other,), _plan(), pipeline.Outcome())
    assert other.worked == [True] and other.result != first.result  # another key, another run


class StepsAside(Count):
    """Finds, once it has started, that an earlier run of its key was at work elsewhere (and has finished since)."""

    def work(self) -> str:
        self.worked.append(_claimed(self.name, self.key()))
        client = MlflowClient()
        self.earlier = client.create_run(
            tracking.experiment_id(EXPERIMENT),
            run_name=self.run_name,
            tags={"langdec.stage": self.name, "langdec.run_key": self.key()},
        ).info.run_id
        client.set_terminated(self.earlier, "FINISHED")
        raise lease.Yielded(self.earlier)


def test_a_stage_that_steps_aside_claims_again_and_reuses_the_run_it_yielded_to(store):
    stage = StepsAside("six seven")
    pipeline.run_stages((stage,), _plan(), pipeline.Outcome())
    assert stage.worked == [True] and stage.result == stage.earlier  # claimed once, then reused, never worked twice


# ---------------------------------------------------------------------- hostile cases: concurrency
@pytest.mark.slow
def test_two_processes_training_the_same_job_share_nothing(tmp_path, smoke_profile):
    """The hostile tester's two ladders, at the size of one job: one trains, the other waits and reuses."""
    from mlflow.tracking import MlflowClient

    home = Path(os.environ["LANGDEC_HOME"])  # the shared smoke model lives there
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "LANGDEC_HOME": str(home)}
    argv = [
        sys.executable,
        "-m",
        "langdec.cli",
        "--quiet",
        "train",
        "--condition",
        "2",
        "--lang",
        "es",
        "--phase",
        "race",
    ]
    procs = [
        subprocess.Popen(argv, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-1500:] for _, err in outs]
    reused = [json.loads(out)["reused"] for out, _ in outs]
    assert sorted(reused) == [False, True]
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = client.get_experiment_by_name("race-smoke")
    train_runs = client.search_runs([exp.experiment_id], "tags.`langdec.stage` = 'train'")
    assert [r.info.status for r in train_runs] == ["FINISHED"]
    versions = client.search_model_versions("name = 'langdec-smoke-adapters'")
    assert len(versions) == 1 and versions[0].run_id == train_runs[0].info.run_id
    checkpoints = home / "checkpoints" / "race-smoke"
    assert not checkpoints.exists() or not any(checkpoints.iterdir())  # kept only while a run can resume
