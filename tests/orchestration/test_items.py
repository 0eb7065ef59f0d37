"""One ladder item as a scheduler runs it (`langdec run-item`), without a scheduler: its exit statuses, a
preemption signal during training (checkpoint, exit 75, resume), the failures a retry may cure, the claim of a
key across machines (heartbeats, stepping aside), and the registry settling concurrent registrations."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import types
from pathlib import Path

import pytest

from langdec.core import config, failures
from langdec.core.errors import EXIT_CONFIG, EXIT_RETRY, LangdecError, Preempted
from langdec.tracking import lease, registry
from langdec.tracking import runs as tracking

LONG = '["evaluation.benchmarks=[xnli]", "evaluation.max_items=4", "training.max_steps=300", "training.save_steps=10"]'


def _ladder(folder: Path, name: str, overrides: str = LONG) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(
        f"name: {name}\nprofile: smoke\nphase: phase-{name}\ntiers: [5k]\nseeds: [42]\ndata_languages: [en]\n"
        f"overrides: {overrides}\nruns:\n  - condition: baseline\n  - condition: 1\n"
    )
    return path


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "langdec.cli", "--quiet", *args]


# --------------------------------------------------------------------------- what a retry may cure
def test_failures_a_retry_may_cure_are_told_apart_from_the_others():
    import requests
    import sqlalchemy.exc
    import torch
    from mlflow.exceptions import MlflowException

    assert (
        failures.retry_reason(torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"))
        == "out of GPU memory"
    )
    assert failures.retry_reason(requests.exceptions.ConnectionError("Max retries exceeded")) == "the network"
    assert (
        failures.retry_reason(MlflowException("store down", error_code="TEMPORARILY_UNAVAILABLE"))
        == "the tracking server"
    )
    assert (
        failures.retry_reason(
            sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("server closed the connection"))
        )
        == "the database"
    )
    assert failures.retry_reason(Preempted("SIGUSR2 received")) == "preempted"
    try:  # a library's wrapper around a dropped connection: the cause chain is read
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except OSError as inner:
            raise RuntimeError("could not log the metric") from inner
    except RuntimeError as wrapped:
        assert failures.exit_code(wrapped) == EXIT_RETRY
    assert failures.retry_reason(LangdecError("profile smoke: unknown key training.lrr")) is None
    assert failures.exit_code(LangdecError("bad row")) == EXIT_CONFIG
    assert failures.exit_code(KeyError("a bug")) == 1


@pytest.mark.slow
def test_run_item_names_the_items_when_asked_for_one_that_is_not_there(tmp_path, store):
    ladder = _ladder(tmp_path, "names")
    out = subprocess.run(_cli("run-item", str(ladder), "5"), capture_output=True, text=True)
    assert out.returncode == EXIT_CONFIG
    assert (
        out.stderr.strip().splitlines()[-1]
        == f"error: {ladder.resolve()}: item 5 does not exist; the ladder has items 0-1 (baseline, cond1-5k-s42)"
    )
    out = subprocess.run(_cli("run-item", str(ladder), "cond9"), capture_output=True, text=True)
    assert out.returncode == EXIT_CONFIG and "items: baseline, cond1-5k-s42" in out.stderr


@pytest.mark.slow
def test_a_data_error_in_an_item_exits_2_and_a_signal_before_training_exits_75(tmp_path, store, smoke_profile):
    bad = _ladder(tmp_path, "bad", '["corpus.min_lines=100000"]')
    out = subprocess.run(_cli("run-item", str(bad), "1"), capture_output=True, text=True)
    assert out.returncode == EXIT_CONFIG and "no file survived the filters" in out.stderr

    ladder = _ladder(tmp_path, "early")
    proc = subprocess.Popen(
        _cli("run-item", str(ladder), "1"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    for line in proc.stdout:  # its first line: it is working on the item
        if line.startswith("item 1 "):
            break
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_RETRY, err[-2000:]
    assert "stopped by SIGTERM before training began" in err


@pytest.mark.slow
def test_a_preemption_signal_during_training_saves_a_checkpoint_and_the_next_attempt_resumes_there(
    tmp_path, store, smoke_profile, monkeypatch
):
    from mlflow.tracking import MlflowClient

    checkpoints = tmp_path / "shared"
    monkeypatch.setenv("LANGDEC_CHECKPOINTS", str(checkpoints))  # where every machine would see them
    ladder = _ladder(tmp_path, "preempt")
    proc = subprocess.Popen(
        _cli("run-item", str(ladder), "cond1-5k-s42"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.time() + 300
    while not list(checkpoints.glob("*/*/checkpoint-*/trainer_state.json")):
        assert time.time() < deadline and proc.poll() is None, (
            proc.stderr.read()[-2000:] if proc.poll() is not None else "no checkpoint"
        )
        time.sleep(0.2)
    proc.send_signal(signal.SIGUSR2)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_RETRY, err[-2000:]
    assert "SIGUSR2 received; training stopped at step" in err
    client = MlflowClient()
    exp = client.get_experiment_by_name("phase-preempt-smoke")
    (run,) = client.search_runs([exp.experiment_id], "tags.`langdec.stage` = 'train'")
    assert run.info.status == "FAILED"
    stopped = run.data.tags["langdec.preempted"].split()[0]
    assert (next(checkpoints.glob("*/*")) / stopped / "trainer_state.json").exists()

    again = subprocess.run(_cli("run-item", str(ladder), "1"), capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-2000:]
    result = json.loads(again.stdout.strip().splitlines()[-1])
    runs = client.search_runs([exp.experiment_id], "tags.`langdec.stage` = 'train'")
    assert len(runs) == 1, (
        [
            (r.info.run_id, r.info.status, r.data.tags.get("langdec.run_key"), r.data.tags.get("langdec.resumed_from"))
            for r in runs
        ],
        sorted(str(p) for p in checkpoints.rglob("checkpoint-*")),
        again.stderr[-3000:],
    )
    (run,) = runs
    assert (
        run.info.status == "FINISHED"
        and run.data.tags["langdec.resumed_from"] == stopped
        and int(stopped.split("-")[1]) > 0
    )
    assert result["train_run"] == run.info.run_id and result["version"] == run.data.tags["registered_version"]
    assert not any(checkpoints.glob("*/*/checkpoint-*"))  # the adapter is in MLflow: its checkpoints went


# --------------------------------------------------------------------------- one key, many machines
def _running_run(experiment: str, key: str, heartbeat: str | None, start_time: int | None = None) -> str:
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    tags = {"langdec.stage": "train", "langdec.run_key": key}
    if heartbeat:
        tags[lease.HEARTBEAT_TAG] = heartbeat
    return client.create_run(tracking.experiment_id(experiment), tags=tags, start_time=start_time).info.run_id


def test_a_run_beating_on_another_machine_is_waited_for_and_never_called_abandoned(store, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("LANGDEC_HEARTBEAT_SECONDS", "1")
    client = MlflowClient()
    alive = _running_run("claims", "k1", f"gpu-node-7 4242 {time.time():.0f}")
    stale = _running_run("claims", "k2", f"gpu-node-7 4242 {time.time() - 60:.0f}")
    gone_here = _running_run("claims", "k3", f"{lease.machine()} 999999 {time.time():.0f}")  # no such pid here

    lease._close_abandoned("claims", "train", "k1")
    assert client.get_run(alive).info.status == "RUNNING"
    lease._close_abandoned("claims", "train", "k2")
    lease._close_abandoned("claims", "train", "k3")
    assert client.get_run(stale).info.status == "FAILED" and client.get_run(gone_here).info.status == "FAILED"

    def beat_then_finish():  # the other machine keeps beating for a while, then finishes
        for _ in range(3):
            time.sleep(1)
            client.set_tag(alive, lease.HEARTBEAT_TAG, f"gpu-node-7 4242 {time.time():.0f}")
        client.set_terminated(alive, "FINISHED")

    worker = threading.Thread(target=beat_then_finish)
    start = time.monotonic()
    worker.start()
    with lease.claim("claims", "train", "k1", "cond1-5k-s42"):
        waited = time.monotonic() - start
    worker.join()
    assert waited >= 3 and client.get_run(alive).info.status == "FINISHED"
    assert tracking.find_finished("claims", "train", "k1").info.run_id == alive  # what the waiter then reuses


def test_on_this_machine_a_live_process_is_alive_however_late_its_beat_and_a_reused_pid_is_not(monkeypatch):
    monkeypatch.setenv("LANGDEC_HEARTBEAT_SECONDS", "1")
    here, now = lease.machine(), time.time()
    late = {lease.HEARTBEAT_TAG: f"{here} 1 {now - 1000:.0f}"}  # pid 1 started long before that beat
    assert lease._alive(late, now) == (here, "1")  # a loaded machine delays beats of a working process
    newer = subprocess.Popen(["sleep", "30"])
    try:  # a pid whose process started after the run's last beat belongs to another process now
        assert lease._alive({lease.HEARTBEAT_TAG: f"{here} {newer.pid} {now - 100:.0f}"}, now) is None
        assert lease._alive({lease.HEARTBEAT_TAG: f"{here} {newer.pid} {time.time() + 1:.0f}"}, time.time()) == (
            here,
            str(newer.pid),
        )
    finally:
        newer.kill()
        newer.wait()
    assert (
        lease._alive({lease.HEARTBEAT_TAG: f"gpu-node-7 4242 {now - 10:.0f}"}, now) is None
    )  # elsewhere: the beat's age


def test_a_run_closed_as_abandoned_by_another_machine_learns_who_took_over(store):
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    mine = _running_run("takeover", "k", f"gpu-node-7 4242 {time.time():.0f}")
    assert lease.rival(mine, "takeover", "train", "k") is None  # still RUNNING: nobody took over
    # the store was away long enough for gpu-node-8 to call it abandoned and start its own run of the key
    client.set_terminated(mine, "FAILED")
    successor = _running_run("takeover", "k", f"gpu-node-8 4343 {time.time():.0f}")
    assert lease.rival(mine, "takeover", "train", "k") == successor


def test_a_run_of_the_key_that_ran_while_training_waited_to_start_is_reused_not_trained_again(store, monkeypatch):
    """Training looks for a finished run of its key, prepares (seconds to minutes), then starts its run under the
    claim. Another machine's run that appeared in between and ran while this one waited is stepped aside for,
    so the caller claims again and reuses it, instead of training the same key a second time."""
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("LANGDEC_HEARTBEAT_SECONDS", "1")
    client = MlflowClient()
    other = _running_run("window", tracking.run_key("train", {}, None), f"gpu-node-7 4242 {time.time():.0f}")

    def beat_then_finish():
        for _ in range(2):
            time.sleep(1)
            client.set_tag(other, lease.HEARTBEAT_TAG, f"gpu-node-7 4242 {time.time():.0f}")
        client.set_terminated(other, "FINISHED")

    worker = threading.Thread(target=beat_then_finish)
    worker.start()
    with pytest.raises(lease.Yielded) as yielded:
        with lease.stage_run("window", "train", "cond1-5k-s42", params={}, tags={}, reuse=False, on_earlier=print):
            pass
    worker.join()
    assert yielded.value.run_id == other
    assert [r.info.run_id for r in client.search_runs([tracking.experiment_id("window")])] == [other]  # none created


def test_of_two_runs_of_one_key_started_together_the_later_steps_aside(store):
    from mlflow.tracking import MlflowClient

    now = int(time.time() * 1000)
    beat = f"gpu-node-7 4242 {time.time():.0f}"
    first = _running_run("race", "k", beat, start_time=now)
    second = _running_run("race", "k", f"gpu-node-8 4343 {time.time():.0f}", start_time=now + 5)
    lease.yield_to_earlier(first, "race", "train", "k")  # nothing earlier: it trains
    with pytest.raises(lease.Yielded) as yielded:
        lease.yield_to_earlier(second, "race", "train", "k")
    assert yielded.value.run_id == first
    assert MlflowClient().get_run(second).data.tags["langdec.yielded_to"] == first


@pytest.mark.slow
def test_a_training_run_steps_aside_midway_when_an_earlier_run_of_its_key_turns_up(store, smoke_profile, langdec_home):
    """Two machines pass the claim together and the earlier run's creation reaches the store after the later one
    looked: the later one trains until its heartbeat sees the earlier run, then stops without a checkpoint,
    waits for it and reuses its result. The earlier run is this test's process beating on a run of the key."""
    from mlflow.tracking import MlflowClient

    env = {**os.environ, "LANGDEC_HEARTBEAT_SECONDS": "1"}
    proc = subprocess.Popen(
        _cli(
            "train",
            "--condition",
            "2",
            "--lang",
            "es",
            "--set",
            "training.max_steps=400",
            "--set",
            "training.save_steps=5",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    client, deadline = MlflowClient(), time.time() + 300
    while not list(langdec_home.glob("checkpoints/*/*/checkpoint-*/trainer_state.json")):  # training is under way
        assert time.time() < deadline and proc.poll() is None, (
            proc.communicate()[1][-2000:] if proc.poll() is not None else "no checkpoint"
        )
        time.sleep(0.2)
    (late,) = client.search_runs([tracking.experiment_id("phase-3-smoke")], "tags.`langdec.stage` = 'train'")
    key = late.data.tags["langdec.run_key"]
    stop = threading.Event()
    earlier = _running_run(
        "phase-3-smoke", key, f"{lease.machine()} {os.getpid()} {time.time():.0f}", late.info.start_time - 500
    )

    def beat() -> None:  # the earlier run's machine at work
        while not stop.wait(0.3):
            client.set_tag(earlier, lease.HEARTBEAT_TAG, f"{lease.machine()} {os.getpid()} {time.time():.0f}")

    beating = threading.Thread(target=beat)
    beating.start()
    try:
        while client.get_run(late.info.run_id).info.status == "RUNNING":
            assert time.time() < deadline and proc.poll() is None, "the later run never stepped aside"
            time.sleep(0.2)
        stepped = client.get_run(late.info.run_id)
        assert stepped.info.status == "KILLED" and stepped.data.tags["langdec.yielded_to"] == earlier
        assert not list(langdec_home.glob("checkpoints/*/*/checkpoint-*"))  # its own checkpoints went with it
        history = client.get_metric_history(late.info.run_id, "loss")
        assert history and 5 <= max(m.step for m in history) < 400  # stopped midway, having trained
        time.sleep(2)
        assert proc.poll() is None  # it waits for the earlier run, which still beats
    finally:
        stop.set()
        beating.join()
    client.set_terminated(earlier, "FINISHED")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    result = json.loads(out)
    assert result["reused"] is True and result["run_id"] == earlier, result
    assert f"waiting for run {earlier}" in err


# --------------------------------------------------------------------------- the registry settles
@pytest.fixture()
def cell(store):
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    registry._ensure_model("converge")
    job = config.Job("1", None, "5k", 42)
    key = registry.version_key("phase-3", job)

    def version(run_key: str):
        run = client.create_run(tracking.experiment_id("converge"))
        client.set_terminated(run.info.run_id)
        made = client.create_model_version(
            "converge",
            source="/tmp/adapter",
            run_id=run.info.run_id,
            tags={**key, "run_name": job.run_name, "run_key": run_key},
        )
        return types.SimpleNamespace(
            version=str(made.version), run_id=made.run_id, source=made.source
        )  # versions as the REST store gives them

    return client, job, key, version


def _settle(key, job, mine, run_key, supersede=False):
    return registry._converge(
        "converge", key, mine, mine.run_id, run_key, supersede=supersede, aliases=[], job=job, phase="phase-3"
    )


def test_two_machines_registering_the_same_run_key_keep_the_lower_version(cell):
    client, job, key, version = cell
    low, high = version("K"), version("K")  # both created: each machine passed its check before the other's create
    assert _settle(key, job, low, "K") == low.version  # the lower sees nothing below it: it stays
    assert _settle(key, job, high, "K") == low.version  # the higher finds the same key below it and removes itself
    assert [str(v.version) for v in registry.live_versions("converge", key)] == [low.version]
    assert client.get_run(high.run_id).data.tags["langdec.duplicate_of"] == low.run_id


def test_a_different_adapter_registered_meanwhile_is_refused_unless_it_supersedes(cell):
    client, job, key, version = cell
    low, high = version("K1"), version("K2")
    with pytest.raises(
        LangdecError, match="was registered for phase-3 cond1-5k-s42 .* while this run trained; pass --supersede"
    ):
        _settle(key, job, high, "K2")
    assert [str(v.version) for v in registry.live_versions("converge", key)] == [low.version]
    newer = version("K3")
    assert _settle(key, job, newer, "K3", supersede=True) == newer.version  # supersede: the highest wins
    assert [str(v.version) for v in registry.live_versions("converge", key)] == [newer.version]
    assert client.get_model_version("converge", low.version).tags["superseded_by"] == newer.version


def test_registering_a_run_key_that_already_holds_the_cell_returns_that_version(cell):
    client, job, key, version = cell
    held = version("K")
    profile = config.load_profile("smoke")
    run = client.create_run(tracking.experiment_id("converge"))
    got = registry.register(
        "converge",
        run.info.run_id,
        "runs:/x/adapter",
        phase="phase-3",
        job=job,
        profile=profile,
        data_digest="d",
        check_status="passed",
        tags={},
        supersede=True,
        run_key="K",
    )
    assert got == held.version and len(registry.live_versions("converge", key)) == 1


@pytest.mark.slow
def test_concurrent_registrations_from_two_homes_leave_one_version(tmp_path, store):
    """Two processes with their own LANGDEC_HOME (so no shared lock) register the same cell at the same moment."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    runs = []
    for _ in range(2):
        run = client.create_run(tracking.experiment_id("concurrent"))
        client.set_terminated(run.info.run_id)
        runs.append(run.info.run_id)
    go = tmp_path / "go"
    script = (
        "import os, sys, time, json\n"
        "from langdec.core import config; from langdec.tracking import registry; from langdec.tracking import runs as tracking\n"
        "tracking.configure()\n"
        "while not os.path.exists(sys.argv[2]): time.sleep(0.01)\n"
        "job = config.Job('2', 'zh', '5k', 42)\n"
        "v = registry.register('together', sys.argv[1], 'runs:/x/adapter', phase='phase-3', job=job, profile=config.load_profile('smoke'),"
        " data_digest='d', check_status='passed', tags={}, supersede=False, run_key='same-key')\n"
        "print(json.dumps(v))\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, run_id, str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "LANGDEC_HOME": str(tmp_path / f"home{i}")},
        )
        for i, run_id in enumerate(runs)
    ]
    time.sleep(3)  # both are waiting at the start line
    go.touch()
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-1500:] for o in outs]
    got = {json.loads(o[0].strip().splitlines()[-1]) for o in outs}
    live = registry.live_versions("together", registry.version_key("phase-3", config.Job("2", "zh", "5k", 42)))
    assert len(live) == 1 and got == {str(live[0].version)}


# --------------------------------------------------------------------------- status and secrets
def test_status_reads_each_items_state_from_mlflow(tmp_path, store, capsys):
    from langdec import cli

    ladder = _ladder(tmp_path, "status")
    assert cli.main(["ladder", str(ladder), "--status"]) == 0
    out = capsys.readouterr().out
    assert "scheduler: no submission recorded" in out
    assert "  0  baseline      not started" in out and "0 of 2 items done" in out


def test_ray_never_carries_a_secret(monkeypatch):
    from langdec.orchestration.scheduling import ray_tasks

    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "tok-123")
    monkeypatch.setenv("LANGDEC_CO_API_KEY", "key-456")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://user:pw-789@mlflow.lab.org")
    monkeypatch.setenv("LANGDEC_CHECKPOINTS", "/shared/ckpt")
    sent = ray_tasks.environment()
    assert sent["LANGDEC_CHECKPOINTS"] == "/shared/ckpt"
    assert not {"MLFLOW_TRACKING_TOKEN", "LANGDEC_CO_API_KEY", "MLFLOW_TRACKING_URI"} & set(sent)
    assert not any(s in json.dumps(sent) for s in ("tok-123", "key-456", "pw-789"))
