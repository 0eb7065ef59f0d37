"""`langdec`: one command per stage of the study. Every MLproject entry point calls this.

The commands live with their stage in `langdec.commands`; this module builds the parser from them
and dispatches. Errors a user can fix print one line naming the file/row/key and what to do, and
exit with status 2; nothing is half-written.
"""

from __future__ import annotations

import argparse
import os
import sys

from . import commands, failures
from .errors import EXIT_CONFIG, EXIT_RETRY, LangdecError
from .urls import scrub, scrub_logging, without_secrets


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="langdec", description="The Language Decoded study, stage by stage.")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a subcommand without --quiet must not reset `langdec --quiet CMD`
    common.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress bars")
    sub = p.add_subparsers(dest="command", required=True)

    def command(name: str, **kwargs) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], **kwargs)  # every command takes --quiet

    for module in commands.MODULES:
        module.register(command)
    return p


def _mlflow_project_run() -> str | None:
    """Under `mlflow run`, MLFLOW_RUN_ID names the run MLflow made for the entry point, in whatever experiment
    `mlflow run` was given (Default unless --experiment-name). langdec's runs go to their phase experiment under
    their ladder run and are never parented across experiments, so that run would stay behind empty; it is
    taken out of the environment here and removed once MLflow has finished with it (`_retire`)."""
    return os.environ.pop("MLFLOW_RUN_ID", None)


def _retire(run_id: str, argv: list[str]) -> None:
    """Name the entry point's run for what it launched and have it deleted once MLflow marks it terminated.
    The delete cannot happen here: after this process exits, `mlflow run` terminates the run, and MLflow
    3.17 does so even when it already is terminated (`_maybe_set_run_terminated` compares the status
    string with RunStatus numbers), which a deleted run refuses with an error. So a detached process waits
    for the termination (`tracking.delete_when_terminated`) and deletes it then; it stays in MLflow's trash,
    restorable, until `mlflow gc`."""
    import subprocess

    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from . import tracking

    tracking.configure()
    client = MlflowClient()
    # a URL argument can carry credentials (--base-url, --storage): never into MLflow
    shown = [without_secrets(a) for a in argv if a != "--quiet"]
    try:
        client.set_tag(run_id, "mlflow.runName", "mlflow run: langdec " + " ".join(shown[:4])[:80])
        client.set_tag(run_id, "mlflow.note.content", "`mlflow run` made this run for `langdec " + " ".join(shown) + "`; langdec "
                       "removed it. langdec's own runs are in the phase experiment (phase-3, phase-3-smoke, ...), under their "
                       "ladder run; filter there by tags.`langdec.stage`.")
        client.set_tag(run_id, "langdec.stage", "mlflow-run")
    except (MlflowException, OSError) as exc:  # the command's own outcome stands; only the empty run stays
        print(f"note: mlflow run's entry-point run {run_id} was left as it is ({str(exc).splitlines()[0][:160]})", file=sys.stderr)
        return
    # the store comes to it as it came here (environment and working directory), never on a command line
    subprocess.Popen([sys.executable, "-c", "import sys; from langdec import tracking; "
                      "tracking.delete_when_terminated(tracking.configure(), sys.argv[1])", run_id],
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def _quiet_libraries() -> None:
    """Library progress bars (dataset maps, artifact downloads, weight loading) drown the
    stage output; langdec shows its own progress per job instead."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    import logging

    logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)
    # bitsandbytes looks for an optional CPU kernel package on import and warns on every command
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
    # ... through the `kernels` package, which says offline that it skipped a trust check it never needed
    logging.getLogger("kernels").setLevel(logging.ERROR)
    import warnings

    # peft asks transformers 5 for a renamed attribute on every adapter load
    warnings.filterwarnings("ignore", message=r".*is_gradient_checkpointing.* is deprecated", category=FutureWarning)


def _disk_full(exc: BaseException) -> str | None:
    """" writing FILE" (or "") when the error, or one it was raised from, is a full disk or quota; else None."""
    import errno

    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return f" writing {exc.filename}" if exc.filename else ""
        if "database or disk is full" in str(exc):
            return " (the tracking store's database)"
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


def main(argv: list[str] | None = None) -> int:
    _quiet_libraries()
    scrub_logging()  # a store URL's password never reaches the terminal through a library's log line
    args = parser().parse_args(argv)
    entry_run = _mlflow_project_run()
    try:
        return args.func(args)
    except LangdecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return failures.exit_code(exc)  # EXIT_RETRY for a preemption, else EXIT_CONFIG
    except KeyboardInterrupt:
        print("interrupted; re-run the same command to resume", file=sys.stderr)
        return 130
    except Exception as exc:
        full = _disk_full(exc)
        if full is not None:
            print(f"error: no space left on the device{full}; free some space and re-run the same command (outputs are "
                  "written whole or not at all, finished stages are reused)", file=sys.stderr)
            return EXIT_CONFIG
        reason = failures.retry_reason(exc)
        if reason is None:
            raise
        from .paths import default_tracking_uri

        detail = scrub(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}", default_tracking_uri())[:300]
        print(f"error: {detail} ({reason}); this may succeed when run again: finished stages are reused and training "
              f"resumes from its last checkpoint (exit status {EXIT_RETRY} tells a scheduler to retry)", file=sys.stderr)
        return EXIT_RETRY
    finally:
        if entry_run:
            _retire(entry_run, list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
