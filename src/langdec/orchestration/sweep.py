"""`langdec sweep`: an Optuna search over training settings, one nested MLflow run per trial.

A sweep file (experiments/sweeps/*.yaml) names the job, the objective (validation
loss), the number of trials, the pruner and the search space in dotted profile keys.
Trials report validation loss during training through a trainer callback and are
pruned there; they are not registered as study adapters.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langdec.core import config
from langdec.core.errors import LangdecError
from langdec.core.registry import Registry
from langdec.core.schema import build
from langdec.orchestration import pipeline
from langdec.tracking import runs as tracking
from langdec.training import stage as train

# optuna's pruners by the name a sweep file gives (`pruner: {type: NAME, ...}`), imported when a sweep makes one
PRUNERS: Registry[Any] = Registry(
    "pruner",
    lazy={
        "none": "optuna.pruners:NopPruner",
        "median": "optuna.pruners:MedianPruner",
        "percentile": "optuna.pruners:PercentilePruner",
        "threshold": "optuna.pruners:ThresholdPruner",
        "successive_halving": "optuna.pruners:SuccessiveHalvingPruner",
        "hyperband": "optuna.pruners:HyperbandPruner",
    },
)


@dataclass
class Objective:
    metric: str = "eval_loss"
    direction: str = "minimize"


@dataclass
class SweepJob:
    condition: str
    lang: str | None = None
    tier: str = "5k"
    seed: int = 42


@dataclass
class SweepSpec:
    name: str
    profile: str
    job: SweepJob
    space: dict[str, dict[str, Any]]
    trials: int = 10
    phase: str = "phase-3"
    objective: Objective = field(default_factory=Objective)
    eval_steps: int = 50
    pruner: dict[str, Any] = field(default_factory=lambda: {"type": "median"})
    overrides: list[str] = field(default_factory=list)
    # shared storage (--storage): a trial whose process stops beating for `grace_seconds` is failed and tried again,
    # as is a trial that failed in a way a retry may cure (langdec.failures), at most `max_retries` times each
    heartbeat_seconds: int = 60
    grace_seconds: int = 240
    max_retries: int = 2
    path: Path | None = None


def load(path: str | Path) -> SweepSpec:
    import yaml

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LangdecError(f"{path}: no such sweep file") from None
    spec = build(SweepSpec, raw, str(path))
    spec.path = path
    if spec.objective.metric != "eval_loss":
        raise LangdecError(
            f"{path}: objective.metric {spec.objective.metric!r}; sweeps optimise eval_loss (validation loss)"
        )
    if spec.objective.direction not in ("minimize", "maximize"):
        raise LangdecError(f"{path}: objective.direction must be minimize or maximize")
    for key, dist in spec.space.items():
        if dist.get("type") not in ("float", "int", "categorical"):
            raise LangdecError(f"{path}: space.{key}.type must be float, int or categorical")
    # every point of the space must make a valid profile: try the bounds now, before any training
    for key, dist in spec.space.items():
        for value in dist.get("choices") or [dist.get("low"), dist.get("high")]:
            config.load_profile(spec.profile, [*spec.overrides, f"{key}={value}"])
    return spec


def make_pruner(spec: SweepSpec):
    options = {k: v for k, v in spec.pruner.items() if k != "type"}
    return PRUNERS.get(spec.pruner.get("type", "median"))(**options)


def suggest(trial, space: dict[str, dict[str, Any]]) -> list[str]:
    overrides = []
    for key, dist in space.items():
        if dist["type"] == "float":
            value = trial.suggest_float(key, dist["low"], dist["high"], log=dist.get("log", False))
        elif dist["type"] == "int":
            value = trial.suggest_int(key, dist["low"], dist["high"], log=dist.get("log", False))
        else:
            value = trial.suggest_categorical(key, dist["choices"])
        overrides.append(f"{key}={value}")
    return overrides


def _pruning_callback(trial):
    import mlflow
    import optuna
    from transformers import TrainerCallback

    class OptunaPruning(TrainerCallback):
        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            value = (metrics or {}).get("eval_loss")
            if value is None:
                return
            trial.report(float(value), state.global_step)
            if trial.should_prune():
                mlflow.set_tag("langdec.pruned_at_step", str(state.global_step))
                raise optuna.TrialPruned(f"pruned at step {state.global_step} (eval_loss {value:.4f})")

    return OptunaPruning()


class RetryableTrial(Exception):
    """A trial that failed in a way a retry may cure: marked FAIL, and the same settings are queued again."""


def open_storage(url: str | None, spec: SweepSpec):
    """Optuna's storage: in memory without a URL; a database with heartbeats and the retry of stale trials."""
    if not url:
        return None
    import warnings

    import optuna

    if url.startswith(("sqlite:", "postgresql", "mysql")):
        retry = (
            getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)
            or optuna.storages.RetryFailedTrialCallback
        )
        keyword = (
            "heartbeat_stale_trial_callback"
            if "heartbeat_stale_trial_callback" in optuna.storages.RDBStorage.__init__.__code__.co_varnames
            else "failed_trial_callback"
        )
        import sqlalchemy.exc

        # N machines start the same sweep at once: on a new database each creates Optuna's tables, and all but one
        # lose that race (PostgreSQL: a unique violation on the enum type); the tables exist a moment later
        for attempt in range(6):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # heartbeats are marked experimental, yet stable since Optuna 2
                    return optuna.storages.RDBStorage(
                        url,
                        heartbeat_interval=spec.heartbeat_seconds,
                        grace_period=spec.grace_seconds,
                        **{keyword: retry(max_retry=spec.max_retries)},
                    )
            except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
                if attempt == 5:
                    raise
                time.sleep(0.5 + attempt)
    return url  # journal and other storages Optuna opens itself


def _counted(study) -> int:
    """Trials that count toward the sweep's total, every process's: finished ones and those running now."""
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)))


def run(path: str | Path, *, storage: str | None = None, progress: bool = False, echo=print):
    import mlflow
    import optuna
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = load(path)
    base = config.load_profile(spec.profile, spec.overrides)
    cond = config.condition(spec.job.condition)
    job = config.Job(cond.name, spec.job.lang, spec.job.tier, spec.job.seed)
    tracking.configure()
    experiment = tracking.experiment_name(base.name, spec.phase)
    study = _open_study(spec, storage)  # the storage first: an unreachable database fails before any work
    # the data and its checks do not depend on the searched settings: prepare them once
    data_run = pipeline.run(
        pipeline.Where(base, cond, job, spec.phase, experiment), stages=("check",), progress=progress
    ).data
    objective = _objective(spec, study, cond, job, experiment, data_run, progress=progress, echo=echo)
    mlflow.set_experiment(experiment_id=tracking.experiment_id(experiment))
    with mlflow.start_run(run_name=f"sweep-{spec.name}", tags={"langdec.stage": "sweep", "sweep": spec.name}) as parent:
        mlflow.log_params(
            {
                "sweep": str(spec.path),
                "trials": spec.trials,
                "pruner": spec.pruner.get("type"),
                "space": str(spec.space),
            }
        )
        # the total counts every process's trials: N machines sharing the storage run `trials` in all
        # (and a store that stays away ends it after every trial has used its retries, not never)
        study.optimize(
            objective,
            catch=(RetryableTrial,),
            callbacks=[
                MaxTrialsCallback(spec.trials, states=(TrialState.COMPLETE, TrialState.PRUNED)),
                MaxTrialsCallback(spec.trials * (spec.max_retries + 2), states=None),
            ],
        )
        complete = [t for t in study.trials if t.state.name == "COMPLETE"]
        mlflow.log_metrics(
            {"trials_complete": len(complete), "trials_pruned": sum(t.state.name == "PRUNED" for t in study.trials)}
        )
        if complete:
            mlflow.log_metric("best_eval_loss", study.best_value)
            mlflow.log_params({f"best.{k}": v for k, v in study.best_params.items()})
    return study, parent.info.run_id


def _open_study(spec: SweepSpec, storage: str | None):
    """The sweep's Optuna study, in memory or in the shared `storage`; a storage that cannot be opened is refused."""
    import optuna

    try:
        return optuna.create_study(
            study_name=f"sweep-{spec.name}",
            storage=open_storage(storage, spec),
            load_if_exists=True,
            direction=spec.objective.direction,
            pruner=make_pruner(spec),
        )
    except Exception as exc:
        from langdec.core.urls import scrub, without_secrets

        raise LangdecError(
            f"--storage {without_secrets(storage or '')}: cannot open the Optuna storage ({type(exc).__name__}: "
            f"{scrub(' '.join(str(exc).split()), storage)[:160]}); start the database or fix the URL"
        ) from None


def _objective(
    spec: SweepSpec, study, cond: config.Condition, job: config.Job, experiment: str, data_run, *, progress: bool, echo
):
    """One trial: the suggested settings trained on the sweep's data (not registered); its validation loss. A trial
    that failed in a way a retry may cure is queued again, at most `max_retries` times."""
    import optuna

    from langdec.core import failures

    def objective(trial) -> float:
        if _counted(study) > spec.trials:  # other machines took the last trials while this one asked for its next
            trial.set_user_attr("not_run", "the sweep's trials were all taken by other processes")
            study.stop()
            raise RetryableTrial("not run: the sweep's trials were all taken")
        overrides = [*spec.overrides, *suggest(trial, spec.space)]
        profile = config.load_profile(spec.profile, overrides)
        options = train.Options(
            register=False,
            eval_steps=spec.eval_steps,
            callbacks=[_pruning_callback(trial)],
            extra_tags={"sweep": spec.name, "optuna.trial": str(trial.number)},
        )
        try:
            result = pipeline.run(
                pipeline.Where(profile, cond, job, spec.phase, experiment),
                stages=("train",),
                training=options,
                data_run=data_run,
                progress=progress,
            ).train
        except optuna.TrialPruned:
            raise
        except Exception as exc:
            reason = failures.retry_reason(exc)
            retries = int(trial.user_attrs.get("retry_number", 0))
            if reason is None or retries >= spec.max_retries:
                raise
            trial.set_user_attr("error", f"{type(exc).__name__}: {str(exc)[:300]}")
            study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number, "retry_number": retries + 1})
            echo(
                f"trial {trial.number}: failed ({reason}); its settings are queued again (retry {retries + 1} of {spec.max_retries})"
            )
            raise RetryableTrial(reason) from exc
        trial.set_user_attr("run_id", result.run_id)
        echo(f"trial {trial.number}: {dict(trial.params)} -> eval_loss {result.eval_loss:.4f}")
        return result.eval_loss

    return objective
