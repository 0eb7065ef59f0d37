"""Throwaway clusters on one machine, behind `langdec cluster up` (and used directly by the tests and benchmarks):

- `local_cluster`: PostgreSQL (the pgserver wheel) for Optuna sweeps and the MLflow backend store, and a real
  `mlflow server` on loopback with served artifacts;
- `slurm_cluster`: SLURM from Debian's packages (munge, slurmctld and N slurmd "nodes" on loopback ports), with
  fake GPUs declared through gres.conf (device files that are /dev/null), so jobs get CUDA_VISIBLE_DEVICES;
- `ray_cluster`: Ray's own `ray.cluster_utils.Cluster`, a head and N nodes with GPUs declared;
- `hold`: the process `langdec cluster up` leaves running (`python -m langdec.orchestration.localcluster hold DIR`): it enters
  the context managers above, writes DIR/env.sh and DIR/cluster.json, and on SIGTERM (`langdec cluster down`)
  leaves them again, so each stops only what it started.

On real machines run PostgreSQL, `langdec tracking-server` and your site's scheduler instead (docs/scale.md)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from langdec.core.errors import LangdecError


class TrackingServer:
    """A real `mlflow server` on a loopback port, on a PostgreSQL store, serving artifacts from a folder; it can be
    stopped and started again on the same port (an outage, as the tests inject one)."""

    def __init__(self, store: str, artifacts: Path, log: Path, *, port: int | None = None) -> None:
        self.store, self.artifacts, self.log = store, artifacts, log
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 90.0) -> None:
        with self.log.open("a") as log:
            # the store's URL reaches the server through its environment, never its command line
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "mlflow",
                    "server",
                    "--artifacts-destination",
                    str(self.artifacts),
                    "--serve-artifacts",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--workers",
                    "2",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_BACKEND_STORE_URI": self.store},
            )

        def healthy() -> bool:
            if self.process.poll() is not None:
                raise LangdecError(f"mlflow server exited; see {self.log}:\n{self.log.read_text()[-1500:]}")
            try:
                urllib.request.urlopen(f"{self.url}/health", timeout=1)
                return True
            except OSError:
                return False

        _wait_for(healthy, "mlflow server", self.log, timeout)

    def stop(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)  # gunicorn/uvicorn workers with it
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None


@dataclass
class Cluster:
    optuna: str  # SQLAlchemy URL of the sweeps' database
    server: TrackingServer
    root: Path

    @property
    def tracking(self) -> str:
        return self.server.url


def free_port() -> int:
    """A loopback port nothing listens on now (for a server started next)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(check, what: str, log: Path | None, timeout: float) -> None:
    deadline = time.time() + timeout
    while not check():
        if time.time() > deadline:
            tail = log.read_text(errors="replace")[-1500:] if log and log.exists() else ""
            raise LangdecError(f"{what} did not start in {timeout:.0f}s" + (f"; see {log}:\n{tail}" if log else ""))
        time.sleep(0.5)


@contextlib.contextmanager
def local_cluster(root: Path, *, startup_timeout: float = 90.0) -> Iterator[Cluster]:
    try:
        import pgserver
    except ImportError:
        raise LangdecError("the local cluster needs the pgserver wheel: pip install pgserver") from None
    root.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(str(root / "pgdata"), cleanup_mode="stop")
    for database in ("optuna", "tracking"):
        if database not in server.psql("SELECT datname FROM pg_database;"):
            server.psql(f"CREATE DATABASE {database};")
    tracking = TrackingServer(server.get_uri("tracking"), root / "artifacts", root / "mlflow-server.log")
    try:
        tracking.start(startup_timeout)
        yield Cluster(server.get_uri("optuna"), tracking, root)
    finally:
        tracking.stop()
        server.cleanup()


def client_env(tracking: str, **extra: str) -> dict[str, str]:
    return {**os.environ, "MLFLOW_TRACKING_URI": tracking, "MLFLOW_DISABLE_TELEMETRY": "true", **extra}


# A ladder of six smoke items (baseline, condition 1, condition 2 in three languages, condition 3): the tests' and
# the scheduler benchmark's
SIX_ITEMS = """  - condition: baseline
  - condition: 1
  - condition: 2
    langs: [zh, es, ur]
  - condition: 3
    langs: [zh]
"""


def write_ladder(folder: Path, name: str, runs: str, overrides: list[str], data_languages: str = "[en, zh]") -> Path:
    """A smoke ladder file `name.yaml` (phase `phase-NAME`, tier 5k, seed 42) with these items and overrides."""
    path = folder / f"{name}.yaml"
    quoted = ", ".join(json.dumps(o) for o in overrides)
    path.write_text(
        f"name: {name}\nprofile: smoke\nphase: phase-{name}\ntiers: [5k]\nseeds: [42]\n"
        f"data_languages: {data_languages}\noverrides: [{quoted}]\nruns:\n{runs}"
    )
    return path


# --------------------------------------------------------------------------- SLURM
SLURM_BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol")


def slurm_missing() -> str | None:
    """Why a local SLURM cluster cannot start here, or None."""
    missing = [b for b in SLURM_BINARIES if not shutil.which(b) and not Path(f"/usr/sbin/{b}").exists()]
    if missing:
        return f"SLURM is not installed ({', '.join(missing)} missing): apt-get install slurm-wlm munge"
    if os.geteuid() != 0:
        return "a local SLURM cluster starts slurmd, which runs jobs as their user: run as root (CI does)"
    return None


@dataclass
class SlurmCluster:
    root: Path
    conf: Path
    nodes: list[str]
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)  # node name -> its slurmd
    controller: subprocess.Popen | None = None  # slurmctld

    @property
    def env(self) -> dict[str, str]:
        return {"SLURM_CONF": str(self.conf)}

    def run(self, *cmd: str, check: bool = True) -> str:
        out = subprocess.run(list(cmd), capture_output=True, text=True, env={**os.environ, **self.env}, timeout=60)
        if check and out.returncode != 0:
            raise LangdecError(f"{' '.join(cmd)}: {out.stderr.strip()[:500]}")
        return out.stdout

    def start_node(self, name: str) -> None:
        self.processes[name] = subprocess.Popen(
            [_sbin("slurmd"), "-D", "-f", str(self.conf), "-N", name],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def kill_node(self, name: str) -> list[int]:
        """What losing the machine does: its slurmd and every process of every job step on it die at once (SIGKILL).
        The controller notices after SlurmdTimeout, marks the node DOWN and requeues its jobs. Returns the pids killed."""
        jobs = self.run("squeue", "-h", "-w", name, "-o", "%A", check=False).split()
        daemon = self.processes.pop(name, None)
        victims = own_processes(self.conf, [daemon.pid] if daemon else [], [name], jobs)
        _kill(victims)
        if daemon is not None:
            daemon.wait()
        return sorted(victims)

    def stop(self) -> None:
        """Cancel every job, stop the daemons, then end what is left of what this cluster started (`own_processes`):
        step daemons and job processes that outlived them. Never a process that merely shares the cluster's
        SLURM_CONF in its environment: an `mlflow server` started from the same shell is not the cluster's."""
        with contextlib.suppress(Exception):
            self.run("scancel", "--user", "root", check=False)
        daemons = [p for p in (*self.processes.values(), self.controller) if p is not None]
        leftovers = own_processes(self.conf, [p.pid for p in daemons], self.nodes)  # before the daemons' pids are gone
        for process in daemons:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
        for process in daemons:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        _kill(leftovers | own_processes(self.conf, [], self.nodes))
        self.processes.clear()
        self.controller = None

    def resume_node(self, name: str) -> None:
        self.start_node(name)
        deadline = time.time() + 60
        while time.time() < deadline:
            self.run("scontrol", "update", f"nodename={name}", "state=resume", check=False)
            if "idle" in self.run("sinfo", "-h", "-n", name, "-o", "%T", check=False) or "mix" in self.run(
                "sinfo", "-h", "-n", name, "-o", "%T", check=False
            ):
                return
            time.sleep(1)


def _processes() -> dict[int, tuple[int, bytes, list[bytes]]]:
    """pid -> (parent pid, command line, environment) of every process this user may read."""
    found = {}
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit():
            continue
        try:
            parent = int((pid_dir / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (pid_dir / "cmdline").read_bytes()
            environ = (pid_dir / "environ").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue
        found[int(pid_dir.name)] = (parent, cmdline, environ)
    return found


def own_processes(conf: Path, daemons: list[int], nodes: list[str], jobs: list[str] | None = None) -> set[int]:
    """The processes a local cluster started: its daemons (`daemons`, the pids it spawned), the step daemons
    their slurmd started (a `slurmstepd` is double-forked away from slurmd; it carries the cluster's SLURM_CONF),
    the processes of its jobs on `nodes` (SLURM_CONF and SLURMD_NODENAME of this cluster: only a job's processes
    have a node name), and every descendant of those. A process that only has the cluster's SLURM_CONF in its
    environment, because it was started from the shell that uses the cluster, is not one of them. `jobs`: only the
    step daemons of these jobs (those on one node)."""
    table = _processes()
    conf_entry = f"SLURM_CONF={conf}".encode()
    node_entries = {f"SLURMD_NODENAME={name}".encode() for name in nodes}
    roots = {pid for pid in daemons if pid in table}
    for pid, (_, cmdline, environ) in table.items():
        if conf_entry not in environ:
            continue
        if cmdline.startswith(b"slurmstepd"):
            if jobs is None or any(f"[{job}.".encode() in cmdline for job in jobs):
                roots.add(pid)
        elif node_entries & set(environ):
            roots.add(pid)
    children: dict[int, list[int]] = {}
    for pid, (parent, _, _) in table.items():
        children.setdefault(parent, []).append(pid)
    found, todo = set(), list(roots)
    while todo:
        pid = todo.pop()
        if pid not in found and pid != os.getpid():
            found.add(pid)
            todo.extend(children.get(pid, []))
    return found


def _kill(pids: set[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def _sbin(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


def _munge_running() -> bool:
    try:
        cred = subprocess.run(["munge", "-n"], capture_output=True, timeout=10)
        return (
            cred.returncode == 0
            and subprocess.run(["unmunge"], input=cred.stdout, capture_output=True, timeout=10).returncode == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


def _start_munged() -> None:
    """munged as its own user; its socket folder is made by systemd's tmpfiles on a booted host, which a container
    or a CI machine freshly given the package does not run."""
    socket_dir = Path("/run/munge")
    if not socket_dir.exists():
        socket_dir.mkdir(mode=0o755, parents=True)
        shutil.chown(socket_dir, "munge", "munge")
    started = subprocess.run(
        ["runuser", "-u", "munge", "--", _sbin("munged"), "--force"], capture_output=True, text=True, timeout=30
    )
    if started.returncode != 0:
        raise LangdecError(f"munged did not start: {(started.stderr or started.stdout).strip()[-500:]}")
    _wait_for(_munge_running, "munged", None, 20)


@contextlib.contextmanager
def slurm_cluster(
    root: Path, *, nodes: int = 2, gpus_per_node: int = 2, cpus_per_node: int = 2, startup_timeout: float = 60.0
) -> Iterator[SlurmCluster]:
    """A controller and `nodes` slurmd daemons on this machine (one partition, `main`), each with fake GPUs."""
    why = slurm_missing()
    if why:
        raise LangdecError(why)
    root = root.resolve()
    for sub in ("etc", "dev", "spool", "log", "run"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    if not _munge_running():
        _start_munged()
    names = [f"n{i + 1}" for i in range(nodes)]
    ctld_port, slurmd_ports = free_port(), [free_port() for _ in names]
    (root / "etc" / "gres.conf").write_text("\n".join(_fake_gpus(root, names, gpus_per_node)) + "\n")
    (root / "etc" / "cgroup.conf").write_text(
        "CgroupPlugin=cgroup/v1\nCgroupAutomount=no\nConstrainCores=no\nConstrainRAMSpace=no\nConstrainDevices=no\n"
    )
    conf = root / "etc" / "slurm.conf"
    conf.write_text(_slurm_conf(root, ctld_port, dict(zip(names, slurmd_ports)), cpus_per_node, gpus_per_node))
    cluster = SlurmCluster(root, conf, names)
    ctld = cluster.controller = subprocess.Popen(
        [_sbin("slurmctld"), "-D", "-i", "-f", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        time.sleep(1)
        for name in names:
            cluster.start_node(name)

        def up() -> bool:
            if ctld.poll() is not None:
                raise LangdecError(f"slurmctld exited; see {root}/log/slurmctld.log")
            cluster.run("scontrol", "update", f"nodename={','.join(names)}", "state=resume", check=False)
            states = cluster.run("sinfo", "-h", "-o", "%T %D", check=False)
            return states.strip().startswith("idle") and states.split()[-1] == str(nodes)

        _wait_for(up, "the SLURM nodes", root / "log" / "slurmctld.log", startup_timeout)
        yield cluster
    finally:
        cluster.stop()


def _fake_gpus(root: Path, names: list[str], gpus_per_node: int) -> list[str]:
    """gres.conf's lines: each node's GPUs are device files under root/dev, numbered across the nodes."""
    gres_lines = []
    for i, name in enumerate(names):
        for g in range(gpus_per_node):
            device = root / "dev" / f"nvidia{i * gpus_per_node + g}"
            if not device.exists():
                device.symlink_to("/dev/null")  # a character device, as slurmd checks; never opened by a job
        first, last = i * gpus_per_node, i * gpus_per_node + gpus_per_node - 1
        gres_lines.append(f"NodeName={name} Name=gpu File={root}/dev/nvidia[{first}-{last}]")
    return gres_lines


def _slurm_conf(root: Path, ctld_port: int, ports: dict[str, int], cpus_per_node: int, gpus_per_node: int) -> str:
    """slurm.conf of the local cluster: its files under `root`, each node (name -> slurmd port) on loopback, one
    partition `main` of them all."""
    node_lines = [
        f"NodeName={name} NodeHostname=localhost Port={port} CPUs={cpus_per_node} RealMemory=4000 Gres=gpu:{gpus_per_node} State=UNKNOWN"
        for name, port in ports.items()
    ]
    return "\n".join(
        [
            "ClusterName=langdec",
            "SlurmctldHost=localhost",
            f"SlurmctldPort={ctld_port}",
            "AuthType=auth/munge",
            "SlurmUser=root",
            "SlurmdUser=root",
            f"StateSaveLocation={root}/spool/ctld",
            f"SlurmdSpoolDir={root}/spool/%n",
            f"SlurmctldPidFile={root}/run/slurmctld.pid",
            f"SlurmdPidFile={root}/run/slurmd-%n.pid",
            f"SlurmctldLogFile={root}/log/slurmctld.log",
            f"SlurmdLogFile={root}/log/slurmd-%n.log",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SchedulerType=sched/backfill",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core",
            "GresTypes=gpu",
            "ReturnToService=2",
            "MpiDefault=none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            # a lost node is noticed in seconds (the default is minutes) and its jobs requeued
            "SlurmdTimeout=10",
            "MessageTimeout=5",
            "KillWait=10",
            "MinJobAge=600",
            "SchedulerParameters=defer_batch",
            *node_lines,
            f"PartitionName=main Nodes={','.join(ports)} Default=YES MaxTime=INFINITE State=UP",
            "",
        ]
    )


# --------------------------------------------------------------------------- Ray
@dataclass
class RayCluster:
    address: str
    cluster: object  # ray.cluster_utils.Cluster
    nodes: list = field(default_factory=list)

    def node_of(self, node_id: str):
        return next(n for n in self.nodes if n.node_id.startswith(node_id))

    def kill_node(self, node) -> None:
        """A machine lost: the node's raylet and workers die at once."""
        self.cluster.remove_node(node, allow_graceful=False)
        self.nodes.remove(node)

    def add_node(self, gpus: int):
        node = self.cluster.add_node(num_cpus=2, num_gpus=gpus)
        self.nodes.append(node)
        self.cluster.wait_for_nodes()
        return node


@contextlib.contextmanager
def ray_cluster(*, nodes: int = 2, gpus_per_node: int = 2, cpus_per_node: int = 2) -> Iterator[RayCluster]:
    try:
        from ray.cluster_utils import Cluster as RayUtilsCluster
    except ImportError:
        raise LangdecError("the local Ray cluster needs Ray: pip install 'langdec[ray]'") from None
    cluster = RayUtilsCluster(initialize_head=True, head_node_args={"num_cpus": 0, "num_gpus": 0})
    try:
        made = RayCluster(cluster.address, cluster)
        for _ in range(nodes):
            made.nodes.append(cluster.add_node(num_cpus=cpus_per_node, num_gpus=gpus_per_node))
        cluster.wait_for_nodes()
        yield made
    finally:
        cluster.shutdown()


# --------------------------------------------------------------------------- one cluster held open: `langdec cluster up`
STATE, EXPORTS, HOLDER, LOG = "cluster.json", "env.sh", "holder.lock", "cluster.log"


def process_start(pid: int) -> str:
    """The process's start time in clock ticks since boot (/proc): a live pid with another start time is a process
    that reused the pid."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def alive(pid: int, started: str) -> bool:
    return pid > 0 and bool(started) and process_start(pid) == started


def holder(root: Path) -> dict | None:
    """{"pid", "started"} of the process holding the cluster in `root` (starting, up or stopping), or None when none
    does. Its flock on holder.lock says that it runs: the kernel drops the lock however the process ends, so it is
    never stale. "pid" is 0 while the holder has not yet written who it is."""
    try:
        fd = os.open(root / HOLDER, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # held
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        for _ in range(20):  # a holder writes who it is right after taking the lock
            with contextlib.suppress(ValueError):
                found = json.loads(os.pread(fd, 4096, 0) or b"null")
                if isinstance(found, dict) and isinstance(found.get("pid"), int):
                    return {"pid": found["pid"], "started": str(found.get("started", ""))}
            time.sleep(0.1)
        return {"pid": 0, "started": ""}
    finally:
        os.close(fd)


def _take(root: Path) -> int:
    """Hold `root`'s holder.lock for the life of this process (the descriptor is not inherited by the servers it
    starts, so the lock goes with this process) and write who holds it."""
    fd = os.open(root / HOLDER, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise LangdecError(
            f"{root}: another cluster holds this folder; see `langdec cluster status --dir {root}`"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps({"pid": os.getpid(), "started": process_start(os.getpid())}).encode(), 0)
    return fd


def _pid(pid: int) -> list:
    return [pid, process_start(pid)]


def _start(
    stack: contextlib.ExitStack, root: Path, *, slurm: bool, ray: bool, nodes: int, gpus_per_node: int, timeout: float
) -> dict:
    """Enter the clusters asked for; what they are and the exports that reach them. The log says when each stopped
    (a callback pushed before its context runs after that context has ended)."""
    stack.callback(_said, "stopped PostgreSQL and the mlflow server")
    local = stack.enter_context(local_cluster(root / "stack", startup_timeout=timeout))
    postmaster = int((root / "stack" / "pgdata" / "postmaster.pid").read_text().split()[0])
    exports = {"LANGDEC_HOME": os.environ["LANGDEC_HOME"]} if os.environ.get("LANGDEC_HOME") else {}
    exports["MLFLOW_TRACKING_URI"] = local.tracking
    components: dict[str, dict] = {
        "postgresql": {
            "pids": [_pid(postmaster)],
            "data": str(root / "stack" / "pgdata"),
            "databases": ["tracking", "optuna"],
        },
        "mlflow server": {
            "url": local.tracking,
            "pids": [_pid(local.server.process.pid)],
            "log": str(local.server.log),
        },
    }
    if slurm:
        exports["SLURM_CONF"], components["slurm"] = _enter_slurm(stack, root, nodes, gpus_per_node, timeout)
    if ray:
        exports["RAY_ADDRESS"], components["ray"] = _enter_ray(stack, nodes, gpus_per_node)
    # the local database trusts local connections: the URL has no password to hide
    exports["LANGDEC_SWEEP_STORAGE"] = local.optuna
    return {
        "holder": {"pid": os.getpid(), "started": process_start(os.getpid())},
        "dir": str(root),
        "since": time.strftime("%Y-%m-%d %H:%M:%S"),
        "components": components,
        "exports": exports,
    }


def _enter_slurm(
    stack: contextlib.ExitStack, root: Path, nodes: int, gpus_per_node: int, timeout: float
) -> tuple[str, dict]:
    """Start the SLURM cluster on `stack`: (its SLURM_CONF, what it is)."""
    stack.callback(_said, "stopped SLURM")
    made = stack.enter_context(
        slurm_cluster(root / "slurm", nodes=nodes, gpus_per_node=gpus_per_node, startup_timeout=timeout)
    )
    return str(made.conf), {
        "conf": str(made.conf),
        "nodes": made.nodes,
        "gpus_per_node": gpus_per_node,
        "partition": "main",
        "pids": [_pid(p.pid) for p in (made.controller, *made.processes.values()) if p is not None],
    }


def _enter_ray(stack: contextlib.ExitStack, nodes: int, gpus_per_node: int) -> tuple[str, dict]:
    """Start the Ray cluster on `stack`: (its RAY_ADDRESS, what it is, with the pids of every node's processes)."""
    stack.callback(_said, "stopped Ray")
    held = stack.enter_context(ray_cluster(nodes=nodes, gpus_per_node=gpus_per_node))
    members = [held.cluster.head_node, *held.nodes]
    pids = {
        info.process.pid
        for node in members
        for infos in node.all_processes.values()
        for info in infos
        if getattr(info, "process", None) is not None
    }
    return held.address, {
        "address": held.address,
        "nodes": nodes,
        "gpus_per_node": gpus_per_node,
        "pids": [_pid(pid) for pid in sorted(pids)],
    }


def _said(what: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {what}", flush=True)


def exports_text(state: dict, *, header: bool = True) -> str:
    import shlex

    root = state["dir"]
    lines = [
        f"# the local cluster in {root}: `source` this file in each shell; `langdec cluster down --dir {root}` stops it"
    ][:header]
    for name, value in state["exports"].items():
        if name == "LANGDEC_SWEEP_STORAGE":
            lines.append('# for sweeps: langdec sweep FILE --storage "$LANGDEC_SWEEP_STORAGE"')
        lines.append(f"export {name}={shlex.quote(value)}")
    return "\n".join(lines) + "\n"


def forget(root: Path) -> None:
    for name in (STATE, EXPORTS):
        with contextlib.suppress(FileNotFoundError):
            (root / name).unlink()


def hold(root: Path, *, slurm: bool, ray: bool, nodes: int = 2, gpus_per_node: int = 2, timeout: float = 90.0) -> int:
    """Start the clusters, write env.sh and cluster.json, and hold them until SIGTERM or SIGINT; then stop each (its
    context manager ends only what it started). A signal during the start is kept until the start is over, so the
    context managers never unwind halfway through starting a daemon; only while Ray's nodes start does their own
    handler take a SIGTERM, and the start then unwinds from there."""
    from langdec.core.atomic import write_text

    root = root.resolve()
    root.mkdir(parents=True, exist_ok=True)
    _take(root)
    stop = threading.Event()

    def on_stop() -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda number, _frame: stop.set())

    on_stop()
    with contextlib.ExitStack() as stack:
        try:
            state = _start(stack, root, slurm=slurm, ray=ray, nodes=nodes, gpus_per_node=gpus_per_node, timeout=timeout)
            # Ray's nodes take SIGTERM for themselves (they kill their processes and exit at once); the holder stops
            # everything in the reverse order it started it instead
            on_stop()
            write_text(root / EXPORTS, exports_text(state))
            write_text(root / STATE, json.dumps(state, indent=2))
            _said(f"up: {', '.join(state['components'])}")
            while not stop.wait(1.0):
                pass
        finally:
            forget(root)  # from now on nothing says it is up
            _said("stopping")
    _said("stopped")
    return 0


def _main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(
        prog="python -m langdec.orchestration.localcluster", description="what `langdec cluster up` runs"
    )
    sub = p.add_subparsers(dest="what", required=True)
    h = sub.add_parser("hold", help="start the local clusters in DIR and hold them until SIGTERM")
    h.add_argument("dir")
    h.add_argument("--slurm", action="store_true")
    h.add_argument("--ray", action="store_true")
    h.add_argument("--nodes", type=int, default=2)
    h.add_argument("--gpus-per-node", type=int, default=2)
    h.add_argument("--timeout", type=float, default=90.0, help="seconds each server may take to start")
    args = p.parse_args(argv)
    try:
        return hold(
            Path(args.dir),
            slurm=args.slurm,
            ray=args.ray,
            nodes=args.nodes,
            gpus_per_node=args.gpus_per_node,
            timeout=args.timeout,
        )
    except Exception as exc:  # the log's last line is what `langdec cluster up` shows first
        import traceback

        from langdec.core.urls import without_secrets

        if not isinstance(exc, LangdecError):
            traceback.print_exc()
        text = str(exc) if isinstance(exc, LangdecError) else f"{type(exc).__name__}: {exc}"
        print(f"error: {without_secrets(text)}", file=sys.stderr, flush=True)
        return 2 if isinstance(exc, LangdecError) else 1


if __name__ == "__main__":
    sys.exit(_main())
