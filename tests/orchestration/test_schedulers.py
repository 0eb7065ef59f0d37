"""A ladder on real schedulers: a SLURM cluster from Debian's packages (slurmctld and two slurmd nodes on this
machine, two fake GPUs each through gres.conf) and a Ray cluster (`ray.cluster_utils.Cluster`, a head and two
nodes with two GPUs each), both with a real `mlflow server` on PostgreSQL. Every item is a real smoke job
(transpile, checks, training, evaluation, registration) run through `langdec run-item` by the scheduler.

What the issue asks, on both clusters: (a) a 6-item ladder across both nodes, a distinct GPU per concurrent task,
one live version per cell; (b) a node killed during training: the item resumes from its checkpoint elsewhere;
(c, SLURM) USR2 preemption: checkpoint, requeue, resume; (d) the ladder submitted again: everything reused,
registry unchanged; (f) a store outage is retried and completes, a data error is not retried. (e), the same
item twice at once on two LANGDEC_HOMEs, needs no scheduler and is at the end.

These run in their own CI step (`make test-clusters`): marker `cluster`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from langdec.data import corpus
from langdec.orchestration import localcluster

pytestmark = pytest.mark.cluster

pytest.importorskip("pgserver")

SIX = localcluster.SIX_ITEMS
QUICK = ["evaluation.benchmarks=[xnli]", "evaluation.max_items=4"]
# long enough to act while it trains (300 steps of ~0.1 s here), with a checkpoint every 10 steps
LONG = [*QUICK, "training.max_steps=300", "training.save_steps=10"]
HEARTBEAT = "2"


@pytest.fixture(scope="module")
def stack(tmp_path_factory, smoke_profile, langdec_home):
    corpus.build_tier(smoke_profile, "5k", 42, progress=False)  # the shared cache, built once before the tasks race
    with localcluster.local_cluster(tmp_path_factory.mktemp("stack")) as cluster:
        yield cluster


def _client(stack):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=stack.tracking, registry_uri=stack.tracking)


def train_runs(stack, phase: str):
    client = _client(stack)
    exp = client.get_experiment_by_name(f"{phase}-smoke")
    return client.search_runs([exp.experiment_id], "tags.`langdec.stage` = 'train'") if exp else []


def live_versions(stack, phase: str) -> dict[str, list[str]]:
    """cell (run name) -> its live registered versions."""
    out: dict[str, list[str]] = {}
    for v in _client(stack).search_model_versions(f"name = 'langdec-smoke-adapters' and tags.phase = '{phase}'"):
        if v.tags.get("superseded_by") is None:
            out.setdefault(v.tags["run_name"], []).append(str(v.version))
    return out


def registry_snapshot(stack, phase: str) -> list[tuple]:
    versions = _client(stack).search_model_versions(f"name = 'langdec-smoke-adapters' and tags.phase = '{phase}'")
    return sorted((int(v.version), v.run_id, v.tags.get("superseded_by"), v.tags.get("run_key")) for v in versions)


def wait_for_checkpoint(root: Path, phase: str, timeout: float = 240) -> Path:
    """The shared checkpoint folder's first complete checkpoint of the phase (training is under way)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = [p for p in (root / f"{phase}-smoke").glob("*/checkpoint-*") if (p / "trainer_state.json").exists()]
        if found:
            return found[0]
        time.sleep(0.5)
    raise AssertionError(f"no checkpoint of {phase} within {timeout}s")


# --------------------------------------------------------------------------- the two schedulers
class Slurm:
    name = "slurm"

    def __init__(self, cluster: localcluster.SlurmCluster, stack, checkpoints: Path) -> None:
        self.cluster, self.stack, self.checkpoints = cluster, stack, checkpoints

    def env(self, **extra: str) -> dict[str, str]:
        return localcluster.client_env(
            self.stack.tracking,
            LANGDEC_CHECKPOINTS=str(self.checkpoints),
            LANGDEC_HEARTBEAT_SECONDS=HEARTBEAT,
            **self.cluster.env,
            **extra,
        )

    def command(self, ladder: Path, *extra: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "langdec.cli",
            "--quiet",
            "ladder",
            str(ladder),
            "--slurm",
            "--time",
            "30",
            "--signal-delay",
            "60",
            "--wait",
            "--poll",
            "2",
            *extra,
        ]

    def node_of(self, run) -> str:
        return re.search(r" on (\S+) ", run.data.tags["langdec.scheduler"]).group(1)

    def lose_node(self, run) -> str:
        node = self.node_of(run)
        job = re.search(r"slurm job (\S+) ", run.data.tags["langdec.scheduler"]).group(1)
        assert self.cluster.kill_node(node)
        self.release_when_requeued(job)
        return node

    def release_when_requeued(self, job: str, timeout: float = 120) -> None:
        """SLURM holds a requeued job for about two minutes (BeginTime); the test lets it start at once."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            state = self.cluster.run("squeue", "-h", "-j", job, "-o", "%T|%r", check=False).strip()
            if state.startswith("PENDING"):
                self.cluster.run("scontrol", "update", f"jobid={job}", "StartTime=now", check=False)
                return
            time.sleep(1)
        raise AssertionError(f"job {job} was not requeued within {timeout}s")

    def restore(self) -> None:
        for node in self.cluster.nodes:
            if node not in self.cluster.processes:
                self.cluster.resume_node(node)

    def log_of(self, label: str, index: int) -> str:
        from langdec.orchestration.scheduling import records

        record = records.load(label)
        if record is None:  # not submitted yet
            return ""
        out = record["logs"][index]
        return "".join(Path(p).read_text(errors="replace") for p in (out, out[:-4] + ".err") if Path(p).exists())


class Ray:
    name = "ray"

    def __init__(self, cluster: localcluster.RayCluster, stack, checkpoints: Path) -> None:
        self.cluster, self.stack, self.checkpoints = cluster, stack, checkpoints

    def env(self, **extra: str) -> dict[str, str]:
        return localcluster.client_env(
            self.stack.tracking, LANGDEC_CHECKPOINTS=str(self.checkpoints), LANGDEC_HEARTBEAT_SECONDS=HEARTBEAT, **extra
        )

    def command(self, ladder: Path, *extra: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "langdec.cli",
            "--quiet",
            "ladder",
            str(ladder),
            "--ray",
            self.cluster.address,
            *extra,
        ]

    def node_of(self, run) -> str:
        return re.search(r"ray node (\S+) ", run.data.tags["langdec.scheduler"]).group(1)

    def lose_node(self, run) -> str:
        node = self.node_of(run)
        self.cluster.kill_node(self.cluster.node_of(node))
        self.cluster.add_node(2)  # the cluster keeps two GPU nodes for the tests after this one
        return node

    def restore(self) -> None:
        pass

    def log_of(self, label: str, index: int) -> str:
        from langdec.core.paths import work_dir

        return "".join(p.read_text(errors="replace") for p in (work_dir() / "ray" / label).glob(f"{index}-*.log"))


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    why = localcluster.slurm_missing()
    if why:
        pytest.skip(why)
    with localcluster.slurm_cluster(tmp_path_factory.mktemp("slurm")) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def ray_cluster():
    pytest.importorskip("ray")
    with localcluster.ray_cluster(nodes=2, gpus_per_node=2) as cluster:
        yield cluster


@pytest.fixture(params=["slurm", "ray"])
def scheduler(request, stack, tmp_path_factory):
    checkpoints = tmp_path_factory.mktemp("shared-checkpoints")
    if request.param == "slurm":
        made = Slurm(request.getfixturevalue("slurm_cluster"), stack, checkpoints)
    else:
        made = Ray(request.getfixturevalue("ray_cluster"), stack, checkpoints)
    yield made
    made.restore()


def shown(cmd: list[str]) -> str:
    return "$ langdec " + " ".join(cmd[cmd.index("--quiet") + 1 :])


def run(cmd: list[str], env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess:
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    print(f"{shown(cmd)}\n{out.stdout[-4000:]}{out.stderr[-2000:]}(exit {out.returncode})")  # the transcript `-s` shows
    return out


def finish(driver: subprocess.Popen, cmd: list[str], timeout: float = 900) -> tuple[str, str]:
    stdout, stderr = driver.communicate(timeout=timeout)
    print(f"{shown(cmd)}\n{stdout[-4000:]}{stderr[-2000:]}(exit {driver.returncode})")
    return stdout, stderr


# --------------------------------------------------------------------------- (a) and (d)
def test_six_items_spread_over_two_nodes_then_resubmitted_are_all_reused(scheduler, tmp_path):
    name = f"six{scheduler.name}"
    ladder = localcluster.write_ladder(tmp_path, name, SIX, QUICK)
    phase = f"phase-{name}"
    out = run(scheduler.command(ladder), scheduler.env())
    assert out.returncode == 0, out.stderr[-3000:]
    assert "6 of 6 items done" in out.stdout

    runs = train_runs(scheduler.stack, phase)
    assert sorted(r.data.tags["run_name"] for r in runs) == [
        "cond1-5k-s42",
        "cond2-es-5k-s42",
        "cond2-ur-5k-s42",
        "cond2-zh-5k-s42",
        "cond3-zh-5k-s42",
    ]
    assert all(r.info.status == "FINISHED" for r in runs)
    placed = [(scheduler.node_of(r), r.data.tags["langdec.gpus"], r.info.start_time, r.info.end_time) for r in runs]
    t0 = min(p[2] for p in placed)
    print(
        "# training runs: item, node, CUDA_VISIBLE_DEVICES, seconds from the first start to start and end\n"
        + "\n".join(
            f"{r.data.tags['run_name']:<16} {node:<14} {gpus:<3} {(start - t0) / 1000:6.1f} {(end - t0) / 1000:6.1f}"
            for r, (node, gpus, start, end) in sorted(zip(runs, placed), key=lambda x: x[1][2])
        )
    )
    assert len({node for node, *_ in placed}) == 2, placed  # both nodes worked
    overlapping = [(a, b) for i, a in enumerate(placed) for b in placed[i + 1 :] if a[2] < b[3] and b[2] < a[3]]
    assert overlapping, placed  # tasks really ran side by side
    for a, b in overlapping:  # and never on the same GPU of the same node
        assert (a[0], a[1]) != (b[0], b[1]), (a, b)
    assert all(gpus in ("0", "1") for _, gpus, *_ in placed)
    versions = live_versions(scheduler.stack, phase)
    assert sorted(versions) == sorted(r.data.tags["run_name"] for r in runs) and all(
        len(v) == 1 for v in versions.values()
    )
    for index in range(6):  # each item's own log
        assert f"item {index} " in scheduler.log_of(f"{name}-{phase}", index)

    before = registry_snapshot(scheduler.stack, phase)
    print(f"# live versions per cell: {versions}")
    again = run(scheduler.command(ladder), scheduler.env())
    assert again.returncode == 0, again.stderr[-3000:]
    status = subprocess.run(
        [sys.executable, "-m", "langdec.cli", "ladder", str(ladder), "--status"],
        capture_output=True,
        text=True,
        env=scheduler.env(),
    )
    print(f"$ langdec ladder {ladder} --status\n{status.stdout}")
    assert status.stdout.count("ended: reused") == 6, status.stdout  # every item found all its stages in MLflow
    assert registry_snapshot(scheduler.stack, phase) == before
    assert len(train_runs(scheduler.stack, phase)) == 5


# --------------------------------------------------------------------------- (b)
def test_a_node_lost_during_training_resumes_elsewhere_from_its_checkpoint(scheduler, tmp_path):
    name = f"lost{scheduler.name}"
    ladder = localcluster.write_ladder(tmp_path, name, "  - condition: 1\n", LONG, "[en]")
    phase = f"phase-{name}"
    cmd = scheduler.command(ladder)
    driver = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=scheduler.env())
    checkpoint = wait_for_checkpoint(scheduler.checkpoints, phase)
    (training,) = [r for r in train_runs(scheduler.stack, phase) if r.info.status == "RUNNING"]
    lost = scheduler.lose_node(training)
    print(f"# node {lost} lost while {training.data.tags['langdec.scheduler']} trained ({checkpoint.name} saved)")
    stdout, stderr = finish(driver, cmd)
    assert driver.returncode == 0, stderr[-3000:]
    (finished,) = [r for r in train_runs(scheduler.stack, phase) if r.info.status == "FINISHED"]
    assert finished.info.run_id == training.info.run_id  # the same run, resumed
    step = int(finished.data.tags["langdec.resumed_from"].split("-")[1])
    assert step >= int(checkpoint.name.split("-")[1]) > 0
    assert scheduler.node_of(finished) != lost
    assert list(live_versions(scheduler.stack, phase).values()) == [[finished.data.tags["registered_version"]]]


# --------------------------------------------------------------------------- (c)
def _slurm_item_past_its_first_checkpoint(stack, slurm_cluster, tmp_path_factory, tmp_path, name: str):
    """A one-item SLURM ladder (condition 1, long training) submitted and running: its scheduler, ladder file,
    driver command and process, and the item's task id, once the training has saved a checkpoint."""
    from langdec.orchestration.scheduling import records

    scheduler = Slurm(slurm_cluster, stack, tmp_path_factory.mktemp("shared-checkpoints"))
    ladder = localcluster.write_ladder(tmp_path, name, "  - condition: 1\n", LONG, "[en]")
    cmd = scheduler.command(ladder)
    driver = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=scheduler.env())
    wait_for_checkpoint(scheduler.checkpoints, f"phase-{name}")
    (task,) = records.load(f"{name}-phase-{name}")["tasks"]
    return scheduler, ladder, cmd, driver, task


def test_slurm_preemption_checkpoints_requeues_and_resumes(stack, slurm_cluster, tmp_path_factory, tmp_path):
    scheduler, _, cmd, driver, task = _slurm_item_past_its_first_checkpoint(
        stack, slurm_cluster, tmp_path_factory, tmp_path, "preempt"
    )
    slurm_cluster.run("scancel", "--signal=USR2", task)  # what --signal=USR2@S sends before a preemption or time limit
    print(f"$ scancel --signal=USR2 {task}")
    scheduler.release_when_requeued(task)
    stdout, stderr = finish(driver, cmd)
    assert driver.returncode == 0, stderr[-3000:]
    (run_,) = train_runs(stack, "phase-preempt")
    tags = run_.data.tags
    assert run_.info.status == "FINISHED"
    stopped = int(re.match(r"checkpoint-(\d+) \(SIGUSR2\)", tags["langdec.preempted"]).group(1))
    assert stopped > 0 and tags["langdec.resumed_from"] == f"checkpoint-{stopped}"  # resumed at the step it stopped
    assert "(restart 1)" in tags["langdec.scheduler"]
    log = scheduler.log_of("preempt-phase-preempt", 0)
    print("# its log:\n" + "\n".join(line for line in log.splitlines() if "SIGUSR2" in line or "REQUEUE" in line))
    assert "SIGUSR2 received; training stopped at step" in log
    assert list(live_versions(stack, "phase-preempt").values()) == [[tags["registered_version"]]]


# --------------------------------------------------------------------------- (f)
def test_an_outage_of_the_store_is_retried_and_a_data_error_is_not(scheduler, tmp_path):
    name = f"outage{scheduler.name}"
    ladder = localcluster.write_ladder(tmp_path, name, "  - condition: 1\n", QUICK, "[en]")
    label = f"{name}-phase-{name}"
    env = scheduler.env(MLFLOW_HTTP_REQUEST_MAX_RETRIES="0", MLFLOW_HTTP_REQUEST_TIMEOUT="5")
    scheduler.stack.server.stop()
    print("# the MLflow server is stopped")
    cmd = scheduler.command(ladder, "--max-retries", "4")
    driver = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.time() + 180
        while "this may succeed when run again" not in scheduler.log_of(label, 0):
            assert time.time() < deadline and driver.poll() is None, scheduler.log_of(label, 0)[-2000:]
            time.sleep(0.5)
    except BaseException:
        driver.kill()
        raise
    finally:
        scheduler.stack.server.start()
        print("# the MLflow server is back")
    stdout, stderr = finish(driver, cmd, timeout=600)
    assert driver.returncode == 0, stdout[-2000:] + stderr[-2000:]
    log = scheduler.log_of(label, 0)
    print(
        "# the item's log:\n"
        + "\n".join(line for line in log.splitlines() if line.startswith(("item 0", "error:", "langdec:")))
    )
    assert log.count("item 0 cond1-5k-s42 of ladder") >= 2  # failed at least once, then completed
    assert "(the network" in log or "(the tracking server" in log
    (finished,) = train_runs(scheduler.stack, f"phase-{name}")
    assert finished.info.status == "FINISHED"

    bad = localcluster.write_ladder(
        tmp_path, f"bad{scheduler.name}", "  - condition: 1\n", [*QUICK, "corpus.min_lines=100000"], "[en]"
    )
    out = run(scheduler.command(bad, "--max-retries", "4"), scheduler.env())
    assert out.returncode == 1
    log = scheduler.log_of(f"bad{scheduler.name}-phase-bad{scheduler.name}", 0)
    print(
        "# the item's log:\n"
        + "\n".join(line for line in log.splitlines() if line.startswith(("item 0", "error:", "langdec:")))
    )
    assert "no file survived the filters" in log
    assert log.count("item 0 cond1-5k-s42 of ladder") == 1  # not retried: it would fail the same way


# --------------------------------------------------------------------------- (e)
@pytest.mark.parametrize("supersede", [False, True])
def test_the_same_item_twice_at_once_on_two_homes_leaves_one_version(stack, tmp_path, supersede):
    name = "twice" + ("s" if supersede else "")
    ladder = localcluster.write_ladder(tmp_path, name, "  - condition: 1\n", LONG, "[en]")
    homes = [tmp_path / "home-a", tmp_path / "home-b"]
    cmd = [
        sys.executable,
        "-m",
        "langdec.cli",
        "--quiet",
        "run-item",
        str(ladder),
        "0",
        *(["--supersede"] if supersede else []),
    ]
    procs = [
        subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=localcluster.client_env(stack.tracking, LANGDEC_HOME=str(home), LANGDEC_HEARTBEAT_SECONDS=HEARTBEAT),
        )
        for home in homes
    ]
    outs = [p.communicate(timeout=900) for p in procs]
    for home, (stdout, stderr), proc in zip(homes, outs, procs):
        print(f"$ LANGDEC_HOME={home.name} {shown(cmd)}\n{stdout[-1500:]}{stderr[-600:]}(exit {proc.returncode})")
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    results = [json.loads(o[0].strip().splitlines()[-1]) for o in outs]
    versions = live_versions(stack, f"phase-{name}")
    assert list(versions) == ["cond1-5k-s42"] and len(versions["cond1-5k-s42"]) == 1
    assert {r["version"] for r in results} == set(
        versions["cond1-5k-s42"]
    )  # both report the version that holds the cell
    runs = train_runs(stack, f"phase-{name}")
    print(
        "# training runs: "
        + "; ".join(
            f"{r.info.run_id[:8]} {r.info.status} "
            + " ".join(
                f"{k}={v[:8]}"
                for k, v in r.data.tags.items()
                if k in ("langdec.yielded_to", "langdec.duplicate_of", "registered_version")
            )
            for r in runs
        )
        + f"\n# live versions: {versions}"
    )
    finished = [r for r in runs if r.info.status == "FINISHED"]
    # the second either waited and reused the first's run, or stepped aside (at its start or at a heartbeat)
    assert len(finished) == 1, [(r.info.run_id, r.info.status, r.data.tags) for r in runs]
    assert all(r.info.status in ("FINISHED", "KILLED") for r in runs)


# --------------------------------------------------------------------------- several GPUs per item
def test_an_item_on_two_gpus_trains_with_ddp_under_torchrun(stack, slurm_cluster, tmp_path_factory, tmp_path):
    scheduler = Slurm(slurm_cluster, stack, tmp_path_factory.mktemp("shared-checkpoints"))
    ladder = localcluster.write_ladder(
        tmp_path,
        "ddp",
        "  - condition: 1\n",
        [*QUICK, "training.max_steps=4", "training.global_batch=4", "training.batch_size=2"],
        "[en]",
    )
    out = run(scheduler.command(ladder, "--gpus-per-item", "2"), scheduler.env())
    assert out.returncode == 0, out.stderr[-3000:]
    (trained,) = train_runs(stack, "phase-ddp")
    assert trained.info.status == "FINISHED"
    assert (
        trained.data.params["world_size"] == "2" and trained.data.tags["langdec.gpus"] == "0,1"
    )  # both of the node's GPUs
    assert list(live_versions(stack, "phase-ddp").values()) == [[trained.data.tags["registered_version"]]]


# --------------------------------------------------------------------------- issue 34: a cancel, an edited ladder, exit statuses
def _squeue_empty(cluster: localcluster.SlurmCluster, job: str, timeout: float = 900) -> None:
    deadline = time.time() + timeout
    while cluster.run("squeue", "-h", "-j", job, "-o", "%i", check=False).strip():
        assert time.time() < deadline, cluster.run("squeue", "-h", "-j", job, "-o", "%i %T %r", check=False)
        time.sleep(2)


def _status(ladder: Path, env: dict[str, str]) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "langdec.cli", "ladder", str(ladder), "--status"],
        capture_output=True,
        text=True,
        env=env,
    )
    print(f"$ langdec ladder {ladder.name} --status\n{out.stdout}{out.stderr[-1000:]}")
    return out.stdout


def test_slurm_a_plain_scancel_ends_the_item_and_status_says_so(stack, slurm_cluster, tmp_path_factory, tmp_path):
    from langdec.orchestration.scheduling import slurm

    scheduler, ladder, cmd, driver, task = _slurm_item_past_its_first_checkpoint(
        stack, slurm_cluster, tmp_path_factory, tmp_path, "cancel"
    )
    slurm_cluster.run("scancel", task)  # a user's cancel: no --signal
    print(f"$ scancel {task}")
    stdout, stderr = finish(driver, cmd)
    assert driver.returncode == 1  # the item is not done
    time.sleep(8)  # a task that requeued itself would be back in the queue by now
    fields = slurm.job_fields(slurm_cluster.run("scontrol", "show", "job", "-o", task))
    print(f"# {task}: JobState={fields['JobState']} Restarts={fields['Restarts']} ExitCode={fields['ExitCode']}")
    assert fields["JobState"] == "CANCELLED" and fields["Restarts"] == "0"
    log = scheduler.log_of("cancel-phase-cancel", 0)
    print("# its log:\n" + "\n".join(line for line in log.splitlines() if line.startswith(("langdec:", "item 0"))))
    assert "langdec: SIGTERM: scancel by a user or an admin" in log and "cancelled; not requeued" in log
    assert log.count("item 0 cond1-5k-s42 of ladder") == 1
    row = next(line for line in _status(ladder, scheduler.env()).splitlines() if line.startswith("  0  cond1-5k-s42"))
    assert "  cancelled  " in row and f"slurm {task}: ended: cancelled" in row


def test_slurm_runs_the_ladder_as_submitted_and_a_config_error_exits_2(
    stack, slurm_cluster, tmp_path_factory, tmp_path
):
    """The ladder file gets an item inserted at its top while the array waits in the queue: task 0 still runs the
    baseline it was submitted as, and nothing runs the inserted item. Task 1's data error is the task's exit
    status 2 in SLURM's records, and `--status` says why."""
    from langdec.orchestration.scheduling import records, slurm

    scheduler = Slurm(slurm_cluster, stack, tmp_path_factory.mktemp("shared-checkpoints"))
    ladder = localcluster.write_ladder(
        tmp_path, "edited", "  - condition: baseline\n  - condition: 1\n", [*QUICK, "corpus.min_lines=100000"], "[en]"
    )  # the baseline reads no corpus
    submit = [
        sys.executable,
        "-m",
        "langdec.cli",
        "--quiet",
        "ladder",
        str(ladder),
        "--slurm",
        "--time",
        "30",
        "--slurm-arg",
        "begin=now+600",
    ]  # held in the queue
    assert run(submit, scheduler.env()).returncode == 0
    array = records.load("edited-phase-edited")["job_id"]
    ladder.write_text(ladder.read_text().replace("runs:\n", "runs:\n  - condition: 2\n    langs: [zh]\n"))
    print("# cond2-zh inserted at the top of the ladder file while the array waits")
    slurm_cluster.run("scontrol", "update", f"jobid={array}", "StartTime=now")
    _squeue_empty(slurm_cluster, array)

    client = _client(stack)
    exp = client.get_experiment_by_name("phase-edited-smoke")
    ran = sorted(
        (r.data.tags.get("langdec.stage"), r.data.tags.get("run_name"), r.info.status)
        for r in client.search_runs([exp.experiment_id])
        if r.data.tags.get("langdec.stage") in ("train", "evaluate")
    )
    print(f"# runs: {ran}")
    assert ran == [("evaluate", "baseline", "FINISHED")]  # no cond2-zh, no cond1 training
    first = scheduler.log_of("edited-phase-edited", 0)
    assert "changed since this ladder was submitted; running the submitted version" in first
    assert "item 0 baseline of ladder" in first
    fields = slurm.job_fields(slurm_cluster.run("scontrol", "show", "job", "-o", f"{array}_1"))
    print(f"# {array}_1: JobState={fields['JobState']} ExitCode={fields['ExitCode']}")
    assert fields["JobState"] == "FAILED" and fields["ExitCode"] == "2:0"
    status = _status(ladder, scheduler.env())
    assert f"note: {ladder} changed since it was submitted" in status
    row = next(line for line in status.splitlines() if line.startswith("  2  cond1-5k-s42"))
    assert f"slurm {array}_1: ended: failed, exit 2" in row
    why = next(line for line in status.splitlines() if line.strip().startswith("why: item cond1-5k-s42"))
    assert "no file survived the filters" in why and why.endswith("(not retryable)")


def test_the_local_clusters_teardown_spares_a_process_it_did_not_start(tmp_path):
    why = localcluster.slurm_missing()
    if why:
        pytest.skip(why)
    with localcluster.slurm_cluster(tmp_path / "slurm", nodes=1) as cluster:
        # an `mlflow server` started from the shell that uses the cluster: SLURM_CONF is in its environment
        bystander = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(600)"], env={**localcluster.client_env("x"), **cluster.env}
        )
        job = cluster.run("sbatch", "--parsable", "-o", "/dev/null", "--wrap", "sleep 600").strip()
        deadline = time.time() + 60
        while "RUNNING" not in cluster.run("squeue", "-h", "-j", job, "-o", "%T", check=False):
            assert time.time() < deadline
            time.sleep(0.5)
    try:
        left = [p.name for p in Path("/proc").iterdir() if p.name.isdigit() and _has_env(p, f"SLURM_JOB_ID={job}")]
        print(
            f"# after teardown: bystander {'alive' if bystander.poll() is None else 'killed'}, job {job}'s processes: {left}"
        )
        assert bystander.poll() is None and not left
    finally:
        bystander.kill()
        bystander.wait()


def _has_env(pid_dir: Path, entry: str) -> bool:
    try:
        return entry.encode() in (pid_dir / "environ").read_bytes().split(b"\0")
    except OSError:
        return False
