"""`langdec cluster up|status|down`: one command starts what docs/scale.md's examples need on this machine (a real
PostgreSQL with a real `mlflow server`; with marker `cluster`, a real SLURM and Ray cluster), prints the exports,
and `down` stops what it started and nothing else."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from langdec.orchestration import localcluster

pytest.importorskip("pgserver")


def _cli(*args: str, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    out = subprocess.run(
        [sys.executable, "-m", "langdec.cli", *args], capture_output=True, text=True, env=env, timeout=timeout
    )
    print(f"$ langdec {' '.join(args)}\n{out.stdout}{out.stderr}(exit {out.returncode})")  # the transcript `-s` shows
    return out


def _exports(text: str) -> dict[str, str]:
    found = {}
    for line in text.splitlines():
        if line.startswith("export "):
            name, _, value = line.removeprefix("export ").partition("=")
            found[name] = shlex.split(value)[0]
    return found


@pytest.fixture()
def cluster_dir(tmp_path, langdec_home):
    """A cluster folder and a shell environment with no cluster exported; whatever a test leaves up is stopped."""
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "SLURM_CONF", "RAY_ADDRESS")}
    env.update(MLFLOW_DISABLE_TELEMETRY="true", LANGDEC_HOME=str(langdec_home))
    root = tmp_path / "cluster"
    yield root, env
    if localcluster.holder(root) is not None:
        _cli("cluster", "down", "--dir", str(root), env=env)


@pytest.mark.slow
def test_up_serves_a_tracking_store_is_not_doubled_and_down_stops_only_its_own(cluster_dir, smoke_profile):
    root, env = cluster_dir
    up = _cli("cluster", "up", "--no-slurm", "--no-ray", "--dir", str(root), env=env)
    assert up.returncode == 0, up.stderr
    exports = _exports((root / "env.sh").read_text())
    assert _exports(up.stdout) == exports  # what it printed is what the file says
    assert set(exports) == {"LANGDEC_HOME", "MLFLOW_TRACKING_URI", "LANGDEC_SWEEP_STORAGE"}
    sourced = subprocess.run(
        ["bash", "-c", f'source {shlex.quote(str(root / "env.sh"))} && printf %s "$MLFLOW_TRACKING_URI"'],
        capture_output=True,
        text=True,
        env=env,
    )
    assert sourced.stdout == exports["MLFLOW_TRACKING_URI"] and sourced.stdout.startswith("http://127.0.0.1:")
    state = json.loads((root / "cluster.json").read_text())
    ((server, server_started),) = state["components"]["mlflow server"]["pids"]
    ((postmaster, postmaster_started),) = state["components"]["postgresql"]["pids"]

    # a real langdec command through the exports: an evaluation run lands in the server's store, its artifacts in
    # the cluster's folder
    shell = {**env, **exports}
    evaluated = _cli(
        "--quiet",
        "evaluate",
        "--condition",
        "baseline",
        "--phase",
        "cluster-probe",
        "--benchmarks",
        "xnli",
        "--data-languages",
        "en",
        "--set",
        "evaluation.max_items=4",
        env=shell,
    )
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    run_id = json.loads(evaluated.stdout[evaluated.stdout.index("{") :])["run_id"]
    from mlflow.tracking import MlflowClient

    run = MlflowClient(tracking_uri=exports["MLFLOW_TRACKING_URI"]).get_run(run_id)
    assert (run.info.status, run.data.tags.get("langdec.stage")) == ("FINISHED", "evaluate")
    assert [p for p in (root / "stack" / "artifacts").rglob("*") if p.is_file()]

    again = _cli("cluster", "up", "--no-slurm", "--no-ray", "--dir", str(root), env=env)
    assert again.returncode == 0 and f"already up in {root}" in again.stdout
    assert _exports(again.stdout) == exports
    assert json.loads((root / "cluster.json").read_text())["holder"] == state["holder"]  # no second holder
    status = _cli("cluster", "status", "--dir", str(root), env=env)
    assert status.returncode == 0 and f"up in {root}" in status.stdout and _exports(status.stdout) == exports

    # a process started from the shell that sourced env.sh has every export in its environment: not the cluster's
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], env=shell)
    try:
        down = _cli("cluster", "down", "--dir", str(root), env=env)
        assert down.returncode == 0 and "stopped: PostgreSQL, mlflow server" in down.stdout, down.stderr
        assert not localcluster.alive(server, server_started) and not localcluster.alive(postmaster, postmaster_started)
        with pytest.raises(OSError):
            urllib.request.urlopen(f"{exports['MLFLOW_TRACKING_URI']}/health", timeout=5)
        assert bystander.poll() is None
        assert not (root / "env.sh").exists() and not (root / "cluster.json").exists()
        twice = _cli("cluster", "down", "--dir", str(root), env=env)
        assert twice.returncode == 0 and f"no local cluster is running in {root}" in twice.stdout
        assert _cli("cluster", "status", "--dir", str(root), env=env).returncode == 3
    finally:
        bystander.kill()
        bystander.wait()


def test_down_of_a_holder_that_is_gone_removes_its_record_and_kills_nothing(cluster_dir):
    """A holder killed outright leaves its record: `down` says so, removes it, and leaves the processes it names
    alone (it cannot prove they are still the cluster's once no holder answers for them)."""
    root, env = cluster_dir
    root.mkdir()
    gone = subprocess.Popen(["true"])
    gone.wait()
    survivor = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        (root / localcluster.HOLDER).write_text(json.dumps({"pid": gone.pid, "started": "1"}))  # nobody holds its lock
        record = {
            "holder": {"pid": gone.pid, "started": "1"},
            "dir": str(root),
            "since": "-",
            "exports": {},
            "components": {
                "mlflow server": {
                    "url": "-",
                    "log": "-",
                    "pids": [[survivor.pid, localcluster.process_start(survivor.pid)]],
                }
            },
        }
        (root / localcluster.STATE).write_text(json.dumps(record))
        (root / localcluster.EXPORTS).write_text("export MLFLOW_TRACKING_URI=http://127.0.0.1:1\n")
        assert _cli("cluster", "status", "--dir", str(root), env=env).returncode == 3
        down = _cli("cluster", "down", "--dir", str(root), env=env)
        assert down.returncode == 0
        assert f"no local cluster is running in {root}; removed the record its holder left" in down.stdout
        assert f"left alone: mlflow server pid {survivor.pid}" in down.stdout
        assert survivor.poll() is None
        assert not (root / localcluster.STATE).exists() and not (root / localcluster.EXPORTS).exists()
    finally:
        survivor.kill()
        survivor.wait()


def test_up_refuses_impossible_sizes_in_one_line(cluster_dir):
    root, env = cluster_dir
    out = _cli("cluster", "up", "--no-slurm", "--no-ray", "--nodes", "0", "--dir", str(root), env=env)
    assert (
        out.returncode == 2
        and out.stderr.strip() == "error: --nodes must be >= 1, --gpus-per-node >= 0 and --timeout > 0"
    )
    assert localcluster.holder(root) is None


def _slurm_daemons(conf: Path) -> list[int]:
    """slurmctld and slurmd processes started with this conf (`-f CONF`)."""
    found = []
    for pid_dir in Path("/proc").iterdir():
        try:
            if pid_dir.name.isdigit() and str(conf).encode() in (pid_dir / "cmdline").read_bytes():
                found.append(int(pid_dir.name))
        except OSError:
            continue
    return found


def _job_processes(job: str) -> list[int]:
    found = []
    for pid_dir in Path("/proc").iterdir():
        try:
            if pid_dir.name.isdigit() and f"SLURM_JOB_ID={job}".encode() in (pid_dir / "environ").read_bytes().split(
                b"\0"
            ):
                found.append(int(pid_dir.name))
        except OSError:
            continue
    return found


@pytest.mark.cluster
def test_up_with_slurm_and_ray_gives_idle_nodes_and_down_stops_their_daemons_and_jobs(cluster_dir):
    why = localcluster.slurm_missing()
    if why:
        pytest.skip(why)
    pytest.importorskip("ray")
    root, env = cluster_dir
    up = _cli("cluster", "up", "--slurm", "--ray", "--dir", str(root), env=env)
    assert up.returncode == 0, up.stderr
    exports = _exports(up.stdout)
    shell = {**env, **exports}
    conf = Path(exports["SLURM_CONF"])
    nodes = subprocess.run(
        ["sinfo", "-h", "-o", "%T %D"], capture_output=True, text=True, env=shell, timeout=60
    ).stdout.split()
    assert nodes == ["idle", "2"]
    probe = "import json, ray; ray.init(logging_level='ERROR'); print(json.dumps(ray.cluster_resources()))"
    resources = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=shell, timeout=180)
    assert (
        json.loads(resources.stdout.strip().splitlines()[-1])["GPU"] == 4
    )  # RAY_ADDRESS reaches the cluster's two nodes
    job = subprocess.run(
        ["sbatch", "--parsable", "-o", "/dev/null", "--wrap", "sleep 600"],
        capture_output=True,
        text=True,
        env=shell,
        timeout=60,
    ).stdout.strip()
    deadline = time.time() + 60
    while not _job_processes(job):
        assert time.time() < deadline, f"job {job} did not start"
        time.sleep(0.5)
    ray_pids = json.loads((root / "cluster.json").read_text())["components"]["ray"]["pids"]
    assert _slurm_daemons(conf) and ray_pids

    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], env=shell)
    try:
        down = _cli("cluster", "down", "--dir", str(root), env=env)
        assert down.returncode == 0 and "stopped: PostgreSQL, mlflow server, SLURM, Ray" in down.stdout, down.stderr
        assert _slurm_daemons(conf) == [] and _job_processes(job) == []
        assert not [pid for pid, started in ray_pids if localcluster.alive(pid, started)]
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()
