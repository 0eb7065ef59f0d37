"""A throwaway multi-worker setup on one machine: PostgreSQL (the pgserver wheel) for the
Optuna queue and the MLflow backend store, and a real `mlflow server` on loopback.

Used by the tests and benchmarks/workers_scaling.py; on real machines run PostgreSQL
yourself and `langdec tracking-server` (see README, "Many machines").
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .errors import LangdecError


@dataclass
class Cluster:
    queue: str  # SQLAlchemy URL of the queue database
    tracking: str  # http://127.0.0.1:PORT
    root: Path


def free_port() -> int:
    """A loopback port nothing listens on now (for a server started next)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def local_cluster(root: Path, *, startup_timeout: float = 90.0) -> Iterator[Cluster]:
    try:
        import pgserver
    except ImportError:
        raise LangdecError("the local cluster needs the pgserver wheel: pip install pgserver") from None
    root.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(str(root / "pgdata"), cleanup_mode="stop")
    for database in ("queue", "tracking"):
        if database not in server.psql("SELECT datname FROM pg_database;"):
            server.psql(f"CREATE DATABASE {database};")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = root / "mlflow-server.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", server.get_uri("tracking"),
             "--artifacts-destination", str(root / "artifacts"), "--serve-artifacts", "--host", "127.0.0.1",
             "--port", str(port), "--workers", "1"],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"})
    try:
        deadline = time.time() + startup_timeout
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=1)
                break
            except OSError:
                if time.time() > deadline or process.poll() is not None:
                    raise LangdecError(f"mlflow server did not start; see {log_path}:\n{log_path.read_text()[-1500:]}") from None
                time.sleep(0.5)
        yield Cluster(server.get_uri("queue"), url, root)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        server.cleanup()


def worker_command(queue: str, study: str, *, heartbeat: int = 2, grace: int = 8) -> list[str]:
    return [sys.executable, "-m", "langdec.cli", "--quiet", "worker", "--storage", queue, "--study", study,
            "--heartbeat", str(heartbeat), "--grace", str(grace)]


def worker_env(tracking: str) -> dict[str, str]:
    return {**os.environ, "MLFLOW_TRACKING_URI": tracking, "MLFLOW_DISABLE_TELEMETRY": "true"}


def write_ladder(folder: Path, name: str, phase: str, runs: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(f"name: {name}\nprofile: smoke\nphase: {phase}\ntiers: [5k]\nseeds: [42]\nruns:\n{runs}")
    return path
