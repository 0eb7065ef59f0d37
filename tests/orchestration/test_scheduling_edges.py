"""Operations at the edges of scheduling (issue 34), without a cluster: a ladder edited after submission runs what was
submitted; no secret of a URL in an error body, a library's log line or a child server's output; how a SIGTERM is
told apart (a user's cancel or a preemption) from what `scontrol show job` says; the `--status` table (every
submission, an item's progress, a failure's reason and exit status); OpenMP threads set to the CPUs allotted; and a
local cluster that ends only the processes it started. The same cases on a real SLURM cluster are in
tests/orchestration/test_schedulers.py (marker `cluster`)."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from langdec.core import urls
from langdec.core.errors import EXIT_CONFIG, LangdecError

SECRET_URL = "http://u:hunter2@127.0.0.1:{port}/v1?token=SECRETTOK"


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "langdec.cli", "--quiet", *args]


def _ladder(folder: Path, name: str, runs: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(
        f"name: {name}\nprofile: smoke\nphase: phase-{name}\ntiers: [5k]\nseeds: [42]\ndata_languages: [en]\n"
        f'overrides: ["evaluation.benchmarks=[xnli]", "evaluation.max_items=4"]\nruns:\n{runs}'
    )
    return path


BASELINE_COND1 = "  - condition: baseline\n  - condition: 1\n"


# --------------------------------------------------------------------------- item 3: the ladder as submitted
@pytest.mark.slow
def test_an_item_runs_the_ladder_as_submitted_after_an_item_was_inserted_at_the_top(tmp_path, store):
    from langdec.orchestration.scheduling import item, records

    ladder = _ladder(tmp_path, "pinned", BASELINE_COND1)
    pin = records.pin(ladder)  # what `langdec ladder FILE --slurm/--ray` does at submission
    ladder.write_text(
        ladder.read_text().replace("runs:\n", "runs:\n  - condition: 2\n    langs: [zh]\n")
    )  # edited meanwhile
    assert item.load(ladder).names == ["cond2-zh-5k-s42", "baseline", "cond1-5k-s42"]
    assert item.load(ladder, pin.digest).names == ["baseline", "cond1-5k-s42"]

    proc = subprocess.Popen(
        _cli("run-item", str(ladder), "0", "--pin", pin.digest),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    said = []
    for line in proc.stdout:  # it says which item it works on before any stage starts
        said.append(line)
        if line.startswith("item 0 "):
            break
    proc.kill()  # which item it took is all this asks
    _, err = proc.communicate(timeout=120)
    print("".join(said))
    assert said and said[-1].startswith("item 0 baseline of ladder pinned-phase-pinned"), (said, err[-2000:])
    assert said[0].startswith(f"note: {ladder} changed since this ladder was submitted; running the submitted version")


def test_an_item_whose_submitted_ladder_is_gone_is_refused_with_exit_2_and_not_run(tmp_path, store):
    from langdec.orchestration.scheduling import records

    ladder = _ladder(tmp_path, "gone", BASELINE_COND1)
    pin = records.pin(ladder)
    ladder.write_text(ladder.read_text().replace("runs:\n", "runs:\n  - condition: 3\n    langs: [zh]\n"))
    records.pinned_path(pin.digest).unlink()  # submitted from a machine whose LANGDEC_HOME this node cannot see
    out = subprocess.run(_cli("run-item", str(ladder), "0", "--pin", pin.digest), capture_output=True, text=True)
    print(out.stderr)
    assert out.returncode == EXIT_CONFIG  # a scheduler does not retry it: it would fail the same way
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith(f"error: {ladder}: changed since this ladder was submitted (sha256 {pin.digest[:12]}, now ")
    assert f"submit the ladder again (langdec ladder {ladder} --slurm or --ray)" in line
    assert "item 0" not in out.stdout


def test_every_task_carries_the_ladder_as_submitted():
    from langdec.orchestration.scheduling import launch, records, slurm

    made = records.Pin(records.digest(b"name: x\n"), b"name: x\n")
    task = pickle.loads(pickle.dumps(slurm.ItemTask("/l.yaml", ["a"], 1, False, 2, 120, made)))  # as submitit sends it
    assert task.pin == made
    assert launch.command("/l.yaml", 3, pin=made.digest)[-4:] == ["/l.yaml", "3", "--pin", made.digest]


# --------------------------------------------------------------------------- item 8: secrets
def test_every_secret_of_a_url_is_scrubbed_from_text():
    url = "http://u:hun@ter2@host:8000/v1?token=SECRETTOK&v=1#key=FRAGKEY"
    assert urls.secrets(url) == ["SECRETTOK", "hun@ter2", "FRAGKEY", "ter2", "hun"]  # longest first
    echoed = "no route /v1/?token=SECRETTOKchat/completions; host 'ter2@host' at http://u:hun@ter2@host:8000/v1?token=SECRETTOK"
    assert (
        urls.scrub(echoed, url)
        == "no route /v1/?token=***chat/completions; host '***@host' at http://u:***@host:8000/v1"
    )
    # percent-encoded in the URL, decoded in what a driver or server says
    assert (
        urls.scrub("auth failed for p@ss/w and x y", "postgresql://u:p%40ss%2Fw@h/db?sslkey=x%20y")
        == "auth failed for *** and ***"
    )
    assert urls.scrub("nothing here", "http://h:80/v1") == "nothing here"


class _Echo(BaseHTTPRequestHandler):
    """A server that refuses every request and echoes the path it was asked for, as the issue's server did."""

    def _answer(self) -> None:
        body = json.dumps({"error": {"message": f"no route {self.path}", "type": "not_found"}}).encode()
        self.send_response(404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args) -> None:
        pass


@pytest.fixture()
def echo_server():
    server = HTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield SECRET_URL.format(port=server.server_address[1])
    server.shutdown()
    server.server_close()


def test_a_servers_echoed_error_body_never_shows_the_urls_token_or_password(echo_server):
    from langdec.evaluation.backends import OpenAIModel

    model = OpenAIModel(None, base_url=echo_server, model="m")  # the tokenizer is not needed to send a request
    with pytest.raises(LangdecError) as refused:
        model._call(prompt="2 + 2 =", max_tokens=1)
    message = str(refused.value)
    print(message)
    assert "HTTP 404: Error code: 404 - no route /v1/?token=***completions" in message
    assert "SECRETTOK" not in message and "hunter2" not in message


@pytest.mark.slow
def test_translate_against_a_server_that_echoes_the_url_prints_no_secret(echo_server, tmp_path, store):
    (tmp_path / "f.py").write_text("def add(a, b):\n    return a + b\n")
    out = subprocess.run(
        _cli(
            "translate",
            str(tmp_path / "f.py"),
            "--lang",
            "zh",
            "--backend",
            "openai",
            "--model",
            "m",
            "--out",
            str(tmp_path / "out.py"),
            "--base-url",
            echo_server,
        ),
        capture_output=True,
        text=True,
        env={**os.environ, "OPENAI_API_KEY": "x"},
        timeout=300,
    )
    print(out.stderr[-1000:])
    assert out.returncode == EXIT_CONFIG
    assert "HTTP 404" in out.stderr and "no route /v1/?token=***" in out.stderr
    assert "SECRETTOK" not in out.stdout + out.stderr and "hunter2" not in out.stdout + out.stderr


def test_ui_on_a_postgresql_url_with_a_raw_at_in_its_password_never_prints_a_piece_of_it(tmp_path):
    """The driver misreads `hun@ter2@127.0.0.1` and MLflow's engine retries log its error, quoting 'ter2@127.0.0.1'
    as a host, at every retry: every log line of the process is scrubbed as it is made."""
    pytest.importorskip("psycopg")
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": "postgresql://ui:hun@ter2@127.0.0.1:1/mlflow",
        "LANGDEC_HOME": str(tmp_path),
    }
    proc = subprocess.Popen(
        _cli("ui", "--no-serve"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    said, deadline = [], time.time() + 120
    try:
        for line in proc.stdout:  # the engine retries for ~100 s; three of its warnings are enough
            said.append(line)
            if sum("Operation will be retried" in s for s in said) >= 3 or time.time() > deadline:
                break
    finally:
        proc.kill()
        proc.communicate()
    text = "".join(said)
    print(text)
    assert text.count("failed to resolve host '***@127.0.0.1'") >= 3
    assert "ter2" not in text and "hun" not in text


def test_a_child_servers_output_is_scrubbed_line_by_line(capfd):
    from langdec.commands.runs import _serve_scrubbed

    url = "postgresql://ui:hun@ter2@db.lab:5432/mlflow"
    speak = (
        "import sys\n"
        "print('connecting to postgresql://ui:hun@ter2@db.lab:5432/mlflow', flush=True)\n"
        "for _ in range(8): print(\"failed to resolve host 'ter2@db.lab'\", file=sys.stderr, flush=True)\n"
        "sys.exit(3)\n"
    )
    assert _serve_scrubbed([sys.executable, "-c", speak], dict(os.environ), url) == 3
    out, err = capfd.readouterr()
    assert out == "connecting to postgresql://ui:***@db.lab:5432/mlflow\n"
    assert err == "failed to resolve host '***@db.lab'\n" * 8


# --------------------------------------------------------------------------- item 2: a cancel or a preemption
# `scontrol show job -o` at the moment of the SIGTERM, as SLURM 22.05 printed it on this machine (trimmed to the
# fields read); the task started with SLURM_RESTART_COUNT unset (0)
OBSERVED = {
    "scancel": "JobId=3 JobState=COMPLETING Reason=None Restarts=0 PreemptEligibleTime=2026-12-07T12:26:15 PreemptTime=None",
    "preempted, PreemptMode=CANCEL": "JobId=1 JobState=COMPLETING Reason=None Restarts=0 "
    "PreemptEligibleTime=2026-12-07T12:26:00 PreemptTime=2026-12-07T12:26:04",
    "preempted, PreemptMode=REQUEUE": "JobId=3 JobState=COMPLETING Reason=None Restarts=1 PreemptTime=2026-12-07T12:22:12",
    "scontrol requeue": "JobId=2 JobState=COMPLETING Reason=None Restarts=1 PreemptTime=None",
    "node taken down": "JobId=6 JobState=PENDING Reason=None Restarts=1 PreemptTime=None",
    "time limit": "JobId=2 JobState=COMPLETING Reason=TimeLimit Restarts=0 PreemptTime=None",
    "scancel --signal=TERM": "JobId=5 JobState=RUNNING Reason=None Restarts=0 PreemptTime=None",
}


@pytest.mark.parametrize(
    "case, kind",
    [
        ("scancel", "cancelled"),
        ("preempted, PreemptMode=CANCEL", "preempted"),
        ("preempted, PreemptMode=REQUEUE", "preempted"),
        ("scontrol requeue", "requeued"),
        ("node taken down", "requeued"),
        ("time limit", "time limit"),
        ("scancel --signal=TERM", "signal"),
    ],
)
def test_a_users_cancel_is_told_apart_from_a_preemption(case, kind):
    from langdec.orchestration.scheduling import slurm

    got, said = slurm.classify_stop(slurm.job_fields(OBSERVED[case]), restarts_at_start=0)
    assert got == kind, said
    # a cancel of a task that was requeued once before is still a cancel
    if case == "scancel":
        assert (
            slurm.classify_stop(slurm.job_fields(OBSERVED[case].replace("Restarts=0", "Restarts=1")), 1)[0]
            == "cancelled"
        )


def test_outside_slurm_a_sigterm_is_a_bare_signal():
    from langdec.orchestration.scheduling import slurm

    assert slurm.stop_reason({})[0] == "signal"


# --------------------------------------------------------------------------- item 6: status and exit statuses
def test_a_slurm_task_exits_with_its_items_own_status_and_says_why(tmp_path, store):
    """Under SLURM every failure used to be task exit 1: a config error (2), a bug (1) and retries used up (75) looked
    the same in sacct. The task runs as submitit runs it (its environment variables; no cluster needed to fail)."""
    from langdec.orchestration.scheduling import slurm

    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nprofile: no-such-profile\nphase: p\ntiers: [5k]\nseeds: [42]\nruns:\n  - condition: 1\n")
    folder = tmp_path / "logs"
    folder.mkdir()
    task = slurm.ItemTask(str(bad), ["cond1-5k-s42"], 0, False, 2, 120)
    (folder / "task.pkl").write_bytes(pickle.dumps(task))
    script = "import pickle, sys; pickle.load(open(sys.argv[1], 'rb'))(0)"
    env = {
        **os.environ,
        "SUBMITIT_EXECUTOR": "slurm",
        "SUBMITIT_FOLDER": str(folder),
        "SLURM_JOB_ID": "4242",
        "SLURM_PROCID": "0",
    }
    out = subprocess.run(
        [sys.executable, "-c", script, str(folder / "task.pkl")], capture_output=True, text=True, env=env, timeout=300
    )
    print(out.stderr[-1500:])
    assert out.returncode == EXIT_CONFIG, out.stderr[-2000:]
    seen = slurm.scheduler_states(
        {"job_id": "4242", "tasks": ["4242"], "results": [str(folder / "4242_0_result.pkl")]}
    )[0]
    assert seen.state == "ended: failed, exit 2" and not seen.live
    assert "unknown profile 'no-such-profile'" in seen.reason and seen.reason.endswith("(not retryable)")


def test_status_shows_every_submission_an_items_progress_and_why_it_failed(tmp_path, store, capsys):
    from mlflow.tracking import MlflowClient

    from langdec import cli
    from langdec.orchestration.scheduling import item, records
    from langdec.tracking import lease
    from langdec.tracking import runs as tracking

    ladder = _ladder(tmp_path, "seen", BASELINE_COND1)
    label = item.load(ladder).label
    client = MlflowClient()
    experiment = tracking.experiment_id(item.load(ladder).experiment)
    for stage in ("transpile", "check"):  # cond1's data and checks finished; training has not begun
        run = client.create_run(experiment, tags={"langdec.stage": stage, "run_name": "cond1-5k-s42"})
        client.set_terminated(run.info.run_id, "FINISHED")
    # a Ray driver still runs (this process), and a SLURM array submitted after it failed item 0 with a config error
    records.save(
        label,
        {
            "backend": "ray",
            "id": "ray-1",
            "address": "local",
            "items": ["baseline", "cond1-5k-s42"],
            "driver": {
                "host": lease.machine(),
                "pid": os.getpid(),
                "started": open(f"/proc/{os.getpid()}/stat").read().rsplit(")", 1)[1].split()[19],
            },
            "submitted": "2026-12-07 10:00:00",
            "outcomes": {},
        },
    )
    results = [tmp_path / "77_0_result.pkl", tmp_path / "77_1_result.pkl"]
    results[0].write_bytes(
        pickle.dumps(
            (
                "error",
                "failed (exit 2): item baseline: LangdecError: evaluation.max_items=0 must be >= 1 (not retryable)",
            )
        )
    )
    records.save(
        label,
        {
            "backend": "slurm",
            "job_id": "77",
            "tasks": ["77_0", "77_1"],
            "results": [str(p) for p in results],
            "items": ["baseline", "cond1-5k-s42"],
            "submitted": "2026-12-07 11:00:00",
        },
    )
    assert cli.main(["ladder", str(ladder), "--status"]) == 0
    out = capsys.readouterr().out
    print(out)
    assert "scheduler: slurm array 77 (2026-12-07 11:00:00); ray local (2026-12-07 10:00:00)" in out
    baseline = next(line for line in out.splitlines() if line.startswith("  0  baseline"))
    assert "slurm 77_0: ended: failed, exit 2" in baseline and f"ray local: under driver pid {os.getpid()}" in baseline
    assert "why: item baseline: LangdecError: evaluation.max_items=0 must be >= 1 (not retryable)" in out
    cond1 = next(line for line in out.splitlines() if line.startswith("  1  cond1-5k-s42"))
    assert "  started  " in cond1 and "data, checks finished" in cond1  # not "not started"


@pytest.mark.slow
def test_an_item_gets_as_many_threads_as_cpus_it_was_allotted(tmp_path):
    """SLURM items ran without OMP_NUM_THREADS: torch took every core of the machine, and items side by side spun
    against each other (7 s a step against Ray's 0.6 s). The item's process gets the CPUs SLURM allotted."""
    from langdec.orchestration.scheduling import launch

    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS") and not k.startswith("SLURM_")}
    probe = [sys.executable, "-c", "import os, torch; print(torch.get_num_threads(), os.environ['OMP_NUM_THREADS'])"]

    def threads(extra: dict[str, str], processes: int = 1) -> str:
        log = tmp_path / f"probe-{len(list(tmp_path.iterdir()))}.log"
        assert launch.Child(probe, env={**env, **extra}, log=log, processes=processes).wait().code == 0, log.read_text()
        return log.read_text().strip()

    assert threads({"SLURM_CPUS_PER_TASK": "1"}) == "1 1"  # torch's own count: every core of this machine
    assert threads({"SLURM_CPUS_ON_NODE": "4"}, processes=2).split()[1] == "2"  # two DDP ranks share four CPUs
    assert (
        threads({"SLURM_CPUS_PER_TASK": "1", "OMP_NUM_THREADS": "2"}).split()[1] == "2"
    )  # the user's own setting stands


# --------------------------------------------------------------------------- item 4: the local cluster's own processes
@pytest.mark.slow
def test_a_local_cluster_ends_only_the_processes_it_started(tmp_path):
    """Stand-ins for the daemons: a 'slurmd' the cluster spawned, a step daemon it double-forked (so no longer its
    child) and that step's job process. A bystander started from the same shell shares only SLURM_CONF."""
    from langdec.orchestration import localcluster

    conf = tmp_path / "etc" / "slurm.conf"
    shell = {**os.environ, "SLURM_CONF": str(conf)}
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], env=shell)  # `mlflow server`
    pids = tmp_path / "pids"
    forker = (
        "import os, subprocess, sys, time\n"
        "if os.fork() == 0:\n"  # double fork: the step daemon is reparented away from the daemon
        "    step = subprocess.Popen(['bash', '-c', 'exec -a \"slurmstepd: [7.batch]\" sleep 600'])\n"
        "    job = subprocess.Popen(['sleep', '600'], env={**os.environ, 'SLURMD_NODENAME': 'n1', 'SLURM_JOB_ID': '7'},\n"
        "                           start_new_session=True)\n"
        "    open(sys.argv[1], 'w').write(f'{step.pid} {job.pid}')\n"
        "    os._exit(0)\n"
        "time.sleep(600)\n"
    )
    daemon = subprocess.Popen([sys.executable, "-c", forker, str(pids)], env=shell, start_new_session=True)
    deadline = time.time() + 30
    while not (pids.exists() and pids.read_text()):
        assert time.time() < deadline
        time.sleep(0.1)
    step, job = map(int, pids.read_text().split())
    time.sleep(0.5)  # the step daemon's exec has happened
    cluster = localcluster.SlurmCluster(tmp_path, conf, ["n1"], {"n1": daemon})
    try:
        own = localcluster.own_processes(conf, [daemon.pid], ["n1"])
        assert {daemon.pid, step, job} <= own and bystander.pid not in own
        cluster.stop()
        time.sleep(0.5)
        assert bystander.poll() is None  # still serving
        for pid in (step, job):
            assert not _running(pid), pid
    finally:
        bystander.kill()
        bystander.wait()
        for pid in (step, job):
            if _running(pid):
                os.kill(pid, signal.SIGKILL)


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_squeue_that_does_not_answer_keeps_an_unfinished_task_live(tmp_path, monkeypatch):
    """A requeue or a busy controller can leave squeue without an answer for a moment: `--wait` must not take
    that for the end of a task that has written no result (it ended the preemption test's wait early)."""
    import pickle

    from langdec.orchestration.scheduling import slurm

    monkeypatch.setenv("PATH", str(tmp_path))  # no squeue to ask: the answer is missing, as when the controller is busy
    done = tmp_path / "0_result.pkl"
    done.write_bytes(pickle.dumps(("success", {"status": "done"})))
    record = {"job_id": "999", "tasks": ["999_0", "999_1"], "results": [str(done), str(tmp_path / "1_result.pkl")]}
    states = slurm.scheduler_states(record)
    assert states[0].state == "ended: done" and not states[0].live
    assert states[1].live and "squeue did not answer" in states[1].state


def _commands(folder: Path, **scripts: str) -> None:
    for name, body in scripts.items():
        (folder / name).write_text(f"#!/bin/sh\n{body}\n")
        (folder / name).chmod(0o755)


@pytest.mark.parametrize(
    "scontrol, state, live",
    [
        ('echo "JobId=999 JobName=x JobState=PENDING Reason=BeginTime Restarts=1"', "pending (BeginTime)", True),
        ('echo "JobId=999 JobState=REQUEUE_HOLD Reason=None"', "requeue_hold", True),
        ('echo "JobId=999 JobState=COMPLETED Reason=None"', "ended: completed", False),
        ('echo "slurm_load_jobs error: Invalid job id specified" >&2; exit 1', "not in the queue", False),
        ("exit 1", "unknown (squeue did not answer)", True),
    ],
)
def test_a_task_squeue_does_not_list_is_asked_of_the_controller(tmp_path, monkeypatch, scontrol, state, live):
    """Under load squeue left a task mid-requeue out of its listings while the controller still held it (the CI run
    of the preemption test ended its wait there): a task without a result that squeue does not list is looked up
    with `scontrol show job`, and only the controller's 'invalid job id' makes it gone."""
    from langdec.orchestration.scheduling import slurm

    _commands(tmp_path, squeue="exit 0", scontrol=scontrol)
    monkeypatch.setenv("PATH", str(tmp_path))
    record = {"job_id": "999", "tasks": ["999"], "results": [str(tmp_path / "0_result.pkl")]}
    (seen,) = slurm.scheduler_states(record).values()
    assert (seen.state, seen.live) == (state, live)
