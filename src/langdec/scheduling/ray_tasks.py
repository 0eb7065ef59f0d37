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


def _run_item(ladder: str, label: str, index: int, name: str, gpus: int, supersede: bool) -> dict:
    """The Ray task: one item in a child process, its outcome mapped to retry or not."""
    import ray

    context = ray.get_runtime_context()
    where = f"ray node {context.get_node_id()[:12]} task {context.get_task_id()[:16]}"
    from ..paths import work_dir

    start = time.time()
    log = work_dir() / "ray" / label / f"{index}-{name}.log"  # on the node that ran it; every attempt appended
    child = launch.Child(launch.command(ladder, index, gpus=max(1, int(gpus)), supersede=supersede),
                         env={**os.environ, "LANGDEC_RAY_PLACEMENT": where}, log=log)
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


def run(ladder: Ladder, address: str | None, options: Options, echo=print) -> list[dict]:
    """Run every item as a Ray task and wait for all of them; returns one outcome per item, in ladder order."""
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
    pending = {task.remote(str(ladder.path), ladder.label, i, job.run_name, int(options.gpus_per_item), options.supersede): i
               for i, job in enumerate(ladder.items)}
    record = {"backend": "ray", "address": address or "local", "items": ladder.names, "ladder": str(ladder.path),
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


def scheduler_states(record: dict) -> dict[int, str]:
    """index -> how the last driver saw the item end (Ray keeps no state once the driver is gone)."""
    outcomes = record.get("outcomes", {})
    return {i: (f"ended: {outcomes[n]['status']}" if n in outcomes else "not reported by the driver")
            for i, n in enumerate(record["items"])}
