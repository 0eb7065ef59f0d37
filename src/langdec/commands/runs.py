"""Many jobs at once: ladders (here, on SLURM, on Ray), one ladder item, sweeps, the tracking server, and the report."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from langdec.analysis.statistics import FLIP_THRESHOLD
from langdec.commands.common import DEFAULT_LADDER
from langdec.core.errors import LangdecError

if TYPE_CHECKING:
    from langdec.orchestration.scheduling.base import Scheduler
    from langdec.orchestration.scheduling.item import ItemState, Ladder
    from langdec.orchestration.scheduling.records import Seen


def cmd_ladder(args) -> int:
    from langdec.orchestration import ladder, scheduling
    from langdec.orchestration.scheduling import base
    from langdec.tracking import runs as tracking

    if args.status:
        return _ladder_status(args)
    scheduler = base.chosen(args, scheduling.every())
    if scheduler is not None:
        return _ladder_scheduled(args, scheduler)
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


def _ladder_scheduled(args, scheduler: Scheduler) -> int:
    """Each item as a scheduler task running `langdec run-item`; MLflow, not the scheduler, says what is done."""
    from langdec.core.config import named_yaml
    from langdec.orchestration.scheduling import base, item, records
    from langdec.tracking import runs as tracking

    tracking.configure()
    file = Path(args.file) if Path(args.file).exists() else named_yaml("ladders", args.file)
    pin = records.pin(file)  # the file as submitted: what every task runs, whatever edits follow
    ladder = item.load(file, pin.digest)
    options = base.options_from(scheduler, args, supersede=bool(args.supersede or ladder.spec.supersede))
    record = scheduler.submit(ladder, options, pin=pin)
    if not scheduler.waits(options):
        print(f"progress: langdec ladder {args.file} --status")
        return 0
    ended_well = scheduler.wait(record, options)
    done = _print_states(ladder)
    return 0 if ended_well and done else 1


def _ladder_status(args) -> int:
    from langdec.orchestration.scheduling import item
    from langdec.tracking import runs as tracking

    tracking.configure()
    ladder = item.load(args.file)
    _print_states(ladder)
    return 0


def _print_states(ladder: Ladder) -> bool:
    """A table of every item: its state in MLflow beside what its scheduler says; True when every item is done.

    Every remembered submission of the ladder is asked: an item shows its newest submission's word, and every older
    one under which it is still queued or running (a Ray driver started later must not hide a SLURM task)."""
    from langdec.orchestration.scheduling import item

    seen_by = _seen_by(ladder.label)
    rows = item.states(ladder)
    where = "; ".join(_submission(r) for r, _ in seen_by) or "no submission recorded"
    print(f"ladder {ladder.label} in MLflow experiment {ladder.experiment!r}; scheduler: {where}")
    _note_changed(ladder, [r for r, _ in seen_by])
    columns = _scheduler_columns(rows, seen_by)
    width = max(len(r.name) for r in rows)
    sched = max([9, *(len(text) for text, _ in columns)])
    print(f"{'#':>3}  {'item':<{width}}  {'MLflow':<11}  {'version':<7}  {'scheduler':<{sched}}  training run")
    for r, (text, reason) in zip(rows, columns):
        print(
            f"{r.index:>3}  {r.name:<{width}}  {r.state:<11}  {r.version or '-':<7}  {text:<{sched}}  "
            f"{r.train or '-'}{('  ' + r.detail) if r.detail else ''}"
        )
        if reason:
            print(f"{'':>5}{'':<{width}}  why: {reason}")
    done = sum(r.state == "done" for r in rows)
    print(
        f"{done} of {len(rows)} items done"
        + ("; the report: langdec report --experiment " + ladder.experiment if done == len(rows) else "")
    )
    return done == len(rows)


def _seen_by(label: str) -> list[tuple[dict, dict[str, Seen]]]:
    """Newest first: each readable submission of the ladder and what its scheduler says of each item, by name."""
    from langdec.orchestration import scheduling
    from langdec.orchestration.scheduling import records

    seen_by: list[tuple[dict, dict[str, Seen]]] = []
    for record in reversed(records.load_all(label)):
        try:
            states = scheduling.get(record["backend"]).states(record)
        except Exception as exc:  # one unreadable record must not hide the others
            print(
                f"note: the {record.get('backend')} submission of {record.get('submitted', '?')} "
                f"could not be read: {exc}"
            )
            continue
        names = record.get("items", [])
        seen_by.append((record, {names[i]: s for i, s in states.items() if i < len(names)}))
    return seen_by


def _note_changed(ladder: Ladder, submissions: list[dict]) -> None:
    """Say which submissions ran an earlier version of the ladder file than the one the table lists."""
    from langdec.orchestration.scheduling import records

    try:
        now = records.digest(Path(ladder.path).read_bytes())
    except OSError:
        now = None
    changed = [r for r in submissions if r.get("pin") and r["pin"] != now]
    if changed:
        print(
            f"note: {ladder.path} changed since it was submitted ({', '.join(_submission(r) for r in changed)}); "
            "their tasks run the items as submitted, and the table lists the items the file names now"
        )


def _scheduler_columns(rows: list[ItemState], seen_by: list[tuple[dict, dict[str, Seen]]]) -> list[tuple[str, str]]:
    """Per item, the scheduler column and why it ended; an item its scheduler saw cancelled is shown cancelled."""
    columns = []
    for r in rows:
        mine = [(record, states[r.name]) for record, states in seen_by if r.name in states]
        shown = [(record, seen) for n, (record, seen) in enumerate(mine) if n == 0 or seen.live]
        text = "; ".join(f"{_task(record, r.name)}: {seen.state}" for record, seen in shown) or "-"
        newest = mine[0][1] if mine else None
        if newest is not None and newest.state == "ended: cancelled" and r.state not in ("done", "running"):
            # the MLflow runs say preempted or failed: the scheduler knows it was a user's cancel
            r.state = "cancelled"
            r.detail = f"{r.detail}; submitting the ladder again resumes there" if r.detail else ""
        reason = newest.reason if newest is not None and r.state != "done" and not newest.live else ""
        columns.append((text, reason))
    return columns


def _submission(record: dict) -> str:
    from langdec.orchestration import scheduling

    return f"{scheduling.get(record['backend']).describe(record)} ({record.get('submitted', '?')})"


def _task(record: dict, name: str) -> str:
    from langdec.orchestration import scheduling

    return scheduling.get(record["backend"]).describe(record, record.get("items", []).index(name))


def cmd_run_item(args) -> int:
    """One ladder item to the end; the exit status tells a scheduler whether to retry (langdec.failures)."""
    from langdec.core import failures
    from langdec.orchestration.scheduling import item

    try:
        result = item.run(
            args.ladder, args.item, supersede=True if args.supersede else None, progress=not args.quiet, pin=args.pin
        )
    except KeyboardInterrupt:
        item.write_result(130, "interrupted")
        raise
    except Exception as exc:
        item.write_result(failures.exit_code(exc), f"{type(exc).__name__}: {exc}")
        raise
    item.write_result(0, json.dumps(result))
    print(json.dumps(result), flush=True)
    return 0


def cmd_sweep(args) -> int:
    from langdec.orchestration import sweep
    from langdec.tracking import runs as tracking

    study, run_id = sweep.run(args.file, storage=args.storage, progress=not args.quiet)
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    print(
        json.dumps(
            {
                "study": study.study_name,
                "trials": len(study.trials),
                "complete": len(complete),
                "pruned": sum(t.state.name == "PRUNED" for t in study.trials),
                "best": {"eval_loss": study.best_value, "params": study.best_params} if complete else None,
                "sweep_run": run_id,
                "browse": tracking.ui_command(),
            },
            indent=2,
        )
    )
    return 0


def cmd_tracking_server(args) -> int:
    """Start an MLflow tracking server for several machines: PostgreSQL backend, shared artifacts."""
    import os

    store = args.backend_store_uri or os.environ.get("MLFLOW_BACKEND_STORE_URI")
    if not store:
        raise LangdecError(
            "name the database: --backend-store-uri URL, or (keeping its password out of `ps`) "
            "export MLFLOW_BACKEND_STORE_URI=postgresql://user:pass@host/db"
        )
    # the store URL goes to the server through its environment, never its command line (`ps` shows that to everyone)
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--artifacts-destination",
        args.artifacts,
        "--serve-artifacts",
        "--host",
        args.host,
        "--port",
        str(args.port),
        "--workers",
        str(args.workers),
    ]
    print(
        f"MLflow server on http://{args.host}:{args.port}; on every worker: export MLFLOW_TRACKING_URI=http://{args.host}:{args.port}",
        flush=True,
    )
    return _serve_scrubbed(command, {**os.environ, "MLFLOW_BACKEND_STORE_URI": store}, store)


def _serve_scrubbed(command: list[str], env: dict[str, str], secret_url: str) -> int:
    """Run a server (`mlflow server`) with its output passed line by line through `urls.scrub`: its database driver
    quotes the store URL in its errors, and one that misreads a raw '@' in the password names the rest of it as a
    host ('failed to resolve host ...'), again at every retry. Ctrl-C stops it; returns its exit status."""
    import signal
    import subprocess
    import threading

    from langdec.core.urls import scrub

    child = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def pump(source, target) -> None:
        for raw in iter(source.readline, b""):
            target.write(scrub(raw.decode(errors="replace"), secret_url))
            target.flush()
        source.close()

    pumps = [
        threading.Thread(target=pump, args=(child.stdout, sys.stdout), daemon=True),
        threading.Thread(target=pump, args=(child.stderr, sys.stderr), daemon=True),
    ]
    for thread in pumps:
        thread.start()
    try:
        return child.wait()
    except KeyboardInterrupt:
        child.send_signal(signal.SIGINT)  # a server stops cleanly on it, as it would from the terminal
        try:
            child.wait(timeout=20)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        raise
    finally:
        for thread in pumps:
            thread.join(timeout=5)  # the rest of what it said, scrubbed too


def cmd_ui(args) -> int:
    """Refresh the saved views of langdec's experiments, print where each opens, and serve the MLflow UI on the
    tracking store (loopback by default) until interrupted."""
    from mlflow.tracking import MlflowClient

    from langdec.core.urls import redact_url
    from langdec.tracking import runs as tracking
    from langdec.tracking import views as mlflow_views

    uri = tracking.configure()
    views = mlflow_views.load()
    client = MlflowClient()
    if args.experiment:
        found = client.get_experiment_by_name(args.experiment)
        if found is None:
            raise LangdecError(
                f"--experiment {args.experiment}: no such experiment in {redact_url(uri)}; "
                "run a stage first, or leave --experiment out for every langdec experiment"
            )
        experiments = [found]
    else:  # the experiments langdec made (tracking.experiment_id tags each with its kind)
        experiments = [
            e for e in client.search_experiments() if e.tags.get(tracking.EXPERIMENT_KIND[0]) and e.name != "Default"
        ]
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

    return _serve_scrubbed(
        [sys.executable, "-m", "mlflow", "server", "--host", args.host, "--port", str(args.port), "--workers", "1"],
        {**os.environ, "MLFLOW_BACKEND_STORE_URI": uri},
        uri,
    )


def cmd_report(args) -> int:
    from langdec.analysis import report
    from langdec.core import config
    from langdec.core.paths import work_dir
    from langdec.tracking import runs as tracking

    tracking.configure()
    # only the profile's name is needed: building the profile would validate its training section (transformers)
    experiment = args.experiment or tracking.experiment_name(
        config.named_yaml("profiles", args.profile).stem, args.phase
    )
    out = Path(args.out) if args.out else work_dir() / "reports" / experiment
    rep, path = report.run_stage(
        experiment,
        out,
        extractor=args.extractor,
        tier=args.tier,
        by_tier=args.by_tier,
        flip_threshold=args.flip_threshold,
    )
    print(report.print_tables(rep))
    print(f"\nreport: {path}\nbrowse the runs: {tracking.ui_command()}")
    return 0


def register(command) -> None:
    _register_scheduled(command)
    _register_services(command)


def _register_scheduled(command) -> None:
    """`ladder` (its scheduler flags come from each scheduler's options) and `run-item`, what each task runs."""
    from langdec.orchestration import scheduling
    from langdec.orchestration.scheduling import base

    s = command(
        "ladder", help="run a whole ladder: transpile, check, train, evaluate, report; here, on SLURM or on Ray"
    )
    s.add_argument("file", nargs="?", default=DEFAULT_LADDER, help="a ladder YAML (experiments/ladders/)")
    s.add_argument("--supersede", action="store_true", help="re-registered cells replace their old versions")
    s.add_argument(
        "--status", action="store_true", help="each item's state in MLflow beside its scheduler's, then exit"
    )
    base.add_flags(s, scheduling.every())
    s.set_defaults(func=cmd_ladder)

    s = command(
        "run-item", help="run one ladder item to the end (what each scheduler task runs); exit 75 = retry may help"
    )
    s.add_argument("ladder", help="a ladder YAML")
    s.add_argument("item", help="the item's index (0-based, the SLURM array index) or its name (cond2-zh-5k-s42)")
    s.add_argument("--supersede", action="store_true", help="re-registered cells replace their old versions")
    s.add_argument(
        "--pin",
        default=None,
        metavar="SHA256",
        help="the sha256 of the ladder file as submitted: run that version (kept under "
        "LANGDEC_HOME/scheduling/ladders) if the file changed since; exit 2 if neither is there",
    )
    s.set_defaults(func=cmd_run_item)


def _register_services(command) -> None:
    """The search, the tracking server, its UI and the report."""
    s = command("sweep", help="Optuna search over training settings (nested MLflow runs, pruning on validation loss)")
    s.add_argument("file", help="experiments/sweeps/NAME.yaml")
    s.add_argument(
        "--storage", default=None, help="Optuna storage URL to share or resume the search (default: in memory)"
    )
    s.set_defaults(func=cmd_sweep)

    s = command("tracking-server", help="start an MLflow tracking server (PostgreSQL backend, shared artifact store)")
    s.add_argument(
        "--backend-store-uri",
        default=None,
        help="postgresql://user:pass@host/db (default: $MLFLOW_BACKEND_STORE_URI, "
        "which keeps the password off the command line)",
    )
    s.add_argument("--artifacts", required=True, help="shared path or s3://bucket/prefix")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=5000)
    s.add_argument("--workers", type=int, default=2)
    s.set_defaults(func=cmd_tracking_server)

    s = command(
        "ui",
        help="the MLflow UI on the tracking store, with langdec's saved views (experiments/views.yaml) and their links",
    )
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
    s.add_argument(
        "--flip-threshold",
        type=float,
        default=FLIP_THRESHOLD,
        help="a conclusion flips when |delta| exceeds this under both extractors with opposite signs (the study: 0.01)",
    )
    s.add_argument("--extractor", default="refined")
    s.add_argument("--out", default=None)
    s.set_defaults(func=cmd_report)
