"""Many workers: a real PostgreSQL (pgserver wheel) holds the Optuna queue and the MLflow
backend store, a real `mlflow server` on loopback receives every run, worker processes
pull items until none remain, and a killed worker's item is retried elsewhere."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest

pgserver = pytest.importorskip("pgserver")
optuna = pytest.importorskip("optuna")

from langdec import corpus, localcluster, workqueue  # noqa: E402


THREE_JOBS = "  - condition: baseline\n  - condition: 1\n  - condition: 2\n    langs: [zh]\n"
TWO_JOBS = "  - condition: baseline\n  - condition: 1\n"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, smoke_profile, langdec_home):
    corpus.build_tier(smoke_profile, "5k", 42, progress=False)  # shared cache, built once before the workers race
    with localcluster.local_cluster(tmp_path_factory.mktemp("cluster")) as c:
        yield c


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "langdec.cli", "--quiet", *args]


def _runs(tracking: str, experiment: str):
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(tracking)
    exp = mlflow.get_experiment_by_name(experiment)
    return MlflowClient(tracking_uri=tracking).search_runs([exp.experiment_id], max_results=500) if exp else []


def test_three_workers_run_every_item_exactly_once(cluster):
    ladder = localcluster.write_ladder(cluster.root, "scale", "phase-s1", THREE_JOBS)
    out = subprocess.run(_cli("ladder", str(ladder), "--storage", cluster.queue),
                         capture_output=True, text=True, env=localcluster.worker_env(cluster.tracking))
    assert out.returncode == 0, out.stderr
    assert "3 items enqueued" in out.stdout
    again = subprocess.run(_cli("ladder", str(ladder), "--storage", cluster.queue),
                           capture_output=True, text=True, env=localcluster.worker_env(cluster.tracking))
    assert "0 items enqueued, 3 already there" in again.stdout  # enqueueing twice adds nothing
    study = "langdec-scale-phase-s1"
    workers = [subprocess.Popen(localcluster.worker_command(cluster.queue, study), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=localcluster.worker_env(cluster.tracking)) for _ in range(3)]
    outputs = [w.communicate(timeout=600) for w in workers]
    assert all(w.returncode == 0 for w in workers), [(o[0][-3000:], o[1][-1500:]) for o in outputs]
    done = [item for stdout, _ in outputs for item in json.loads(stdout[stdout.index("{"):])["done"]]
    assert sorted(done) == ["baseline", "cond1-5k-s42", "cond2-zh-5k-s42"]  # each item once, across all workers
    status = workqueue.status(cluster.queue, study)
    assert status["counts"] == {"COMPLETE": 3} and all(d["attempts"] == 1 for d in status["detail"].values())
    runs = _runs(cluster.tracking, "phase-s1-smoke")
    stages = {}
    for r in runs:
        stages.setdefault(r.data.tags["langdec.stage"], []).append(r.info.run_name)
    assert sorted(stages["train"]) == ["cond1-5k-s42", "cond2-zh-5k-s42"]
    assert sorted(stages["evaluate"]) == ["baseline-eval", "cond1-5k-s42-eval", "cond2-zh-5k-s42-eval"]
    assert all(r.info.status == "FINISHED" for r in runs)


def test_a_killed_workers_item_is_retried(cluster):
    ladder = localcluster.write_ladder(cluster.root, "kill", "phase-s2", TWO_JOBS)
    subprocess.run(_cli("ladder", str(ladder), "--storage", cluster.queue), check=True,
                   capture_output=True, env=localcluster.worker_env(cluster.tracking))
    study = "langdec-kill-phase-s2"
    victim = subprocess.Popen(localcluster.worker_command(cluster.queue, study), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env=localcluster.worker_env(cluster.tracking))
    deadline = time.time() + 300
    claimed = None
    while time.time() < deadline and claimed is None:
        detail = workqueue.status(cluster.queue, study)["detail"]
        claimed = next((k for k, d in detail.items() if d["state"] == "RUNNING" and d["worker"].endswith(f":{victim.pid}")), None)
        time.sleep(0.5)
    assert claimed, "the worker never claimed an item"
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    rescuer = subprocess.run(localcluster.worker_command(cluster.queue, study), capture_output=True, text=True, env=localcluster.worker_env(cluster.tracking), timeout=600)
    assert rescuer.returncode == 0, rescuer.stderr[-2000:]
    status = workqueue.status(cluster.queue, study)
    assert status["counts"] == {"COMPLETE": 2}
    assert status["detail"][claimed]["attempts"] == 2  # the killed attempt, then the retry
    assert all(d["attempts"] == 1 for k, d in status["detail"].items() if k != claimed)
    runs = _runs(cluster.tracking, "phase-s2-smoke")
    assert not [r.info.run_name for r in runs if r.info.status == "RUNNING"]  # nothing left running
    finished_train = [r.info.run_name for r in runs if r.data.tags["langdec.stage"] == "train" and r.info.status == "FINISHED"]
    assert finished_train == ["cond1-5k-s42"]


def test_passwords_are_redacted():
    assert workqueue._redact("postgresql://user:s3cret@db:5432/q") == "postgresql://user:***@db:5432/q"
