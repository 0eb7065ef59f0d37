"""One job through the pipeline: data -> check -> train (which registers the adapter) -> evaluate.

Every caller runs jobs here, so the chain is assembled once: `langdec train` (up to train),
`langdec evaluate` (evaluate only, on the adapter it names), the ladder and the queue's workers (all
stages), sweep trials (data and checks once, then train). Finished stages whose key matches are
reused, so running a job again after an interruption redoes only what is missing."""

from __future__ import annotations

from dataclasses import dataclass, field

from . import checks, distributed, train
from .config import DATA_LANGUAGES, Condition, Job, Profile
from .data import ConditionData
from .errors import LangdecError, did_you_mean
from .evaluation import probe
from .evaluation import stage as evaluation

STAGES = ("data", "check", "train", "evaluate", "probe")


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

    @property
    def uri(self) -> str | None:
        return f"runs:/{self.run_id}/adapter" if self.run_id else None


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


def run(where: Where, *, stages: tuple[str, ...] = STAGES, training: train.Options | None = None,
        evaluate: Evaluate | None = None, adapter: Adapter | None = None,
        data_run: tuple[ConditionData, str] | None = None, progress: bool = True) -> Outcome:
    """Run the named stages of one job, in order. The check stage includes the data it checks; training
    without it still builds the data, and the recipe still refuses data that never passed its checks."""
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise did_you_mean("stage", unknown[0], STAGES)
    p, cond, job = where.profile, where.cond, where.job
    out = Outcome(data=data_run)
    # Each stage gets only the profile sections it declares (Profile.only): reading another fails at once.
    # Under DDP (torchrun, accelerate launch) rank 0 does every tracked step; the other ranks only train beside it
    main = distributed.world().main
    if job.trains and "train" in stages:
        train.preflight(p.only(train.TRAIN_STAGE, train.SECTIONS), cond, job, phase=where.phase,
                        experiment=where.experiment, options=training)
    if main and job.trains and cond.available and "check" in stages and out.data is None:
        out.data, (_, out.check_run) = checks.prepare_and_check(p.only(checks.CHECK_STAGE, checks.SECTIONS), cond, job, where.experiment,
                                                                where.phase, progress=progress)
    if job.trains and "train" in stages:
        out.train = train.run(p.only(train.TRAIN_STAGE, train.SECTIONS), cond, job, phase=where.phase, experiment=where.experiment, options=training,
                              data_run=out.data, progress=progress)
        adapter = Adapter(out.train.run_id, out.train.version)
    if "evaluate" in stages and main:
        ev = evaluate or Evaluate()
        if job.trains and adapter is None:
            raise LangdecError(f"{job.run_name}: nothing names the adapter to evaluate; train it in the same run or pass one")
        held = adapter if job.trains else Adapter(None)
        out.evaluation = evaluation.run(p.only(evaluation.EVAL_STAGE, evaluation.SECTIONS), cond, job, phase=where.phase, experiment=where.experiment,
                                        data_languages=ev.data_languages, adapter_uri=held.uri, train_run_id=held.run_id,
                                        benchmarks_override=ev.benchmarks, source=ev.source, progress=progress)
        if "probe" in stages:
            for name in ev.probes:  # one probe so far: isotropy
                run_id, _, _ = probe.run(p.only(probe.PROBE_STAGE, probe.SECTIONS), cond, job, phase=where.phase, experiment=where.experiment,
                                         adapter_uri=held.uri, adapter_run=held.run_id, languages=ev.data_languages, source=ev.source)
                out.probes[name] = run_id
    return out
