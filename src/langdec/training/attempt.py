"""One attempt at training a key, on the data the pipeline built: refuse early, gate the data on its checks,
begin (resume the interrupted run of the key from its last checkpoint, or start afresh), then under the run:
setup (tokenizer, rows, trainer) -> train -> save the adapter, and hand it to the caller's `Registrar` while
the run is still open. It stops midway when asked: a preemption signal (a checkpoint to resume from) or an
earlier live run of the key (stepping aside, `tracking.lease`)."""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from langdec.core.config import Condition, Job, Profile
from langdec.core.errors import LangdecError, Preempted
from langdec.data import checks
from langdec.data import stage as data
from langdec.models.effective import effective_optimizer, peak_memory_mb, quantized_layers
from langdec.tracking import lease, logged_models
from langdec.tracking import runs as tracking
from langdec.training import preemption
from langdec.training.backend import choose_backend
from langdec.training.checkpoints import checkpoint_dir, last_checkpoint, resumable_run
from langdec.training.keys import TRAIN_STAGE, train_params
from langdec.training.recipe import build_trainer
from langdec.training.save import save_adapter
from langdec.training.tokenize import dataset, tokenize_files


@dataclass
class TrainResult:
    run_id: str
    reused: bool
    version: str | None
    adapter_uri: str
    eval_loss: float | None = None


@dataclass(frozen=True)
class Trained:
    """A trained adapter whose run is still open: what registering it reads."""

    run_id: str
    adapter_uri: str
    key: str
    data_digest: str
    check_status: str
    tags: dict[str, str]


class Registrar(Protocol):
    """What becomes of the adapter: the caller's to decide (the pipeline registers it, orchestration.registration)."""

    def check(self) -> None:
        """Under the key's claim, before any model work: refuse now what registering would refuse at the end."""
        ...

    def register(self, trained: Trained) -> str | None:
        """The adapter's registered version, while its run is open (a failure here fails the run)."""
        ...

    def version_of(self, finished: Any) -> str | None:
        """The version a finished training run of the key holds, for its reuse."""
        ...


@dataclass
class Options:
    """How one training run goes, beyond what the profile says. Sweeps turn registration off (trials are
    not study adapters) and add validation every `eval_steps` and callbacks (e.g. Optuna pruning).
    `register` and `supersede` are read by the registrar the pipeline hands training."""

    quantization: str | None = None  # default: the profile's training.quantization
    backend: str = "auto"  # auto | hf | unsloth; auto defers to the profile
    allow_unchecked: bool = False
    resume: bool = True
    supersede: bool = False
    register: bool = True
    eval_steps: int | None = None
    callbacks: list = field(default_factory=list)
    extra_loggers: list[tracking.MetricLogger] = field(default_factory=list)
    extra_tags: dict[str, str] = field(default_factory=dict)
    stop_after_steps: int | None = None  # a simulated interruption (tests)


class TrainingRun:
    """One key's training, as `tracking.lease.hold` runs it (name, run_name, key, reused, work)."""

    name = TRAIN_STAGE

    def __init__(
        self,
        profile: Profile,
        cond: Condition,
        job: Job,
        *,
        phase: str,
        experiment: str,
        options: Options,
        registrar: Registrar | None,
        progress: bool,
    ) -> None:
        self.profile, self.cond, self.job, self.phase, self.experiment = profile, cond, job, phase, experiment
        self.options, self.registrar, self.progress = options, registrar, progress
        self.run_name = job.run_name
        self.training = profile.training
        self.quantization = options.quantization or self.training.quantization
        requested = options.backend if options.backend != "auto" else self.training.backend
        self.backend = choose_backend(requested, self.training.packing, self.training.peft_method)

    # ---- setup
    def check(self) -> None:
        """Refusals that need no data: nothing to train, no data yet, no GPU for the paper's NF4."""
        if not self.job.trains:
            raise LangdecError(
                "the baseline has no adapter to train; evaluate it with `langdec evaluate --condition baseline`"
            )
        if not self.cond.available:
            raise LangdecError(f"condition {self.cond.name}: {self.cond.unavailable_reason}")
        if self.cpu_for_paper and not self.training.allow_cpu:
            raise LangdecError(
                "the paper profile trains NF4 on a CUDA GPU; none is visible. Use a GPU machine, "
                "--profile smoke, or --set training.allow_cpu=true to run the same NF4 recipe on CPU "
                "(slow: bitsandbytes' CPU path, paged AdamW 8-bit as plain AdamW)"
            )

    @property
    def cpu_for_paper(self) -> bool:
        """The paper's NF4 on a machine without CUDA, where it is refused unless training.allow_cpu says otherwise."""
        import torch

        return self.quantization == "nf4" and not torch.cuda.is_available() and self.profile.name.startswith("paper")

    def gate(self, cdata: data.ConditionData, data_run_id: str) -> None:
        """Training refuses data that did not pass its checks, unless the user allowed it (then tagged)."""
        job = self.job
        self.cdata, self.data_run_id = cdata, data_run_id
        self.check_status, self.check_run_id, failed = checks.latest_status(self.experiment, cdata.digest)
        if self.check_status != "passed" and not self.options.allow_unchecked:
            what = (
                "no data-check run" if self.check_status == "missing" else f"data checks FAILED ({', '.join(failed)})"
            )
            raise LangdecError(
                f"{job.run_name}: refusing to train on {cdata.path}: {what} for data digest {cdata.digest}. "
                f"Run `langdec check --condition {job.condition} --lang {job.lang or 'en'} --tier {job.tier} --seed {job.seed} "
                f"--profile {self.profile.name}` or pass --allow-unchecked (recorded as a tag)."
            )
        self.params = train_params(self.profile, job, self.quantization, self.backend)
        self._key = tracking.run_key(TRAIN_STAGE, self.params, cdata.digest)

    # ---- the lease (tracking.lease.hold)
    def key(self) -> str:
        return self._key

    def reused(self, finished) -> TrainResult:
        """A finished run of the same key, as this job's result."""
        version = self.registrar.version_of(finished) if self.registrar is not None else None
        return TrainResult(
            finished.info.run_id,
            True,
            version,
            logged_models.adapter_uri(finished.info.run_id),
            finished.data.metrics.get("eval_loss"),
        )

    def work(self) -> TrainResult:
        return self.train_and_save(self.begin())

    def begin(self) -> tuple[Any, Path | None]:
        """Under the key's claim, before any model work: the registrar has room for this cell, and the interrupted
        run of this key with its last checkpoint, if both exist (stale checkpoints go)."""
        if self.registrar is not None:
            self.registrar.check()
        self.ckpt_dir = ckpt_dir = checkpoint_dir(self.experiment, self._key)
        previous = resumable_run(self.experiment, self._key) if self.options.resume else None
        resume_from = last_checkpoint(ckpt_dir) if previous is not None else None
        if (
            previous is not None
            and resume_from is None
            and previous.info.status == "RUNNING"
            and not lease.alive(previous)
        ):
            # killed before its first checkpoint (SIGKILL, a lost machine): close it as failed, start afresh
            from mlflow.tracking import MlflowClient

            MlflowClient().set_terminated(previous.info.run_id, "FAILED")
        if resume_from is None and ckpt_dir.exists():
            import shutil

            shutil.rmtree(ckpt_dir)  # stale checkpoints of a run we are not resuming
        return previous, resume_from

    def _tags(self) -> dict[str, str]:
        tags = {
            **data.job_tags(self.profile, self.job),
            "phase": self.phase,
            "run_name": self.job.run_name,
            "data_check_run": self.check_run_id or "",
            "data_check_status": self.check_status,
            "data_run": self.data_run_id,
            "backend": self.backend,
            "device": _device(),
            "peft_method": self.training.peft_method,
            **self.options.extra_tags,
        }
        if self.check_status != "passed":
            tags["langdec.allow_unchecked"] = "true"
        if self.cpu_for_paper:
            tags["langdec.allow_cpu"] = "true"
        if effective_optimizer(self.training.optimizer) != self.training.optimizer:
            tags["langdec.optimizer_requested"] = self.training.optimizer  # e.g. paged AdamW 8-bit, run as AdamW on CPU
        if self.cdata.manifest.get("transpiler_version"):
            tags["transpiler_version"] = self.cdata.manifest["transpiler_version"]
            tags["pack_digest"] = self.cdata.manifest["pack_digest"]
        return tags

    # ---- DDP (training.stage): rank 0 decides, the other ranks follow
    def decision(self, resume_from: Path | None) -> dict[str, Any]:
        """What the other ranks need to train beside rank 0: the data, the key and the checkpoint to resume."""
        return {
            "reuse": None,
            "data": str(self.cdata.path),
            "digest": self.cdata.digest,
            "manifest": self.cdata.manifest,
            "params": self.params,
            "key": self._key,
            "ckpt_dir": str(self.ckpt_dir),
            "resume_from": str(resume_from) if resume_from else None,
        }

    def adopt(self, decision: dict[str, Any]) -> Path | None:
        """A rank other than 0 takes rank 0's `decision`; the checkpoint to resume from."""
        self.cdata = data.ConditionData(Path(decision["data"]), decision["digest"], decision["manifest"])
        self.params, self._key = decision["params"], decision["key"]
        self.ckpt_dir = Path(decision["ckpt_dir"])
        return Path(decision["resume_from"]) if decision["resume_from"] else None

    def follow(self, resume_from: Path | None) -> None:
        """A rank other than 0 under DDP: the same tokenizer, data and trainer, trained without any tracking."""
        from transformers import set_seed

        from langdec.models.loading import load_tokenizer
        from langdec.training.trainer import TrainingStop

        set_seed(self.job.seed)
        tokenizer = load_tokenizer(self.profile.model, padding_side="right")
        train_dataset, _ = self._encode(tokenizer, self.cdata.frames()[0])
        trainer, _ = build_trainer(
            self.profile,
            self.backend,
            self.quantization,
            self.job.seed,
            train_dataset,
            tokenizer,
            self.ckpt_dir,
            tracking.TeeMetricLogger([]),
            False,
            self.options.stop_after_steps,
        )
        self.stop = TrainingStop()
        self._fit(trainer, resume_from)
        self._stop_if_asked()

    def _encode(self, tokenizer, frame):
        """A split's files as the trainer's dataset (cut or windowed, packed or not) and what that made of them."""
        t = self.training
        ids, stats = tokenize_files(frame["code"].tolist(), tokenizer, t.max_length, t.long_files)
        return dataset(ids, t.max_length if t.packing else None), stats

    # ---- train and save, under the run
    def train_and_save(
        self, resume: tuple[Any, Path | None], announce: Callable[[], None] | None = None
    ) -> TrainResult:
        """`announce` (DDP's rank 0) tells the other ranks to start, once this run exists and has not stepped aside."""
        import shutil

        from langdec.training.trainer import TrainingStop

        previous, resume_from = resume
        tags = self._tags()
        preemption.install()  # SIGTERM/SIGUSR2: the run is marked FAILED and resumed next time, from a checkpoint when training
        self.stop = TrainingStop()
        with lease.stage_run(
            self.experiment,
            TRAIN_STAGE,
            self.job.run_name,
            params=self.params,
            tags=tags,
            data_digest=self.cdata.digest,
            reuse=False,
            run_id=previous.info.run_id if resume_from else None,
            system_metrics=True,
            on_earlier=self.stop.step_aside,
        ) as srun:
            self._started(srun.run_id, resume_from)
            if announce is not None:
                announce()
            trainer, tokenizer, eval_loss = self._train(srun.run_id, resume_from)
            adapter_uri = save_adapter(trainer, tokenizer, srun.run_id, self.job, self.profile, self.cdata.digest)
            trained = Trained(srun.run_id, adapter_uri, self._key, self.cdata.digest, self.check_status, tags)
            version = self.registrar.register(trained) if self.registrar is not None else None
        shutil.rmtree(
            self.ckpt_dir, ignore_errors=True
        )  # the adapter is in MLflow; checkpoints only serve an interrupted run
        return TrainResult(srun.run_id, False, version, adapter_uri, eval_loss)

    def _started(self, run_id: str, resume_from: Path | None) -> None:
        import mlflow

        if resume_from is not None:
            mlflow.set_tag("langdec.resumed_from", resume_from.name)
        else:
            # the same key started elsewhere at the same moment (two machines, or two LANGDEC_HOMEs on one): the
            # earlier run trains, this one steps aside before any model work and reuses its result
            lease.yield_to_earlier(run_id, self.experiment, TRAIN_STAGE, self._key)

    def _train(self, run_id: str, resume_from: Path | None):
        """(trainer, tokenizer, validation loss or None) once training reached its end."""
        import mlflow

        trainer, tokenizer, counter, logger, evaluates = self._setup(run_id)
        output, seconds = self._fit(trainer, resume_from)
        self._stop_if_asked(run_id)
        padding = counter.padded / max(counter.real + counter.padded, 1)
        logger.log(
            {
                "train_seconds": seconds,
                "padding_fraction": padding,
                "train_loss": float(output.training_loss),
                "tokens_trained": float(counter.real),
                "tokens_per_s_overall": counter.real / max(seconds, 1e-9),
                "peak_memory_mb": peak_memory_mb(),
            }
        )
        if self.options.stop_after_steps is not None and trainer.state.global_step < trainer.state.max_steps:
            raise SystemExit(f"stopped after {trainer.state.global_step} steps (simulated interruption)")
        eval_loss = None
        if evaluates:
            eval_loss = float(trainer.evaluate()["eval_loss"])
            mlflow.log_metric("eval_loss", eval_loss, step=trainer.state.global_step)
        return trainer, tokenizer, eval_loss

    def _setup(self, run_id: str):
        """Tokenizer, rows and trainer for this run, with what they made of the data logged."""
        from transformers import set_seed

        from langdec.models.loading import load_tokenizer

        opts = self.options
        set_seed(self.job.seed)
        tokenizer = load_tokenizer(self.profile.model, padding_side="right")
        train_frame, validation_frame = self.cdata.frames()
        train_dataset, stats = self._encode(tokenizer, train_frame)
        logger = tracking.TeeMetricLogger([tracking.MlflowMetricLogger(run_id), *opts.extra_loggers])
        logger.log(
            {
                "files": stats.files,
                "windows": stats.windows,
                "tokens_total": stats.tokens,
                "target_tokens": stats.target_tokens,
                **({"tokens_dropped": stats.dropped_tokens} if self.training.long_files == "truncate" else {}),
            }
        )
        eval_dataset = self._encode(tokenizer, validation_frame)[0] if opts.eval_steps else None
        trainer, counter = build_trainer(
            self.profile,
            self.backend,
            self.quantization,
            self.job.seed,
            train_dataset,
            tokenizer,
            self.ckpt_dir,
            logger,
            self.progress,
            opts.stop_after_steps,
            eval_dataset=eval_dataset,
            eval_steps=opts.eval_steps,
        )
        for callback in opts.callbacks:
            trainer.add_callback(callback)
        self._log_model(trainer)
        return trainer, tokenizer, counter, logger, eval_dataset is not None

    def _log_model(self, trainer) -> None:
        """What loaded and what trains: trainable parameters, quantised layers, rows, a non-LoRA method's settings."""
        import mlflow

        from langdec.models import peft_methods

        trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
        mlflow.log_metric("trainable_parameters", trainable)
        mlflow.set_tag("langdec.quantized_layers", quantized_layers(trainer.model))  # what loaded, not what was asked
        mlflow.log_metric("sequences", len(trainer.train_dataset))  # rows trained: fewer than windows when packed
        if self.training.peft_method != "lora":
            method = peft_methods.get(self.training.peft_method)
            mlflow.log_params({f"peft.{k}": v for k, v in method.settings(self.training).items()})

    def _fit(self, trainer, resume_from: Path | None):
        start = time.perf_counter()
        trainer.add_callback(self.stop)
        try:
            with preemption.graceful(self.stop):
                output = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise LangdecError(
                    f"could not write a checkpoint to {self.ckpt_dir} ({exc.strerror}); free disk space "
                    "and re-run the same command to resume from the last complete checkpoint"
                ) from None
            raise
        return output, time.perf_counter() - start

    def _stop_if_asked(self, run_id: str | None = None) -> None:
        """Training stopped before its end. Stepping aside (an earlier run of the key is alive elsewhere): the run
        says for which run and ends `Yielded`, and the caller waits for that run and reuses it. A preemption
        signal: the trainer saved checkpoint-N; the run says so and ends `Preempted`, which a scheduler retries
        and the next attempt resumes from. `run_id` is rank 0's run; the other ranks have none."""
        from langdec.training.trainer import TrainingStop

        stop = self.stop
        if stop.reason == TrainingStop.STEP_ASIDE:
            if run_id is not None:
                lease.mark_yielded(run_id, stop.yield_to)
                if not os.environ.get("LANGDEC_CHECKPOINTS"):
                    import shutil

                    shutil.rmtree(
                        self.ckpt_dir, ignore_errors=True
                    )  # this machine's own; a shared folder is the other run's too
                raise lease.Yielded(stop.yield_to)
            return
        if stop.reason != TrainingStop.SIGNAL:
            return
        import signal as signals

        name = signals.Signals(stop.signal).name if stop.signal is not None else "another rank's stop signal"
        if run_id is not None:
            from mlflow.tracking import MlflowClient

            MlflowClient().set_tag(run_id, "langdec.preempted", f"checkpoint-{stop.step} ({name})")
        raise Preempted(
            f"{self.job.run_name}: {name} received; training stopped at step {stop.step} with "
            f"checkpoint-{stop.step} in {self.ckpt_dir}; the next attempt (the same command, or the "
            "scheduler's requeue) resumes there"
        )


def _device() -> str:
    from langdec.models.loading import device_name

    return device_name()
