"""One job through the pipeline: data -> check -> train -> evaluate -> probe, each a `Stage`.

Every caller runs jobs here, so the chain is assembled once: `langdec train` (up to train),
`langdec evaluate` (evaluate only, on the adapter it names), the ladder and the queue's workers (all
stages), sweep trials (data and checks once, then train). Each stage works under the lease of its key
(`tracking.lease`): a finished run of the key is reused, so running a job again after an interruption redoes
only what is missing. The pipeline, not training or evaluation, registers the adapter (`registration`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Protocol

from langdec.core.config import DATA_LANGUAGES, Condition, Job, Profile
from langdec.core.errors import LangdecError, did_you_mean
from langdec.data import checks
from langdec.data import stage as data
from langdec.data.stage import ConditionData
from langdec.evaluation import probe
from langdec.evaluation import stage as evaluation
from langdec.orchestration import registration
from langdec.training import distributed
from langdec.training import stage as train


@dataclass(frozen=True)
class Where:
    """The job and where its runs go."""

    profile: Profile
    cond: Condition
    job: Job
    phase: str
    experiment: str


@dataclass
class Evaluate:
    """What the evaluate stage scores: the matrix's data languages, optionally fewer benchmarks, the item source."""

    data_languages: list[str] = field(default_factory=lambda: list(DATA_LANGUAGES))
    benchmarks: list[str] | None = None
    source: str | None = None
    probes: list[str] = field(default_factory=list)  # run after the evaluation, on the same model (stage "probe")


@dataclass(frozen=True)
class Adapter:
    """An adapter to evaluate that this job did not train: its training run and registered version."""

    run_id: str | None
    version: str | None = None

    @cached_property  # a lookup in the store, asked by the evaluation and again by each probe
    def uri(self) -> str | None:
        from langdec.tracking.logged_models import adapter_uri

        return adapter_uri(self.run_id) if self.run_id else None


@dataclass
class Outcome:
    data: tuple[ConditionData, str] | None = None
    check_run: str | None = None
    train: train.TrainResult | None = None
    evaluation: evaluation.EvalResult | None = None
    probes: dict[str, str] = field(default_factory=dict)  # probe -> run id

    @property
    def reused(self) -> bool:
        ran = [r for r in (self.train, self.evaluation) if r is not None]
        return bool(ran) and all(r.reused for r in ran)


@dataclass(frozen=True)
class Plan:
    """One call of `run`: the job, the stages it asks for, and how they go."""

    where: Where
    stages: tuple[str, ...]
    training: train.Options
    evaluate: Evaluate
    adapter: Adapter | None
    progress: bool

    @property
    def main(self) -> bool:
        """Under DDP (torchrun, accelerate launch) rank 0 does every tracked step; the other ranks only train."""
        return distributed.world().main

    @property
    def trains(self) -> bool:
        return self.where.job.trains and "train" in self.stages

    def profile(self, stage: str, sections: tuple[str, ...]) -> Profile:
        """The profile with only the sections `stage` declares (Profile.only): reading another fails at once."""
        return self.where.profile.only(stage, sections)


class Stage(Protocol):
    """One step of a job as `run` drives it: whether it has work here, given what the steps before it left in the
    job's `Outcome`, and that work, which leaves its result there. A stage works under the lease of its key
    (`tracking.lease`: `hold` for one that knows its key before it starts, `stage_run` for one that keys on what
    it builds): a finished run of the key is reused, else one process at a time works on it."""

    name: str

    def wanted(self, plan: Plan, out: Outcome) -> bool: ...

    def run(self, plan: Plan, out: Outcome) -> None: ...


class DataStage:
    """The condition's data when training runs without the checks (which build the data they check)."""

    name = "data"

    def wanted(self, plan: Plan, out: Outcome) -> bool:
        return plan.main and plan.trains and "check" not in plan.stages and out.data is None

    def run(self, plan: Plan, out: Outcome) -> None:
        w = plan.where
        out.data = data.run_stage(
            plan.profile("transpile", checks.SECTIONS), w.cond, w.job, w.experiment, progress=plan.progress
        )


class CheckStage:
    """The condition's data and its checks; given data (a sweep's, built once) is not checked again."""

    name = "check"

    def wanted(self, plan: Plan, out: Outcome) -> bool:
        w = plan.where
        return plan.main and w.job.trains and w.cond.available and "check" in plan.stages and out.data is None

    def run(self, plan: Plan, out: Outcome) -> None:
        w = plan.where
        out.data, (_, out.check_run) = checks.prepare_and_check(
            plan.profile(checks.CHECK_STAGE, checks.SECTIONS),
            w.cond,
            w.job,
            w.experiment,
            w.phase,
            progress=plan.progress,
        )


class TrainStage:
    """The adapter, trained on the data the stages before built (or reused), registered by the pipeline."""

    name = "train"

    def wanted(self, plan: Plan, out: Outcome) -> bool:
        return plan.trains

    def run(self, plan: Plan, out: Outcome) -> None:
        w = plan.where
        profile = plan.profile(train.TRAIN_STAGE, train.SECTIONS)
        registrar = registration.AdapterRegistration(profile, w.phase, w.job, plan.training)
        out.train = train.run(
            profile,
            w.cond,
            w.job,
            phase=w.phase,
            experiment=w.experiment,
            data_run=out.data,
            options=plan.training,
            registrar=registrar,
            progress=plan.progress,
        )


class EvaluateStage:
    """The model scored on its matrix: the adapter this job trained or was given, or the base model."""

    name = "evaluate"

    def wanted(self, plan: Plan, out: Outcome) -> bool:
        return "evaluate" in plan.stages and plan.main

    def run(self, plan: Plan, out: Outcome) -> None:
        w, ev, held = plan.where, plan.evaluate, _held(plan, out)
        profile = plan.profile(evaluation.EVAL_STAGE, evaluation.SECTIONS)
        recorded = registration.record_evaluation(profile, held.run_id) if held.run_id else None
        out.evaluation = evaluation.run(
            profile,
            w.cond,
            w.job,
            phase=w.phase,
            experiment=w.experiment,
            data_languages=ev.data_languages,
            adapter_uri=held.uri,
            train_run_id=held.run_id,
            benchmarks_override=ev.benchmarks,
            source=ev.source,
            progress=plan.progress,
            on_scored=recorded,
        )


class ProbeStage:
    """The probes a job asks for (one so far: isotropy), after its evaluation, on the same model."""

    name = "probe"

    def wanted(self, plan: Plan, out: Outcome) -> bool:
        return "probe" in plan.stages and "evaluate" in plan.stages and plan.main

    def run(self, plan: Plan, out: Outcome) -> None:
        w, ev, held = plan.where, plan.evaluate, _held(plan, out)
        for name in ev.probes:
            run_id, _, _ = probe.run(
                plan.profile(probe.PROBE_STAGE, probe.SECTIONS),
                w.cond,
                w.job,
                phase=w.phase,
                experiment=w.experiment,
                adapter_uri=held.uri,
                adapter_run=held.run_id,
                languages=ev.data_languages,
                source=ev.source,
            )
            out.probes[name] = run_id


CHAIN: tuple[Stage, ...] = (DataStage(), CheckStage(), TrainStage(), EvaluateStage(), ProbeStage())
STAGES = tuple(stage.name for stage in CHAIN)  # the names a caller picks stages by


def _held(plan: Plan, out: Outcome) -> Adapter:
    """The adapter a job evaluates: the one it trained in this run, else the one it was given; none for the baseline."""
    job = plan.where.job
    if not job.trains:
        return Adapter(None)
    adapter = Adapter(out.train.run_id, out.train.version) if out.train is not None else plan.adapter
    if adapter is None:
        raise LangdecError(
            f"{job.run_name}: nothing names the adapter to evaluate; train it in the same run or pass one"
        )
    return adapter


def run(
    where: Where,
    *,
    stages: tuple[str, ...] = STAGES,
    training: train.Options | None = None,
    evaluate: Evaluate | None = None,
    adapter: Adapter | None = None,
    data_run: tuple[ConditionData, str] | None = None,
    progress: bool = True,
) -> Outcome:
    """Run the named stages of one job, in order. The check stage includes the data it checks; training
    without it still builds the data, and training still refuses data that never passed its checks."""
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise did_you_mean("stage", unknown[0], STAGES)
    plan = Plan(where, stages, training or train.Options(), evaluate or Evaluate(), adapter, progress)
    if plan.trains:  # the refusals that need no data, before any data is built or downloaded
        train.preflight(
            plan.profile(train.TRAIN_STAGE, train.SECTIONS),
            where.cond,
            where.job,
            phase=where.phase,
            experiment=where.experiment,
            options=plan.training,
        )
    return run_stages(CHAIN, plan, Outcome(data=data_run))


def run_stages(chain: tuple[Stage, ...], plan: Plan, out: Outcome) -> Outcome:
    """Each stage of `chain` that has work in this job, in order."""
    for stage in chain:
        if stage.wanted(plan, out):
            stage.run(plan, out)
    return out
