"""Ray: each item of the ladder as one Ray task on a cluster of GPU machines (`ray start` on each).

- Placement: `num_gpus` per task; Ray gives each its GPUs (CUDA_VISIBLE_DEVICES) on some node.
- The item runs in a child process of the task's worker (`launch.Child`): a node that dies takes the item with it,
  and Ray runs the task again elsewhere (`max_retries` counts lost nodes and workers).
- Retries: a task raises `RetryableItem` only for a retryable exit (`langdec.failures`) or a death by signal, and
  only those exceptions are retried; a configuration error fails once.
- The driver (this command) waits for every item. Stop it and start it again: the items that finished are reused
  from MLflow in seconds and the others resume, training from their last checkpoint.
- Logs: each item's output goes to LANGDEC_HOME/ray/LADDER-PHASE/INDEX-ITEM.log on the node that ran it.
- Secrets never travel through Ray (its runtime environment is visible on the dashboard): set API keys and tokens
  in the environment of `ray start` on each node. The driver passes langdec's, MLflow's and Hugging Face's other
  settings (LANGDEC_*, MLFLOW_*, HF_*), leaving out any whose name or value looks like a secret.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass

from ..errors import LangdecError
from . import launch, records
from .item import Ladder

SENT_PREFIXES = ("LANGDEC_", "MLFLOW_", "HF_", "TRANSFORMERS_", "TOKENIZERS_")
SECRET_NAME = re.compile(r"TOKEN|PASSWORD|SECRET|KEY|CREDENTIAL|AUTH", re.IGNORECASE)


class RetryableItem(Exception):
    """The item ended in a way a new attempt may cure (`Ray` retries these, and nothing else raised by a task)."""


class ItemFailed(Exception):
    """The item would fail the same way again (a configuration or data error, or a bug)."""


@dataclass
class Options:
    gpus_per_item: float = 1
    cpus_per_item: float = 1
    max_retries: int = 3
    supersede: bool = False


def _run_item(ladder: str, label: str, index: int, name: str, gpus: int, supersede: bool,
              pin: records.Pin | None = None) -> dict:
    """The Ray task: one item in a child process, its outcome mapped to retry or not. `pin`: the ladder file as the
    driver read it, so the item is the one submitted at `index` even if the file changed since."""
    import ray

    context = ray.get_runtime_context()
    where = f"ray node {context.get_node_id()[:12]} task {context.get_task_id()[:16]}"
    from ..paths import work_dir

    start = time.time()
    if pin is not None:
        records.keep(pin)  # this node's copy, for `run-item --pin`
    log = work_dir() / "ray" / label / f"{index}-{name}.log"  # on the node that ran it; every attempt appended
    procs = max(1, int(gpus))
    cmd = launch.command(ladder, index, gpus=procs, supersede=supersede, pin=pin.digest if pin else None)
    child = launch.Child(cmd,
                         env={**os.environ, "LANGDEC_RAY_PLACEMENT": where}, log=log, processes=procs)
    ended = child.wait()
    if ended.code == 0:
        return {**ended.result, "item": name, "index": index, "where": where, "gpus": os.environ.get("CUDA_VISIBLE_DEVICES", ""),
                "seconds": round(time.time() - start, 1), "log": str(log)}
    if ended.retryable:
        time.sleep(launch.retry_pause(0))  # Ray retries at once; an outage needs a moment to pass
        raise RetryableItem(f"item {name} on {where}: {ended.detail} (log: {log})")
    raise ItemFailed(f"item {name} on {where}: {ended.detail} (exit status {ended.code}, not retried; log: {log})")


def environment() -> dict[str, str]:
    """The settings the items need, without secrets."""
    from ..urls import without_secrets

    sent = {}
    for name, value in os.environ.items():
        if not name.startswith(SENT_PREFIXES) or SECRET_NAME.search(name):
            continue
        if without_secrets(value) != value:  # a URL with a password in it: the nodes must have it themselves
            continue
        sent[name] = value
    sent.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    return sent


def run(ladder: Ladder, address: str | None, options: Options, echo=print,
        pin: records.Pin | None = None) -> list[dict]:
    """Run every item as a Ray task and wait for all of them; returns one outcome per item, in ladder order. `pin`:
    the ladder file as read for this submission (`records.pin`)."""
    try:
        import ray
        from ray.exceptions import RayError, RayTaskError
    except ImportError:
        raise LangdecError("--ray needs Ray: pip install 'langdec[ray]'") from None
    from ..paths import default_tracking_uri

    if default_tracking_uri().startswith("sqlite:") and address not in (None, "local"):
        echo("note: the tracking store is a SQLite file on this machine; Ray nodes elsewhere cannot reach it. "
             "Point MLFLOW_TRACKING_URI at `langdec tracking-server` for a multi-machine cluster.")
    try:
        ray.init(address=None if address in (None, "local") else address, runtime_env={"env_vars": environment()},
                 logging_level="WARNING", log_to_driver=False, ignore_reinit_error=True)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise LangdecError(f"cannot reach the Ray cluster at {address}: {str(exc).splitlines()[0][:200]}; "
                           "check the address (`ray status` on the head node prints it)") from None
    task = ray.remote(num_gpus=options.gpus_per_item, num_cpus=options.cpus_per_item, max_retries=options.max_retries,
                      retry_exceptions=[RetryableItem])(_run_item)
    pending = {task.remote(str(ladder.path), ladder.label, i, job.run_name, int(options.gpus_per_item),
                           options.supersede, pin): i for i, job in enumerate(ladder.items)}
    from ..tracking import machine

    # the driver is the only one that hears the outcomes: `--status` tells a live driver from one that stopped
    record = {"backend": "ray", "id": f"ray-{machine()}-{os.getpid()}-{time.time_ns()}", "address": address or "local",
              "items": ladder.names, "ladder": str(ladder.path), "pin": pin.digest if pin else None,
              "driver": {"host": machine(), "pid": os.getpid(), "started": _process_start(os.getpid())},
              "submitted": time.strftime("%Y-%m-%d %H:%M:%S"), "outcomes": {}}
    records.save(ladder.label, record)
    echo(f"{len(pending)} items of {ladder.label} on Ray ({address or 'a local instance'}), "
         f"{options.gpus_per_item} GPU(s) each, up to {options.max_retries} retries")
    outcomes: dict[int, dict] = {}
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        index = pending.pop(done[0])
        name = ladder.names[index]
        try:
            outcome = {"status": "done", **ray.get(done[0])}  # or "reused": MLflow had every stage
        except RayTaskError as exc:
            cause = exc.cause if getattr(exc, "cause", None) is not None else exc
            outcome = {"item": name, "index": index, "status": "failed", "detail": str(cause).strip().splitlines()[-1][:400]}
        except RayError as exc:  # a worker or node lost more often than max_retries allows
            outcome = {"item": name, "index": index, "status": "failed", "detail": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}"}
        outcomes[index] = outcome
        record["outcomes"][name] = outcome
        records.save(ladder.label, record)
        echo(f"[{len(outcomes)}/{len(ladder.items)}] {name}: {outcome['status']}"
             + (f" on {outcome.get('where')} (GPUs {outcome.get('gpus') or '-'}) in {outcome.get('seconds')}s" if outcome["status"] != "failed"
                else f": {outcome.get('detail')}"))
    return [outcomes[i] for i in range(len(ladder.items))]


def describe(record: dict, index: int) -> str:
    """How `--status` names this submission's task of item `index`."""
    return f"ray {record.get('address', '')}".strip()


def scheduler_states(record: dict) -> dict[int, records.Seen]:
    """index -> how the driver saw the item end; an item it has not reported is running under it while the driver
    lives (Ray keeps no state once the driver is gone)."""
    outcomes = record.get("outcomes", {})
    alive = _driver_alive(record.get("driver") or {})
    states = {}
    for i, name in enumerate(record.get("items", [])):
        outcome = outcomes.get(name)
        if outcome is not None:
            status = outcome.get("status", "?")
            states[i] = records.Seen(f"ended: {status}", outcome.get("detail", "") if status == "failed" else "")
        elif alive is None:
            states[i] = records.Seen("not reported by the driver")
        else:
            driver = record["driver"]
            states[i] = (records.Seen(f"under driver pid {driver['pid']}", live=True) if alive else
                         records.Seen("driver stopped before it ended",
                                      "run the ladder with --ray again: finished stages are reused"))
    return states


def _process_start(pid: int) -> str:
    """The process's start time in clock ticks since boot (/proc), which tells a live pid from a reused one."""
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _driver_alive(driver: dict) -> bool | None:
    """Whether the driver that made the record still runs; None when this machine cannot tell (another host)."""
    from ..tracking import machine

    if not driver or driver.get("host") != machine():
        return None
    pid = int(driver.get("pid") or 0)
    return pid > 0 and _process_start(pid) != "" and _process_start(pid) == driver.get("started")
