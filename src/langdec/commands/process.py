"""What the `langdec` process does around every command, whichever it is: libraries kept quiet, the run
`mlflow run` made for its entry point taken out and retired, a full disk recognised in an error."""

from __future__ import annotations

import os
import sys

from langdec.core.urls import without_secrets


def take_entry_run() -> str | None:
    """Under `mlflow run`, MLFLOW_RUN_ID names the run MLflow made for the entry point, in whatever experiment
    `mlflow run` was given (Default unless --experiment-name). langdec's runs go to their phase experiment under
    their ladder run and are never parented across experiments, so that run would stay behind empty; it is
    taken out of the environment here and removed once MLflow has finished with it (`retire_entry_run`)."""
    return os.environ.pop("MLFLOW_RUN_ID", None)


def retire_entry_run(run_id: str, argv: list[str]) -> None:
    """Name the entry point's run for what it launched and have it deleted once MLflow marks it terminated.
    The delete cannot happen here: after this process exits, `mlflow run` terminates the run, and MLflow
    3.17 does so even when it already is terminated (`_maybe_set_run_terminated` compares the status
    string with RunStatus numbers), which a deleted run refuses with an error. So a detached process waits
    for the termination (`tracking.delete_when_terminated`) and deletes it then; it stays in MLflow's trash,
    restorable, until `mlflow gc`."""
    import subprocess

    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from langdec.tracking import runs as tracking

    tracking.configure()
    client = MlflowClient()
    # a URL argument can carry credentials (--base-url, --storage): never into MLflow
    shown = [without_secrets(a) for a in argv if a != "--quiet"]
    try:
        client.set_tag(run_id, "mlflow.runName", "mlflow run: langdec " + " ".join(shown[:4])[:80])
        client.set_tag(
            run_id,
            "mlflow.note.content",
            "`mlflow run` made this run for `langdec " + " ".join(shown) + "`; langdec "
            "removed it. langdec's own runs are in the phase experiment (phase-3, phase-3-smoke, ...), under their "
            "ladder run; filter there by tags.`langdec.stage`.",
        )
        client.set_tag(run_id, "langdec.stage", "mlflow-run")
    except (MlflowException, OSError) as exc:  # the command's own outcome stands; only the empty run stays
        print(
            f"note: mlflow run's entry-point run {run_id} was left as it is ({str(exc).splitlines()[0][:160]})",
            file=sys.stderr,
        )
        return
    # the store comes to it as it came here (environment and working directory), never on a command line
    subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from langdec.tracking import runs as tracking; "
            "tracking.delete_when_terminated(tracking.configure(), sys.argv[1])",
            run_id,
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def quiet_libraries() -> None:
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
    # saving each adapter's MLmodel says it validated the input example, once per training run
    logging.getLogger("mlflow.pyfunc").setLevel(logging.WARNING)
    # bitsandbytes looks for an optional CPU kernel package on import and warns on every command
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
    # ... through the `kernels` package, which says offline that it skipped a trust check it never needed
    logging.getLogger("kernels").setLevel(logging.ERROR)
    import warnings

    # peft asks transformers 5 for a renamed attribute on every adapter load
    warnings.filterwarnings("ignore", message=r".*is_gradient_checkpointing.* is deprecated", category=FutureWarning)


def disk_full(exc: BaseException) -> str | None:
    """ " writing FILE" (or "") when the error, or one it was raised from, is a full disk or quota; else None."""
    import errno

    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return f" writing {exc.filename}" if exc.filename else ""
        if "database or disk is full" in str(exc):
            return " (the tracking store's database)"
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None
