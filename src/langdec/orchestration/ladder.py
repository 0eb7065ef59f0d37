"""The `ladder` stage: every job of a ladder file, stage by stage, under one parent run.

For each job: transpile -> check -> train (the pipeline registers the adapter) ->
evaluate; the baseline is only evaluated. Finished stages whose key matches are
reused, so re-running a ladder after an interruption redoes only what is
missing. A job that fails is reported and the others still run.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from langdec.core import config
from langdec.core.errors import LangdecError
from langdec.core.paths import work_dir
from langdec.orchestration import jobs, pipeline
from langdec.tracking import runs as tracking
from langdec.training import stage as train


@dataclass
class JobOutcome:
    job: config.Job
    status: str  # done | reused | failed
    seconds: float
    detail: str = ""
    train_run: str | None = None
    eval_run: str | None = None
    version: str | None = None


@dataclass
class LadderResult:
    experiment: str
    outcomes: list[JobOutcome] = field(default_factory=list)
    report_path: Path | None = None
    table: str = ""
    seconds: float = 0.0

    @property
    def failed(self) -> list[JobOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]


def run_job(
    profile: config.Profile, ladder: config.Ladder, job: config.Job, experiment: str, *, supersede: bool, progress: bool
) -> JobOutcome:
    start = time.perf_counter()
    if job.overrides:
        profile = jobs.job_profile(ladder, job)
    where = pipeline.Where(profile, config.condition(job.condition), job, ladder.phase, experiment)
    out = pipeline.run(
        where,
        training=train.Options(supersede=supersede),
        evaluate=pipeline.Evaluate(data_languages=ladder.data_languages, probes=ladder.probes),
        progress=progress,
    )
    return JobOutcome(
        job,
        "reused" if out.reused else "done",
        time.perf_counter() - start,
        train_run=out.train.run_id if out.train else None,
        eval_run=out.evaluation.run_id if out.evaluation else None,  # None on DDP ranks other than 0
        version=out.train.version if out.train else None,
    )


def run(path: str | Path, *, supersede: bool | None = None, progress: bool = True, echo=print) -> LadderResult:
    import mlflow

    from langdec.analysis import report

    ladder = jobs.load_ladder(path)
    profile = config.load_profile(ladder.profile, ladder.overrides)
    uri = tracking.configure()
    experiment = tracking.experiment_name(profile.name, ladder.phase)
    todo = jobs.ladder_jobs(ladder)
    supersede = ladder.supersede if supersede is None else supersede
    result = LadderResult(experiment)
    start = time.perf_counter()
    echo(
        f"ladder {ladder.name}: {len(todo)} jobs on profile {profile.name} -> MLflow experiment {experiment!r} at {uri}"
    )
    if profile.model.smoke:
        echo(
            "note: the smoke profile's model is a random-weight Cohere2ForCausalLM (Tiny Aya's architecture, hidden size "
            f"{profile.model.smoke.get('hidden_size')}) with a tokenizer trained in seconds, so its scores are noise (generative "
            "near 0, log-likelihood at chance); it runs every code path for real. The study's model: --profile paper on a GPU."
        )
    mlflow.set_experiment(experiment_id=tracking.experiment_id(experiment))
    with mlflow.start_run(
        run_name=f"ladder-{ladder.name}",
        nested=mlflow.active_run() is not None,
        tags={"langdec.stage": "ladder", "langdec.code_version": tracking.code_version()},
    ):
        mlflow.log_params(
            {"ladder": str(ladder.path), "profile": profile.name, "phase": ladder.phase, "jobs": len(todo)}
        )
        for number, job in enumerate(todo, 1):
            echo(f"[{number}/{len(todo)}] {job.run_name} ...")
            try:
                outcome = run_job(profile, ladder, job, experiment, supersede=supersede, progress=progress)
            except LangdecError as exc:
                outcome = JobOutcome(job, "failed", 0.0, str(exc))
            except Exception as exc:  # one broken job must not lose the others' results
                outcome = JobOutcome(
                    job, "failed", 0.0, f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"
                )
            result.outcomes.append(outcome)
            echo(
                f"      {outcome.status} in {outcome.seconds:.1f}s" + (f": {outcome.detail}" if outcome.detail else "")
            )
        rep, md_path = report.run_stage(experiment, work_dir() / "reports" / experiment, tier=ladder.tiers[0])
        result.report_path = md_path
        result.table = report.print_tables(rep) + (f"\n\nnote: {ladder.note.strip()}" if ladder.note.strip() else "")
        mlflow.log_metric("failed_jobs", len(result.failed))
    result.seconds = time.perf_counter() - start
    return result
