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
from typing import TYPE_CHECKING

from langdec.core.errors import LangdecError
from langdec.orchestration.scheduling import launch, records
from langdec.orchestration.scheduling.base import Flag, ItemOptions, option

if TYPE_CHECKING:
    from langdec.orchestration.scheduling.item import Ladder

SENT_PREFIXES = ("LANGDEC_", "MLFLOW_", "HF_", "TRANSFORMERS_", "TOKENIZERS_")
SECRET_NAME = re.compile(r"TOKEN|PASSWORD|SECRET|KEY|CREDENTIAL|AUTH", re.IGNORECASE)


class RetryableItem(Exception):
    """The item ended in a way a new attempt may cure (`Ray` retries these, and nothing else raised by a task)."""


class ItemFailed(Exception):
    """The item would fail the same way again (a configuration or data error, or a bug)."""


SELECTOR = Flag(
    "--ray",
    nargs="?",
    const="",
    metavar="ADDRESS",
    help="run the items as Ray tasks on the cluster at ADDRESS (default: RAY_ADDRESS, else a local instance)",
)


@dataclass
class Options(ItemOptions):
    # the cluster's head; a bare --ray (None) lets Ray take RAY_ADDRESS, else start a local instance
    address: str | None = option(SELECTOR, convert=lambda given: given or None)
    cpus_per_item: float = 1


def _run_item(
    ladder: str, label: str, index: int, name: str, gpus: int, supersede: bool, pin: records.Pin | None = None
) -> dict:
    """The Ray task: one item in a child process, its outcome mapped to retry or not. `pin`: the ladder file as the
    driver read it, so the item is the one submitted at `index` even if the file changed since."""
    import ray

    context = ray.get_runtime_context()
    where = f"ray node {context.get_node_id()[:12]} task {context.get_task_id()[:16]}"
    from langdec.core.paths import work_dir

    start = time.time()
    if pin is not None:
        records.keep(pin)  # this node's copy, for `run-item --pin`
    log = work_dir() / "ray" / label / f"{index}-{name}.log"  # on the node that ran it; every attempt appended
    procs = max(1, int(gpus))
    cmd = launch.command(ladder, index, gpus=procs, supersede=supersede, pin=pin.digest if pin else None)
    child = launch.Child(cmd, env={**os.environ, "LANGDEC_RAY_PLACEMENT": where}, log=log, processes=procs)
    ended = child.wait()
    if ended.code == 0:
        return {
            **ended.result,
            "item": name,
            "index": index,
            "where": where,
            "gpus": os.environ.get("CUDA_VISIBLE_DEVICES", ""),
            "seconds": round(time.time() - start, 1),
            "log": str(log),
        }
    if ended.retryable:
        time.sleep(launch.retry_pause(0))  # Ray retries at once; an outage needs a moment to pass
        raise RetryableItem(f"item {name} on {where}: {ended.detail} (log: {log})")
    raise ItemFailed(f"item {name} on {where}: {ended.detail} (exit status {ended.code}, not retried; log: {log})")


def environment() -> dict[str, str]:
    """The settings the items need, without secrets."""
    from langdec.core.urls import without_secrets

    sent = {}
    for name, value in os.environ.items():
        if not name.startswith(SENT_PREFIXES) or SECRET_NAME.search(name):
            continue
        if without_secrets(value) != value:  # a URL with a password in it: the nodes must have it themselves
            continue
        sent[name] = value
    sent.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    return sent


def _connect(address: str | None, echo):
    """Ray, joined to the cluster at `address` (None or "local": RAY_ADDRESS, else a local instance)."""
    try:
        import ray
    except ImportError:
        raise LangdecError("--ray needs Ray: pip install 'langdec[ray]'") from None
    from langdec.core.paths import default_tracking_uri

    if default_tracking_uri().startswith("sqlite:") and address not in (None, "local"):
        echo(
            "note: the tracking store is a SQLite file on this machine; Ray nodes elsewhere cannot reach it. "
            "Point MLFLOW_TRACKING_URI at `langdec tracking-server` for a multi-machine cluster."
        )
    try:
        ray.init(
            address=None if address in (None, "local") else address,
            runtime_env={"env_vars": environment()},
            logging_level="WARNING",
            log_to_driver=False,
            ignore_reinit_error=True,
        )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise LangdecError(
            f"cannot reach the Ray cluster at {address}: {str(exc).splitlines()[0][:200]}; "
            "check the address (`ray status` on the head node prints it)"
        ) from None
    return ray


def _outcome(done, index: int, name: str) -> dict:
    """What the task of item `index` ended with: its result ("done", or "reused" when MLflow had every stage), or why
    it failed."""
    import ray
    from ray.exceptions import RayError, RayTaskError

    try:
        return {"status": "done", **ray.get(done)}
    except RayTaskError as exc:
        cause = exc.cause if getattr(exc, "cause", None) is not None else exc
        return {"item": name, "index": index, "status": "failed", "detail": str(cause).strip().splitlines()[-1][:400]}
    except RayError as exc:  # a worker or node lost more often than max_retries allows
        return {
            "item": name,
            "index": index,
            "status": "failed",
            "detail": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}",
        }


def describe(record: dict, index: int | None = None) -> str:
    """How `--status` names this submission, and its task of item `index` (the driver's cluster, both)."""
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
            states[i] = (
                records.Seen(f"under driver pid {driver['pid']}", live=True)
                if alive
                else records.Seen(
                    "driver stopped before it ended", "run the ladder with --ray again: finished stages are reused"
                )
            )
    return states


def _process_start(pid: int) -> str:
    """The process's start time in clock ticks since boot (/proc), which tells a live pid from a reused one."""
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _driver_alive(driver: dict) -> bool | None:
    """Whether the driver that made the record still runs; None when this machine cannot tell (another host)."""
    from langdec.tracking.lease import machine

    if not driver or driver.get("host") != machine():
        return None
    pid = int(driver.get("pid") or 0)
    return pid > 0 and _process_start(pid) != "" and _process_start(pid) == driver.get("started")


class Ray:
    """`langdec ladder --ray [ADDRESS]`: each item one Ray task; this process is their driver and waits for them."""

    name = "ray"
    selector = SELECTOR
    group = None
    Options = Options
    states = staticmethod(scheduler_states)
    describe = staticmethod(describe)

    def __init__(self) -> None:
        self._driving: dict[str, tuple[dict, Ladder]] = {}  # record id -> (task -> item index, the ladder)

    def submit(self, ladder: Ladder, options: Options, *, pin: records.Pin | None = None, echo=print) -> dict:
        """Start every item as a Ray task; `wait` then hears their outcomes. `pin`: the ladder file as read for this
        submission (`records.pin`)."""
        ray = _connect(options.address, echo)
        # a bare --ray joins RAY_ADDRESS when it is set (`langdec cluster up` exports it): say so, and record it
        address = options.address or os.environ.get("RAY_ADDRESS") or None
        task = ray.remote(
            num_gpus=options.gpus_per_item,
            num_cpus=options.cpus_per_item,
            max_retries=options.max_retries,
            retry_exceptions=[RetryableItem],
        )(_run_item)
        pending = {
            task.remote(
                str(ladder.path), ladder.label, i, job.run_name, int(options.gpus_per_item), options.supersede, pin
            ): i
            for i, job in enumerate(ladder.items)
        }
        from langdec.tracking.lease import machine

        # the driver is the only one that hears the outcomes: `--status` tells a live driver from one that stopped
        record = {
            "backend": "ray",
            "id": f"ray-{machine()}-{os.getpid()}-{time.time_ns()}",
            "address": address or "local",
            "items": ladder.names,
            "ladder": str(ladder.path),
            "pin": pin.digest if pin else None,
            "driver": {"host": machine(), "pid": os.getpid(), "started": _process_start(os.getpid())},
            "submitted": time.strftime("%Y-%m-%d %H:%M:%S"),
            "outcomes": {},
        }
        records.save(ladder.label, record)
        echo(
            f"{len(pending)} items of {ladder.label} on Ray ({address or 'a local instance'}), "
            f"{options.gpus_per_item} GPU(s) each, up to {options.max_retries} retries"
        )
        self._driving[record["id"]] = (pending, ladder)
        return record

    @staticmethod
    def waits(options: Options) -> bool:
        return True  # Ray ends a driver's tasks with the driver

    def wait(self, record: dict, options: Options, *, echo=print) -> bool:
        """Each item's outcome as its task ends, kept in the record for `--status`; False when one failed."""
        import ray

        if record.get("id") not in self._driving:
            raise LangdecError(
                f"the Ray submission {record.get('id')} has another driver: only it hears the items end; "
                "`langdec ladder FILE --status` shows them"
            )
        pending, ladder = self._driving.pop(record["id"])
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            index = pending.pop(done[0])
            name = ladder.names[index]
            outcome = _outcome(done[0], index, name)
            record["outcomes"][name] = outcome
            records.save(ladder.label, record)
            echo(
                f"[{len(record['outcomes'])}/{len(ladder.items)}] {name}: {outcome['status']}"
                + (
                    f" on {outcome.get('where')} (GPUs {outcome.get('gpus') or '-'}) in {outcome.get('seconds')}s"
                    if outcome["status"] != "failed"
                    else f": {outcome.get('detail')}"
                )
            )
        return not any(o["status"] == "failed" for o in record["outcomes"].values())


SCHEDULER = Ray()
