"""`langdec cluster up|status|down`: on one machine, what docs/scale.md's examples need (PostgreSQL with an
`mlflow server`, a SLURM cluster, a Ray cluster), started by one command and stopped by another.

`up` leaves a holder process running (`python -m langdec.orchestration.localcluster hold DIR`, in its own session, its output
in DIR/cluster.log) that starts the clusters through `localcluster`'s context managers and writes DIR/env.sh and
DIR/cluster.json. `down` sends that process SIGTERM, after checking by its start time that the pid is still it;
the context managers then stop what each started and nothing else."""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from langdec.core.errors import LangdecError

NOT_RUNNING = 3  # `status`: the LSB code for "not running", so a script can test for it
NAMES = {"postgresql": "PostgreSQL", "mlflow server": "mlflow server", "slurm": "SLURM", "ray": "Ray"}


def _root(args) -> Path:
    from langdec.core.paths import home_path

    return (Path(args.dir) if args.dir else home_path() / "cluster").expanduser().resolve()


def _state(root: Path) -> dict | None:
    from langdec.core import jsonfile
    from langdec.orchestration.localcluster import STATE

    try:
        raw = (root / STATE).read_bytes()
    except FileNotFoundError:
        return None
    state = jsonfile.loads(
        raw, where=root / STATE, what="cluster record", fix=f"stop the cluster with `langdec cluster down --dir {root}`"
    )
    return state if isinstance(state, dict) and isinstance(state.get("holder"), dict) else None


def _running(root: Path) -> tuple[dict | None, dict | None]:
    """(holder, state): the process holding `root` (None: none) and its record once it is up (None: starting,
    stopping, or none)."""
    from langdec.orchestration.localcluster import holder

    who = holder(root)
    state = _state(root) if who else None
    if state is not None and state["holder"].get("pid") != who["pid"]:
        state = None  # a record left by an earlier holder
    return who, state


def _describe(state: dict) -> list[str]:
    parts = state["components"]
    lines = []
    for name, part in parts.items():
        pids = ", ".join(str(pid) for pid, _ in part.get("pids", []))
        if name == "postgresql":
            lines.append(f"PostgreSQL: databases {', '.join(part['databases'])} in {part['data']} (pid {pids})")
        elif name == "mlflow server":
            lines.append(f"mlflow server: {part['url']} (pid {pids}; log {part['log']})")
        elif name == "slurm":
            lines.append(
                f"SLURM: {len(part['nodes'])} nodes ({', '.join(part['nodes'])}), {part['gpus_per_node']} GPUs each, "
                f"partition {part['partition']} (slurmctld and slurmd pids {pids})"
            )
        elif name == "ray":
            lines.append(
                f"Ray: a head and {part['nodes']} nodes, {part['gpus_per_node']} GPUs each, at {part['address']}"
            )
    return lines


def _print_up(state: dict, headline: str) -> None:
    """Shell-ready on stdout (`eval "$(langdec cluster up)"` works): comments, then the export lines."""
    from langdec.orchestration.localcluster import EXPORTS, exports_text

    root = Path(state["dir"])
    print(f"# {headline} (holder pid {state['holder']['pid']}, since {state['since']})")
    for line in _describe(state):
        print(f"#   {line}")
    print(exports_text(state, header=False), end="")
    print(f"# in each shell: source {root / EXPORTS}\n# stop it all:   langdec cluster down --dir {root}")


def _choose(args) -> tuple[bool, bool]:
    """Which schedulers to start: asked for and missing -> exit 2 with the reason; by default, those this machine
    has, saying why any other was left out."""
    from langdec.orchestration.localcluster import slurm_missing

    if importlib.util.find_spec("pgserver") is None:
        raise LangdecError("langdec cluster up runs PostgreSQL from the pgserver wheel: pip install pgserver")
    if args.nodes < 1 or args.gpus_per_node < 0 or args.timeout <= 0:
        raise LangdecError("--nodes must be >= 1, --gpus-per-node >= 0 and --timeout > 0")
    why = slurm_missing()
    if args.slurm and why:
        raise LangdecError(f"--slurm: {why}")
    if args.slurm is None and why:
        print(f"note: no SLURM cluster: {why}", file=sys.stderr)
    has_ray = importlib.util.find_spec("ray") is not None
    if args.ray and not has_ray:
        raise LangdecError("--ray: Ray is not installed: pip install 'langdec[ray]'")
    if args.ray is None and not has_ray:
        print("note: no Ray cluster: Ray is not installed (pip install 'langdec[ray]')", file=sys.stderr)
    return args.slurm is not False and why is None, args.ray is not False and has_ray


def _spawn(root: Path, slurm: bool, ray: bool, args) -> subprocess.Popen:
    from langdec.core.paths import home_path
    from langdec.orchestration.localcluster import LOG

    root.mkdir(parents=True, exist_ok=True)
    # the holder reaches its clusters through its own settings, never through a cluster exported earlier
    env = {k: v for k, v in os.environ.items() if k not in ("SLURM_CONF", "RAY_ADDRESS", "MLFLOW_TRACKING_URI")}
    # one home for this shell, the SLURM tasks and the Ray workers (whose working folder is not the user's)
    env.update(LANGDEC_HOME=str(home_path().expanduser().resolve()), MLFLOW_DISABLE_TELEMETRY="true")
    flags = [
        *(["--slurm"] if slurm else []),
        *(["--ray"] if ray else []),
        "--nodes",
        str(args.nodes),
        "--gpus-per-node",
        str(args.gpus_per_node),
        "--timeout",
        str(args.timeout),
    ]
    with (root / LOG).open("ab") as log:
        # its own session: it outlives this command, and no terminal's Ctrl-C or hangup reaches it
        return subprocess.Popen(
            [sys.executable, "-m", "langdec.orchestration.localcluster", "hold", str(root), *flags],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=root,
            env=env,
            start_new_session=True,
        )


def _tail(root: Path, lines: int = 15) -> str:
    from langdec.core.urls import without_secrets
    from langdec.orchestration.localcluster import LOG

    try:
        text = (root / LOG).read_text(errors="replace")
    except OSError:
        return ""
    return without_secrets("\n".join(text.splitlines()[-lines:]))


def _wait_up(root: Path, holder: subprocess.Popen, timeout: float) -> dict:
    """The holder's record once it is up; `timeout` bounds the whole start (each server's own is shorter)."""
    from langdec.orchestration.localcluster import LOG

    deadline = time.time() + timeout
    while True:
        state = _state(root)
        if state is not None and state["holder"].get("pid") == holder.pid:
            return state
        if holder.poll() is not None:
            raise LangdecError(
                f"the local cluster did not start (exit {holder.returncode}); {root / LOG} ends:\n{_tail(root)}"
            )
        if time.time() > deadline:
            holder.terminate()  # our own child: it stops whatever it had started
            with contextlib.suppress(subprocess.TimeoutExpired):
                holder.wait(timeout=180)
            raise LangdecError(f"the local cluster did not start in {timeout:.0f}s; {root / LOG} ends:\n{_tail(root)}")
        time.sleep(0.5)


def cmd_up(args) -> int:
    from langdec.orchestration.localcluster import LOG, forget

    root = _root(args)
    who, state = _running(root)
    if state is not None:
        _print_up(state, f"already up in {root}")
        return 0
    if who is not None:
        raise LangdecError(
            f"the local cluster in {root} is starting or stopping (holder pid {who['pid']}); "
            f"run `langdec cluster status --dir {root}` in a moment"
        )
    slurm, ray = _choose(args)
    forget(root)  # a record of a holder that is gone
    what = ["PostgreSQL", "mlflow server", *(["SLURM"] if slurm else []), *(["Ray"] if ray else [])]
    print(f"starting {', '.join(what)} in {root} (log: {root / LOG}) ...", file=sys.stderr, flush=True)
    started = time.time()
    state = _wait_up(root, _spawn(root, slurm, ray, args), args.timeout * (2 + slurm + ray))
    _print_up(state, f"up in {time.time() - started:.0f}s in {root}")
    return 0


def _leftovers(state: dict | None) -> list[str]:
    """The processes the record names that still run (the same pid with the same start time)."""
    from langdec.orchestration.localcluster import alive

    if not state:
        return []
    return [
        f"{NAMES.get(name, name)} pid {pid}"
        for name, part in state.get("components", {}).items()
        for pid, started in part.get("pids", [])
        if alive(pid, started)
    ]


def cmd_down(args) -> int:
    from langdec.orchestration.localcluster import alive, forget

    root = _root(args)
    who, state = _running(root)
    if who is None:
        try:
            stale = _state(root)
        except LangdecError:  # a damaged record of a holder that is gone: nothing in it to trust
            stale = {"components": {}}
        forget(root)
        print(f"no local cluster is running in {root}" + ("; removed the record its holder left" if stale else ""))
        if _leftovers(stale):
            print(f"note: still running, not started by a live holder and left alone: {', '.join(_leftovers(stale))}")
        return 0
    if not alive(who["pid"], who["started"]):
        raise LangdecError(
            f"{root}: cannot tell which process holds the cluster (holder pid {who['pid']} is not the process "
            "that took the lock); nothing was stopped"
        )
    os.kill(who["pid"], signal.SIGTERM)
    print(f"stopping the local cluster in {root} (holder pid {who['pid']}) ...", file=sys.stderr, flush=True)
    deadline = time.time() + args.timeout
    while alive(who["pid"], who["started"]):
        if time.time() > deadline:
            raise LangdecError(
                f"the holder (pid {who['pid']}) did not stop in {args.timeout:.0f}s (--timeout); see "
                f"{root / 'cluster.log'}"
            )
        time.sleep(0.5)
    forget(root)
    left = _leftovers(state)
    stopped = ", ".join(NAMES.get(name, name) for name in state["components"]) if state else "what had started"
    print(f"stopped: {stopped}" + (f"; still running: {', '.join(left)}" if left else ""))
    return 1 if left else 0


def cmd_status(args) -> int:
    root = _root(args)
    who, state = _running(root)
    if who is None:
        print(f"no local cluster is running in {root} (start one: langdec cluster up --dir {root})")
        return NOT_RUNNING
    if state is None:
        print(
            f"the local cluster in {root} is starting or stopping (holder pid {who['pid']}; log {root / 'cluster.log'})"
        )
        return NOT_RUNNING
    _print_up(state, f"up in {root}")
    return 0


def register(command) -> None:
    c = command(
        "cluster",
        help="try the many-machine paths on this machine: PostgreSQL + mlflow server, SLURM, Ray (up, status, down)",
    )
    sub = c.add_subparsers(dest="action", required=True)
    where = {"default": None, "help": "the cluster's folder (default: $LANGDEC_HOME/cluster)"}

    s = sub.add_parser(
        "up",
        help="start PostgreSQL + mlflow server, SLURM and Ray here and print the exports (DIR/env.sh); "
        "a running one is reported, not doubled",
    )
    s.add_argument("--dir", **where)
    s.add_argument(
        "--slurm",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a SLURM cluster (default: when slurm-wlm is installed and this is root)",
    )
    s.add_argument(
        "--ray",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a Ray cluster (default: when Ray is installed)",
    )
    s.add_argument("--nodes", type=int, default=2, help="nodes of each scheduler (default 2)")
    s.add_argument("--gpus-per-node", type=int, default=2, help="GPUs each node declares (fake ones; default 2)")
    s.add_argument(
        "--timeout",
        type=float,
        default=180,
        help="seconds each server may take to start (a loaded machine starts them slowly)",
    )
    s.set_defaults(func=cmd_up)

    s = sub.add_parser("status", help="whether it is up, what runs, the exports (exit 3 when not running)")
    s.add_argument("--dir", **where)
    s.set_defaults(func=cmd_status)

    s = sub.add_parser("down", help="stop everything `up` started, and nothing else")
    s.add_argument("--dir", **where)
    s.add_argument("--timeout", type=float, default=180, help="seconds to wait for it to stop")
    s.set_defaults(func=cmd_down)
