"""The `train` stage: one LoRA/QLoRA adapter per (condition, language, tier, seed), on the data the pipeline built.

Refuse early (`preflight`), gate the data on its checks, then under the key's lease (`tracking.lease.hold`)
reuse a finished run of the key or train one (`training.attempt`). Under DDP rank 0 does all of that and the
other ranks train beside it. What becomes of the adapter is the caller's `Registrar` (the pipeline registers
it). The CPU smoke profile runs the same code path as the GPU paper profile.
"""

from __future__ import annotations

from dataclasses import asdict

from langdec.core.config import Condition, Job, Profile
from langdec.core.errors import LangdecError, Retryable
from langdec.data import stage as data
from langdec.tracking import lease
from langdec.tracking import runs as tracking
from langdec.training import distributed
from langdec.training.attempt import Options, Registrar, Trained, TrainingRun, TrainResult
from langdec.training.keys import TRAIN_STAGE

__all__ = ["SECTIONS", "TRAIN_STAGE", "Options", "Registrar", "Trained", "TrainResult", "preflight", "run"]

# the profile sections a training job reads: every one (its own and the model's; the registered version names the
# corpus, and the data's kind reads translation and evaluation settings)
SECTIONS = ("model", "corpus", "training", "translation", "evaluation")


def preflight(
    profile: Profile, cond: Condition, job: Job, *, phase: str, experiment: str, options: Options | None = None
) -> None:
    """The refusals that need no data (no GPU for the paper's NF4, nothing to train), so a pipeline meets them
    before it builds or downloads any data."""
    TrainingRun(
        profile,
        cond,
        job,
        phase=phase,
        experiment=experiment,
        options=options or Options(),
        registrar=None,
        progress=False,
    ).check()


def run(
    profile: Profile,
    cond: Condition,
    job: Job,
    *,
    phase: str,
    experiment: str,
    data_run: tuple[data.ConditionData, str] | None,
    options: Options | None = None,
    registrar: Registrar | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train one adapter on `data_run` (the data the pipeline built, and its run; None on DDP ranks other than 0,
    which take rank 0's): refuse early, then reuse a finished run of the same key or train it. One process per
    key (its run, its checkpoint folder and its registered version); a second one waits, then reuses."""
    training = TrainingRun(
        profile,
        cond,
        job,
        phase=phase,
        experiment=experiment,
        options=options or Options(),
        registrar=registrar,
        progress=progress,
    )
    training.check()
    if distributed.world().size > 1:
        return _run_distributed(training, data_run)
    if data_run is None:
        raise ValueError("train.run needs the data the pipeline built (data_run)")
    training.gate(*data_run)
    return lease.hold(experiment, training)


# --------------------------------------------------------------------------- DDP
def _run_distributed(training: TrainingRun, data_run: tuple[data.ConditionData, str] | None) -> TrainResult:
    """DDP: rank 0 gates, claims and decides (reuse, or train and from which checkpoint); every rank trains;
    rank 0 saves and registers and tells the others what it registered."""
    if training.options.eval_steps:
        raise LangdecError(
            "validation during training (sweeps) runs in one process; launch sweeps without torchrun/accelerate"
        )
    if not distributed.world().main:
        return _follow_rank_0(training)
    if data_run is None:
        raise ValueError("rank 0 of a DDP training needs the data the pipeline built (data_run)")
    training.gate(*data_run)
    experiment = training.experiment
    with lease.claim(experiment, TRAIN_STAGE, training.key(), training.run_name):
        finished = tracking.find_finished(experiment, TRAIN_STAGE, training.key())
        if finished is not None:
            reused = training.reused(finished)
            distributed.share({"reuse": asdict(reused)})
            return reused
        previous, resume_from = training.begin()
        announced: list[bool] = []

        def announce() -> None:  # the run exists and did not step aside: the other ranks start training beside it
            distributed.share(training.decision(resume_from))
            announced.append(True)

        try:
            result = training.train_and_save((previous, resume_from), announce=announce)
        except lease.Yielded as yielded:
            # before announcing, the other ranks wait for a decision: reuse; after it, they stopped at the same
            # step as this one and wait for the result
            try:
                result = _after_stepping_aside(training, yielded.run_id)
            except Retryable as exc:
                distributed.share({"error": str(exc)})
                raise
            if not announced:
                distributed.share({"reuse": asdict(result)})
                return result
    distributed.share(asdict(result))
    return result


def _follow_rank_0(training: TrainingRun) -> TrainResult:
    """A rank other than 0: rank 0's reuse, or training beside it and then rank 0's result."""
    decision = _from_rank_0()
    if decision["reuse"]:
        return TrainResult(**decision["reuse"])
    training.follow(training.adopt(decision))
    return TrainResult(**_from_rank_0())


def _from_rank_0() -> dict:
    """What rank 0 shared (a decision or a result), or the retryable failure it shared instead, raised here too."""
    told = distributed.share(None)
    if "error" in told:
        raise Retryable(told["error"])
    return told


def _after_stepping_aside(training: TrainingRun, earlier: str) -> TrainResult:
    """This run stepped aside midway for `earlier` (DDP: every rank stopped at the same step): wait for it under
    the key's claim and take its result."""
    with lease.claim(training.experiment, TRAIN_STAGE, training.key(), training.run_name):
        finished = tracking.find_finished(training.experiment, TRAIN_STAGE, training.key())
    if finished is None:
        raise Retryable(
            f"{training.run_name}: stepped aside for run {earlier}, which ended without finishing; run the "
            "same command again and it trains"
        )
    return training.reused(finished)
