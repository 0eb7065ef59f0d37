"""tracking: run keys, experiment names, stage runs that are reused by key, and the metric-logger protocol."""

from __future__ import annotations

import os
import subprocess
import sys

import mlflow
import pytest

from langdec.tracking import lease
from langdec.tracking import runs as tracking


def test_a_run_key_is_stable_and_changes_with_what_it_is_made_of():
    key = tracking.run_key("train", {"lr": 1e-4, "condition": "2"}, "d1")
    assert key == tracking.run_key("train", {"condition": "2", "lr": 1e-4}, "d1")  # order of params does not matter
    assert len(key) == 20
    assert key != tracking.run_key("train", {"lr": 2e-4, "condition": "2"}, "d1")
    assert key != tracking.run_key("train", {"lr": 1e-4, "condition": "2"}, "d2")
    assert key != tracking.run_key("evaluate", {"lr": 1e-4, "condition": "2"}, "d1")


def test_experiment_names_keep_profiles_apart():
    assert tracking.experiment_name("paper", "phase-3") == "phase-3"
    assert tracking.experiment_name("smoke", "phase-3") == "phase-3-smoke"
    assert tracking.experiment_name("paper-fixed", "phase-2") == "phase-2-paper-fixed"


def test_a_finished_stage_run_is_reused_by_its_key(store):
    tracking.configure()
    with lease.stage_run("phase-3-smoke", "probe", "first", params={"a": 1}, tags={"x": "y"}, data_digest="d") as run:
        assert not run.reused
        mlflow.log_metric("m", 1.0)
    with lease.stage_run("phase-3-smoke", "probe", "again", params={"a": 1}, tags={}, data_digest="d") as again:
        assert again.reused and again.run_id == run.run_id
    with lease.stage_run("phase-3-smoke", "probe", "other", params={"a": 2}, tags={}, data_digest="d") as other:
        assert not other.reused and other.run_id != run.run_id
    tags = mlflow.get_run(run.run_id).data.tags
    assert tags["langdec.stage"] == "probe" and tags["langdec.run_key"] == tracking.run_key("probe", {"a": 1}, "d")
    exp = mlflow.get_experiment_by_name("phase-3-smoke")
    assert exp.tags[tracking.EXPERIMENT_KIND[0]] == tracking.EXPERIMENT_KIND[1]  # opens on the run list


def test_the_tee_logger_gives_every_logger_the_same_metrics():
    class Memory:
        def __init__(self) -> None:
            self.seen: list = []

        def log(self, metrics, step=None) -> None:
            self.seen.append((metrics, step))

    a, b = Memory(), Memory()
    tracking.TeeMetricLogger([a, b]).log({"loss": 1.5}, step=3)
    assert a.seen == b.seen == [({"loss": 1.5}, 3)]


# ---------------------------------------------------------------------- hostile cases: concurrency
@pytest.mark.slow
def test_commands_started_together_on_a_fresh_store_all_succeed(tmp_path):
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'fresh.db'}",
        "LANGDEC_HOME": str(tmp_path / "home"),
    }
    script = "from langdec.tracking import runs as tracking; tracking.configure(); tracking.experiment_id('race')"
    procs = [
        subprocess.Popen([sys.executable, "-c", script], env=env, stderr=subprocess.PIPE, text=True) for _ in range(4)
    ]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    assert all(code == 0 for code, _ in results), [err[-800:] for _, err in results]
