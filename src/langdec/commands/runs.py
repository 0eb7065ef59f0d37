"""Many jobs at once: ladders, queue workers, sweeps, the tracking server, and the report over them."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import LangdecError
from .common import DEFAULT_LADDER


def cmd_ladder(args) -> int:
    from .. import ladder, tracking, workqueue

    if args.file == "status":
        if not (args.storage and args.study):
            raise LangdecError("usage: langdec ladder status --storage URL --study NAME")
        print(json.dumps(workqueue.status(args.storage, args.study), indent=2))
        return 0
    if args.storage:
        name, added, present = workqueue.enqueue(args.file, args.storage)
        print(f"study {name}: {added} items enqueued, {present} already there")
        print(f"run on each machine:  langdec worker --storage '{workqueue._redact(args.storage)}' --study {name}")
        print(f"progress:             langdec ladder status --storage '{workqueue._redact(args.storage)}' --study {name}")
        return 0

    result = ladder.run(args.file, supersede=True if args.supersede else None, progress=not args.quiet)
    print()
    print(result.table)
    print()
    print(f"report: {result.report_path}")
    print(f"{len(result.outcomes) - len(result.failed)} of {len(result.outcomes)} jobs ok in {result.seconds:.0f}s")
    for failed in result.failed:
        print(f"FAILED {failed.job.run_name}: {failed.detail.splitlines()[0]}")
    print(f"browse the runs: {tracking.ui_command()}")
    return 1 if result.failed else 0

def cmd_worker(args) -> int:
    from .. import tracking, workqueue

    result = workqueue.work(args.storage, args.study, heartbeat=args.heartbeat, grace=args.grace, max_items=args.max_items,
                            progress=not args.quiet)
    print(json.dumps({"done": result.done, "failed": result.failed, "browse": tracking.ui_command()}, indent=2))
    return 1 if result.failed else 0

def cmd_sweep(args) -> int:
    from .. import sweep, tracking

    study, run_id = sweep.run(args.file, storage=args.storage, progress=not args.quiet)
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    print(json.dumps({"study": study.study_name, "trials": len(study.trials), "complete": len(complete),
                      "pruned": sum(t.state.name == "PRUNED" for t in study.trials),
                      "best": {"eval_loss": study.best_value, "params": study.best_params} if complete else None,
                      "sweep_run": run_id, "browse": tracking.ui_command()}, indent=2))
    return 0

def cmd_tracking_server(args) -> int:
    """Start an MLflow tracking server for several machines: PostgreSQL backend, shared artifacts."""
    import subprocess

    import os

    store = args.backend_store_uri or os.environ.get("MLFLOW_BACKEND_STORE_URI")
    if not store:
        raise LangdecError("name the database: --backend-store-uri URL, or (keeping its password out of `ps`) "
                           "export MLFLOW_BACKEND_STORE_URI=postgresql://user:pass@host/db")
    # the store URL goes to the server through its environment, never its command line (`ps` shows that to everyone)
    command = [sys.executable, "-m", "mlflow", "server", "--artifacts-destination", args.artifacts, "--serve-artifacts",
               "--host", args.host, "--port", str(args.port), "--workers", str(args.workers)]
    print(f"MLflow server on http://{args.host}:{args.port}; on every worker: export MLFLOW_TRACKING_URI=http://{args.host}:{args.port}",
          flush=True)
    return subprocess.call(command, env={**os.environ, "MLFLOW_BACKEND_STORE_URI": store})

def cmd_ui(args) -> int:
    """Refresh the saved views of langdec's experiments, print where each opens, and serve the MLflow UI on the
    tracking store (loopback by default) until interrupted."""
    import subprocess

    from mlflow.tracking import MlflowClient

    from .. import mlflow_views, tracking
    from ..urls import redact_url

    uri = tracking.configure()
    views = mlflow_views.load()
    client = MlflowClient()
    if args.experiment:
        found = client.get_experiment_by_name(args.experiment)
        if found is None:
            raise LangdecError(f"--experiment {args.experiment}: no such experiment in {redact_url(uri)}; "
                               "run a stage first, or leave --experiment out for every langdec experiment")
        experiments = [found]
    else:  # the experiments langdec made (tracking.experiment_id tags each with its kind)
        experiments = [e for e in client.search_experiments() if e.tags.get(tracking.EXPERIMENT_KIND[0]) and e.name != "Default"]
    remote = uri.startswith(("http://", "https://"))
    base = args.base_url or (redact_url(uri) if remote else f"http://{args.host}:{args.port}")
    for exp in experiments:
        mlflow_views.publish(exp.experiment_id, views)
        print(f"{exp.name}:")
        print(f"  {'runs':<22} {mlflow_views.url(base, exp.experiment_id)}")
        for view in views:
            print(f"  {view.id:<22} {mlflow_views.url(base, exp.experiment_id, view.id)}")
    if not experiments:
        print("no langdec experiment yet: run `make demo` (or any langdec stage) first")
    if remote or args.no_serve:
        return 0
    print(f"serving the MLflow UI on {base} (Ctrl-C stops it)", flush=True)
    # the store URL (a database password, say) through the environment, never the command line
    import os

    return subprocess.call([sys.executable, "-m", "mlflow", "server", "--host", args.host, "--port", str(args.port), "--workers", "1"],
                           env={**os.environ, "MLFLOW_BACKEND_STORE_URI": uri})


def cmd_report(args) -> int:
    from .. import config, report, tracking
    from ..paths import work_dir

    tracking.configure()
    # only the profile's name is needed: building the profile would validate its training section (transformers)
    experiment = args.experiment or tracking.experiment_name(config.named_yaml("profiles", args.profile).stem, args.phase)
    out = Path(args.out) if args.out else work_dir() / "reports" / experiment
    rep, path = report.run_stage(experiment, out, extractor=args.extractor, tier=args.tier, by_tier=args.by_tier,
                                 flip_threshold=args.flip_threshold)
    print(report.print_tables(rep))
    print(f"\nreport: {path}\nbrowse the runs: {tracking.ui_command()}")
    return 0


def register(command) -> None:
    s = command("ladder", help="run a whole ladder: transpile, check, train, evaluate, report")
    s.add_argument("file", nargs="?", default=DEFAULT_LADDER, help="a ladder YAML, or 'status' with --storage and --study")
    s.add_argument("--supersede", action="store_true", help="re-registered cells replace their old versions")
    s.add_argument("--storage", default=None, help="postgresql://... : enqueue the items for `langdec worker` instead of running them")
    s.add_argument("--study", default=None, help="with 'status': the queue's study name")
    s.set_defaults(func=cmd_ladder)

    s = command("worker", help="pull ladder items from the PostgreSQL queue and run them until none remain")
    s.add_argument("--storage", required=True)
    s.add_argument("--study", required=True)
    s.add_argument("--heartbeat", type=int, default=30, help="seconds between heartbeats")
    s.add_argument("--grace", type=int, default=120, help="seconds without heartbeat before an item is retried elsewhere")
    s.add_argument("--max-items", type=int, default=None)
    s.set_defaults(func=cmd_worker)

    s = command("sweep", help="Optuna search over training settings (nested MLflow runs, pruning on validation loss)")
    s.add_argument("file", help="experiments/sweeps/NAME.yaml")
    s.add_argument("--storage", default=None, help="Optuna storage URL to share or resume the search (default: in memory)")
    s.set_defaults(func=cmd_sweep)

    s = command("tracking-server", help="start an MLflow tracking server (PostgreSQL backend, shared artifact store)")
    s.add_argument("--backend-store-uri", default=None, help="postgresql://user:pass@host/db (default: $MLFLOW_BACKEND_STORE_URI, "
                   "which keeps the password off the command line)")
    s.add_argument("--artifacts", required=True, help="shared path or s3://bucket/prefix")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=5000)
    s.add_argument("--workers", type=int, default=2)
    s.set_defaults(func=cmd_tracking_server)

    s = command("ui", help="the MLflow UI on the tracking store, with langdec's saved views (experiments/views.yaml) and their links")
    s.add_argument("--experiment", default=None, help="only this experiment (default: every experiment langdec made)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=5000)
    s.add_argument("--base-url", default=None, help="print links for a UI already served at this URL")
    s.add_argument("--no-serve", action="store_true", help="write the views and print the links only")
    s.set_defaults(func=cmd_ui)

    s = command("report", help="compare every condition with the baseline; writes Markdown, JSON and a heat-map")
    s.add_argument("--profile", default="smoke")
    s.add_argument("--phase", default="phase-3")
    s.add_argument("--experiment", default=None, help="report this experiment instead (e.g. imported-phase-3)")
    s.add_argument("--tier", default=None, help="only this tier (a report never pools tiers)")
    s.add_argument("--by-tier", action="store_true", help="report each tier of a condition as its own row")
    s.add_argument("--flip-threshold", type=float, default=0.01,
                   help="a conclusion flips when |delta| exceeds this under both extractors with opposite signs (the study: 0.01)")
    s.add_argument("--extractor", default="refined")
    s.add_argument("--out", default=None)
    s.set_defaults(func=cmd_report)
