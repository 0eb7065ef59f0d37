"""The `train` stage: one LoRA/QLoRA adapter per (condition, language, tier, seed).

Reads top to bottom like a recipe: setup (data, checks, model), train (TRL
SFTTrainer; windows so no token is cut, packed rows so few are padding), save (adapter artifact, registered
version). The CPU smoke profile runs the same code path as the GPU paper profile.
"""

from __future__ import annotations

import errno
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import checks, data, distributed, preemption, registry, tracking
from .config import Condition, Job, Profile
from .effective import (TRAINING_BACKENDS, effective_loss, effective_optimizer, peak_memory_mb, quantized_layers,
                        training_precision)
from .atomic import user_modes
from .errors import LangdecError, Preempted, Retryable, did_you_mean
from .model import model_identity  # a GGUF file's sha256: part of the run key
from .paths import work_dir

TRAIN_STAGE = "train"
# the profile sections training reads: its own and the model's, and the data stage's (it rebuilds or reuses the data)
SECTIONS = ("model", "corpus", "training", "translation", "evaluation")


# --------------------------------------------------------------------------- windows
def windows(token_ids: list[int], max_length: int) -> list[list[int]]:
    """Split one file into windows that overlap by one token, so every token after the
    first is a prediction target exactly once and nothing is truncated."""
    if len(token_ids) <= max_length:
        return [token_ids]
    stride = max_length - 1
    out = []
    for start in range(0, len(token_ids) - 1, stride):
        out.append(token_ids[start : start + max_length])
    return out


@dataclass
class WindowStats:
    files: int
    windows: int
    tokens: int  # tokens in the files, BOS/EOS included
    target_tokens: int  # tokens that are prediction targets
    dropped_tokens: int = 0  # cut off the end of long files (long_files: truncate)


def tokenize_truncated(codes: list[str], tokenizer, max_length: int) -> tuple[list[list[int]], WindowStats]:
    """The study's pretokenization: each file encoded with the tokenizer's own special tokens and cut to its first
    `max_length` tokens (`tokenizer(code, truncation=True, max_length=...)`); what is cut is counted."""
    full = tokenizer(codes, add_special_tokens=True)["input_ids"]
    out = [ids[:max_length] for ids in full]
    tokens = sum(len(ids) for ids in full)
    kept = sum(len(ids) for ids in out)
    return out, WindowStats(len(codes), len(out), tokens, sum(max(len(ids) - 1, 0) for ids in out), tokens - kept)


def tokenize_files(codes: list[str], tokenizer, max_length: int, long_files: str) -> tuple[list[list[int]], WindowStats]:
    return (tokenize_truncated if long_files == "truncate" else tokenize_windows)(codes, tokenizer, max_length)


def tokenize_windows(codes: list[str], tokenizer, max_length: int) -> tuple[list[list[int]], WindowStats]:
    encoded = tokenizer(codes, add_special_tokens=False)["input_ids"]
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    out: list[list[int]] = []
    tokens = targets = 0
    for ids in encoded:
        full = bos + ids + eos
        tokens += len(full)
        parts = windows(full, max_length)
        targets += sum(len(p) - 1 for p in parts)
        out.extend(parts)
    return out, WindowStats(len(codes), len(out), tokens, targets)


# --------------------------------------------------------------------------- metrics
# --------------------------------------------------------------------------- backends
def choose_backend(requested: str, packing: bool = False, peft_method: str = "lora") -> str:
    """hf or unsloth. Packed rows are proven to keep files apart on the hf path only (tests/test_train.py),
    so with packing `auto` takes hf and an explicit unsloth is refused; so is any PEFT method but LoRA,
    whose layers are the only ones Unsloth patches."""
    import importlib.util

    import torch

    from . import peft_methods

    lora = peft_methods.get(peft_method).lora_family
    has_unsloth = importlib.util.find_spec("unsloth") is not None and lora
    if requested == "unsloth":
        if not lora:
            raise LangdecError(f"--backend unsloth trains LoRA only; training.peft_method {peft_method} runs on --backend hf")
        if not torch.cuda.is_available():
            raise LangdecError("--backend unsloth needs a CUDA GPU; use --backend hf on this machine")
        if not has_unsloth:
            raise LangdecError("--backend unsloth needs the GPU extra: pip install 'langdec[gpu]'")
        if packing:
            raise LangdecError("--backend unsloth with training.packing=true is not verified to keep packed files apart; "
                               "use --backend hf (packing proven), or --set training.packing=false")
        return "unsloth"
    if requested not in TRAINING_BACKENDS:
        raise did_you_mean("training backend", requested, TRAINING_BACKENDS)
    if requested == "auto":
        return "unsloth" if has_unsloth and torch.cuda.is_available() and not packing else "hf"
    return "hf"


def packed_attention(packing: bool, precision: str) -> str | None:
    """The attention kernel for packed rows. Packed windows carry position ids that restart at 0 per
    file and no attention mask; from those, transformers builds a block-diagonal causal mask for SDPA
    and eager attention, so files never attend to each other (tested). flash-attention's varlen
    kernels do the same without materialising the mask, so they are taken where installed (they
    run in fp16/bf16 only)."""
    import importlib.util

    import torch

    if (packing and precision in ("fp16", "bf16") and torch.cuda.is_available()
            and importlib.util.find_spec("flash_attn") is not None):
        return "flash_attention_2"
    return None


def _model_and_peft_config(profile: Profile, backend: str, quantization: str):
    from . import peft_methods

    t = profile.training
    peft_config = peft_methods.get(t.peft_method).build(t)
    if backend == "unsloth":
        from unsloth import FastLanguageModel  # type: ignore[import-not-found]

        from .model import model_source

        model, _ = FastLanguageModel.from_pretrained(model_source(profile.model), max_seq_length=t.max_length, load_in_4bit=quantization == "nf4")
        model = FastLanguageModel.get_peft_model(model, r=t.lora_r, lora_alpha=t.lora_alpha, lora_dropout=t.lora_dropout,
                                                 target_modules=list(t.target_modules), bias="none", use_gradient_checkpointing="unsloth")
        return model, None
    from .model import load_base_model

    precision = training_precision(t)
    model = load_base_model(profile.model, quantization=quantization, precision=precision,
                            attn_implementation=packed_attention(t.packing, precision))
    if quantization == "nf4":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=t.gradient_checkpointing)
    return model, peft_config


# --------------------------------------------------------------------------- recipe
@dataclass
class TrainResult:
    run_id: str
    reused: bool
    version: str | None
    adapter_uri: str
    eval_loss: float | None = None


def grad_accum(t, processes: int | None = None) -> int:
    """Steps accumulated per optimiser step: from `global_batch` over the processes at hand when it is set."""
    processes = processes or distributed.world().size
    if t.global_batch is None:
        return t.grad_accum
    per_step = t.batch_size * processes
    if t.global_batch % per_step:
        raise LangdecError(f"training.global_batch {t.global_batch} is not a multiple of batch_size {t.batch_size} x "
                           f"{processes} processes; change one of them")
    return t.global_batch // per_step


def train_params(profile: Profile, job: Job, quantization: str, backend: str) -> dict[str, Any]:
    settings = asdict(profile.training)
    settings["grad_accum"] = grad_accum(profile.training)
    settings["optimizer"] = effective_optimizer(settings["optimizer"])
    settings["loss"] = effective_loss(settings["loss"])
    settings["precision"] = training_precision(profile.training)
    return {
        "condition": job.condition, "lang": job.lang or "en", "tier": job.tier, "seed": job.seed, "profile": profile.name,
        "model_id": profile.model.id, **model_identity(profile.model), "quantization": quantization, "backend": backend,
        **{f"train.{k}": v for k, v in settings.items()
           if k not in ("quantization", "backend", "allow_cpu", *_left_out_of_key(profile))},
        **({"arm": job.arm} if job.arm else {}),
        **({"world_size": distributed.world().size} if distributed.world().size > 1 else {}),
    }


# settings added after runs were keyed: left out of the key while at these values, so those runs are still reused
LATER_SETTINGS = {"long_files": "windows", "peft_method": "lora", "global_batch": None}


def _left_out_of_key(profile: Profile) -> tuple[str, ...]:
    t = profile.training
    omitted = [k for k, v in LATER_SETTINGS.items() if getattr(t, k) == v]
    return (*omitted, *(("ln_modules",) if t.peft_method == "lora" else ()))


def run_key(profile: Profile, job: Job, quantization: str, backend: str, data_digest: str) -> str:
    """The reuse key of a training run: every effective setting, the code version and the data."""
    return tracking.run_key(TRAIN_STAGE, train_params(profile, job, quantization, backend), data_digest)


def candidate_keys(profile: Profile, job: Job, data_digest: str) -> list[str]:
    """The keys a finished run of these settings may carry: the profile's quantisation and backend first,
    then every other pairing (a run trained with --backend or --quantization on the command line)."""
    pairs = [(profile.training.quantization, choose_backend(profile.training.backend, profile.training.packing, profile.training.peft_method))]
    pairs += [(q, b) for q in ("nf4", "none") for b in ("hf", "unsloth") if (q, b) not in pairs]
    return [run_key(profile, job, q, b, data_digest) for q, b in pairs]


def _checkpoint_dir(experiment: str, key: str) -> Path:
    """Where a training run's checkpoints go: LANGDEC_CHECKPOINTS when set (a folder every machine sees, so an
    item retried on another machine resumes where the first stopped), else under LANGDEC_HOME."""
    shared = os.environ.get("LANGDEC_CHECKPOINTS")
    return (Path(shared) if shared else work_dir() / "checkpoints") / experiment / key


def _last_checkpoint(folder: Path) -> Path | None:
    """The newest complete checkpoint: the trainer writes trainer_state.json last, so a folder without it is one a
    kill interrupted mid-save."""
    found = sorted((p for p in folder.glob("checkpoint-*") if p.name.split("-")[1].isdigit() and (p / "trainer_state.json").exists()),
                   key=lambda p: int(p.name.split("-")[1])) if folder.exists() else []
    return found[-1] if found else None


def _resumable_run(experiment: str, key: str):
    from mlflow.tracking import MlflowClient

    runs = MlflowClient().search_runs(
        [tracking.experiment_id(experiment)],
        filter_string=f"tags.`langdec.stage` = '{TRAIN_STAGE}' and tags.`langdec.run_key` = '{key}'",
        order_by=["attributes.start_time DESC"], max_results=1,
    )
    return runs[0] if runs and runs[0].info.status != "FINISHED" else None


@dataclass
class Options:
    """How one training run goes, beyond what the profile says. Sweeps turn registration off (trials are
    not study adapters) and add validation every `eval_steps` and callbacks (e.g. Optuna pruning)."""
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


def preflight(profile: Profile, cond: Condition, job: Job, *, phase: str, experiment: str,
              options: Options | None = None) -> None:
    """The refusals that need no data (no GPU for the paper's NF4, nothing to train), so a pipeline meets them
    before it builds or downloads any data."""
    Recipe(profile, cond, job, phase=phase, experiment=experiment, options=options or Options(), progress=False).check()


def run(profile: Profile, cond: Condition, job: Job, *, phase: str, experiment: str, options: Options | None = None,
        data_run: tuple[data.ConditionData, str] | None = None, progress: bool = True) -> TrainResult:
    """Train one adapter: refuse early, then reuse a finished run of the same key or run the recipe."""
    recipe = Recipe(profile, cond, job, phase=phase, experiment=experiment, options=options or Options(), progress=progress)
    recipe.check()
    if distributed.world().size > 1:
        return _run_distributed(recipe, data_run)
    cdata, data_run_id = data_run or data.run_stage(profile, cond, job, experiment, progress=progress)
    recipe.gate(cdata)
    # one process per key: its run, its checkpoint folder and its registered version; a second one waits,
    # then finds the finished run and reuses it
    while True:
        with tracking.claim(experiment, TRAIN_STAGE, recipe.key, job.run_name):
            finished = tracking.find_finished(experiment, TRAIN_STAGE, recipe.key)
            if finished is not None:
                return _reused(finished, profile)
            try:
                return recipe.train_and_save(data_run_id, recipe.begin())
            except tracking.Yielded:
                continue  # claim again: the claim waits for the run yielded to, then this loop reuses it


def _reused(finished, profile: Profile) -> TrainResult:
    """A finished run of the same key, as this job's result."""
    version = registry.version_for_run(profile.registered_model, finished.info.run_id)
    first = finished.data.tags.get("langdec.duplicate_of")
    if version is None and first:  # trained twice at once elsewhere; the first run's version holds the cell
        version = registry.version_for_run(profile.registered_model, first)
    return TrainResult(finished.info.run_id, True, version, f"runs:/{finished.info.run_id}/adapter", finished.data.metrics.get("eval_loss"))


def _run_distributed(recipe: Recipe, data_run: tuple[data.ConditionData, str] | None) -> TrainResult:
    """DDP: rank 0 prepares, gates, claims and decides (reuse, or train and from which checkpoint); every rank
    trains; rank 0 saves and registers and tells the others what it registered."""
    if recipe.options.eval_steps:
        raise LangdecError("validation during training (sweeps) runs in one process; launch sweeps without torchrun/accelerate")
    job, profile, experiment = recipe.job, recipe.profile, recipe.experiment
    if not distributed.world().main:
        decision = _from_rank_0()
        if decision["reuse"]:
            return TrainResult(**decision["reuse"])
        recipe.cdata = data.ConditionData(Path(decision["data"]), decision["digest"], decision["manifest"])
        recipe.params, recipe.key = decision["params"], decision["key"]
        recipe.ckpt_dir = Path(decision["ckpt_dir"])
        recipe.follow(Path(decision["resume_from"]) if decision["resume_from"] else None)
        return TrainResult(**_from_rank_0())
    cdata, data_run_id = data_run or data.run_stage(profile, recipe.cond, job, experiment, progress=recipe.progress)
    recipe.gate(cdata)
    with tracking.claim(experiment, TRAIN_STAGE, recipe.key, job.run_name):
        finished = tracking.find_finished(experiment, TRAIN_STAGE, recipe.key)
        if finished is not None:
            reused = _reused(finished, profile)
            distributed.share({"reuse": asdict(reused)})
            return reused
        previous, resume_from = recipe.begin()
        decision = {"reuse": None, "data": str(cdata.path), "digest": cdata.digest, "manifest": cdata.manifest,
                    "params": recipe.params, "key": recipe.key, "ckpt_dir": str(recipe.ckpt_dir),
                    "resume_from": str(resume_from) if resume_from else None}
        announced: list[bool] = []

        def announce() -> None:  # the run exists and did not step aside: the other ranks start training beside it
            distributed.share(decision)
            announced.append(True)

        try:
            result = recipe.train_and_save(data_run_id, resume=(previous, resume_from), announce=announce)
        except tracking.Yielded as yielded:
            # before announcing, the other ranks wait for a decision: reuse; after it, they stopped at the same
            # step as this one and wait for the result
            try:
                result = _after_stepping_aside(recipe, yielded.run_id)
            except Retryable as exc:
                distributed.share({"error": str(exc)})
                raise
            if not announced:
                distributed.share({"reuse": asdict(result)})
                return result
    distributed.share(asdict(result))
    return result


def _from_rank_0() -> dict:
    """What rank 0 shared (a decision or a result), or the retryable failure it shared instead, raised here too."""
    told = distributed.share(None)
    if "error" in told:
        raise Retryable(told["error"])
    return told


def _after_stepping_aside(recipe: Recipe, earlier: str) -> TrainResult:
    """This run stepped aside midway for `earlier` (DDP: every rank stopped at the same step): wait for it under
    the key's claim and take its result."""
    with tracking.claim(recipe.experiment, TRAIN_STAGE, recipe.key, recipe.job.run_name):
        finished = tracking.find_finished(recipe.experiment, TRAIN_STAGE, recipe.key)
    if finished is None:
        raise Retryable(f"{recipe.job.run_name}: stepped aside for run {earlier}, which ended without finishing; run the "
                        "same command again and it trains")
    return _reused(finished, recipe.profile)


class Recipe:
    """setup (data, checks, model, trainer) -> train -> save (adapter artifact, registered version)."""

    def __init__(self, profile: Profile, cond: Condition, job: Job, *, phase: str, experiment: str, options: Options,
                 progress: bool) -> None:
        self.profile, self.cond, self.job, self.phase, self.experiment = profile, cond, job, phase, experiment
        self.options, self.progress = options, progress
        self.training = profile.training
        self.quantization = options.quantization or self.training.quantization
        requested = options.backend if options.backend != "auto" else self.training.backend
        self.backend = choose_backend(requested, self.training.packing, self.training.peft_method)

    # ---- setup
    def check(self) -> None:
        """Refusals that need no data: nothing to train, no data yet, no GPU for the paper's NF4."""
        if not self.job.trains:
            raise LangdecError("the baseline has no adapter to train; evaluate it with `langdec evaluate --condition baseline`")
        if not self.cond.available:
            raise LangdecError(f"condition {self.cond.name}: {self.cond.unavailable_reason}")
        if self.cpu_for_paper and not self.training.allow_cpu:
            raise LangdecError("the paper profile trains NF4 on a CUDA GPU; none is visible. Use a GPU machine, "
                               "--profile smoke, or --set training.allow_cpu=true to run the same NF4 recipe on CPU "
                               "(slow: bitsandbytes' CPU path, paged AdamW 8-bit as plain AdamW)")

    @property
    def cpu_for_paper(self) -> bool:
        """The paper's NF4 on a machine without CUDA, where it is refused unless training.allow_cpu says otherwise."""
        import torch

        return self.quantization == "nf4" and not torch.cuda.is_available() and self.profile.name.startswith("paper")

    def gate(self, cdata: data.ConditionData) -> None:
        """Training refuses data that did not pass its checks, unless the user allowed it (then tagged)."""
        job = self.job
        self.cdata = cdata
        self.check_status, self.check_run_id, failed = checks.latest_status(self.experiment, cdata.digest)
        if self.check_status != "passed" and not self.options.allow_unchecked:
            what = "no data-check run" if self.check_status == "missing" else f"data checks FAILED ({', '.join(failed)})"
            raise LangdecError(
                f"{job.run_name}: refusing to train on {cdata.path}: {what} for data digest {cdata.digest}. "
                f"Run `langdec check --condition {job.condition} --lang {job.lang or 'en'} --tier {job.tier} --seed {job.seed} "
                f"--profile {self.profile.name}` or pass --allow-unchecked (recorded as a tag).")
        self.params = train_params(self.profile, job, self.quantization, self.backend)
        self.key = tracking.run_key(TRAIN_STAGE, self.params, cdata.digest)

    def begin(self) -> tuple[Any, Path | None]:
        """Under the key's claim, before any model work: the registry has room for this cell, and the interrupted
        run of this key with its last checkpoint, if both exist (stale checkpoints go)."""
        if self.options.register:
            registry.ensure_can_register(self.profile.registered_model, self.phase, self.job, supersede=self.options.supersede)
        self.ckpt_dir = ckpt_dir = _checkpoint_dir(self.experiment, self.key)
        previous = _resumable_run(self.experiment, self.key) if self.options.resume else None
        resume_from = _last_checkpoint(ckpt_dir) if previous is not None else None
        if previous is not None and resume_from is None and previous.info.status == "RUNNING" and not tracking.alive(previous):
            # killed before its first checkpoint (SIGKILL, a lost machine): close it as failed, start afresh
            from mlflow.tracking import MlflowClient

            MlflowClient().set_terminated(previous.info.run_id, "FAILED")
        if resume_from is None and ckpt_dir.exists():
            import shutil

            shutil.rmtree(ckpt_dir)  # stale checkpoints of a run we are not resuming
        return previous, resume_from

    def _tags(self, data_run_id: str) -> dict[str, str]:
        tags = {**data.job_tags(self.profile, self.job), "phase": self.phase, "run_name": self.job.run_name,
                "data_check_run": self.check_run_id or "", "data_check_status": self.check_status, "data_run": data_run_id,
                "backend": self.backend, "device": _device(), "peft_method": self.training.peft_method, **self.options.extra_tags}
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

    def follow(self, resume_from: Path | None) -> None:
        """A rank other than 0 under DDP: the same tokenizer, data and trainer, trained without any tracking."""
        from transformers import set_seed

        from .model import load_tokenizer

        set_seed(self.job.seed)
        tokenizer = load_tokenizer(self.profile.model, padding_side="right")
        train_dataset, _ = self._encode(tokenizer, self.cdata.frames()[0])
        trainer, _ = _trainer(self.profile, self.backend, self.quantization, self.job.seed, train_dataset, tokenizer,
                              self.ckpt_dir, tracking.TeeMetricLogger([]), False, self.options.stop_after_steps)
        from .trainer import TrainingStop

        self.stop = TrainingStop()
        self._fit(trainer, resume_from)
        self._stop_if_asked()

    def _encode(self, tokenizer, frame):
        """A split's files as the trainer's dataset (cut or windowed, packed or not) and what that made of them."""
        t = self.training
        ids, stats = tokenize_files(frame["code"].tolist(), tokenizer, t.max_length, t.long_files)
        return _dataset(ids, t.max_length if t.packing else None), stats

    def train_and_save(self, data_run_id: str, resume: tuple[Any, Path | None],
                       announce: Callable[[], None] | None = None) -> TrainResult:
        """`announce` (DDP's rank 0) tells the other ranks to start, once this run exists and has not stepped aside."""
        import mlflow
        from transformers import set_seed

        from . import peft_methods
        from .model import load_tokenizer

        opts, job = self.options, self.job
        previous, resume_from = resume
        tags = self._tags(data_run_id)
        preemption.install()  # SIGTERM/SIGUSR2: the run is marked FAILED and resumed next time, from a checkpoint when training
        from .trainer import TrainingStop

        self.stop = TrainingStop()
        with tracking.stage_run(self.experiment, TRAIN_STAGE, job.run_name, params=self.params, tags=tags,
                                data_digest=self.cdata.digest, reuse=False,
                                run_id=previous.info.run_id if resume_from else None, system_metrics=True,
                                on_earlier=self.stop.step_aside) as srun:
            if resume_from is not None:
                mlflow.set_tag("langdec.resumed_from", resume_from.name)
            else:
                # the same key started elsewhere at the same moment (two machines, or two LANGDEC_HOMEs on one): the
                # earlier run trains, this one steps aside before any model work and reuses its result
                tracking.yield_to_earlier(srun.run_id, self.experiment, TRAIN_STAGE, self.key)
            if announce is not None:
                announce()
            set_seed(job.seed)
            tokenizer = load_tokenizer(self.profile.model, padding_side="right")
            train_frame, validation_frame = self.cdata.frames()
            train_dataset, stats = self._encode(tokenizer, train_frame)
            logger = tracking.TeeMetricLogger([tracking.MlflowMetricLogger(srun.run_id), *opts.extra_loggers])
            logger.log({"files": stats.files, "windows": stats.windows, "tokens_total": stats.tokens, "target_tokens": stats.target_tokens,
                        **({"tokens_dropped": stats.dropped_tokens} if self.training.long_files == "truncate" else {})})
            eval_dataset = self._encode(tokenizer, validation_frame)[0] if opts.eval_steps else None
            trainer, counter = _trainer(self.profile, self.backend, self.quantization, job.seed, train_dataset, tokenizer, self.ckpt_dir, logger, self.progress, opts.stop_after_steps,
                                        eval_dataset=eval_dataset, eval_steps=opts.eval_steps)
            for callback in opts.callbacks:
                trainer.add_callback(callback)
            trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
            mlflow.log_metric("trainable_parameters", trainable)
            mlflow.set_tag("langdec.quantized_layers", quantized_layers(trainer.model))  # what loaded, not what was asked
            mlflow.log_metric("sequences", len(trainer.train_dataset))  # rows trained: fewer than windows when packed
            if self.training.peft_method != "lora":
                method = peft_methods.get(self.training.peft_method)
                mlflow.log_params({f"peft.{k}": v for k, v in method.settings(self.training).items()})
            # ---- train
            output, seconds = self._fit(trainer, resume_from)
            self._stop_if_asked(srun.run_id)
            padding = counter.padded / max(counter.real + counter.padded, 1)
            logger.log({"train_seconds": seconds, "padding_fraction": padding, "train_loss": float(output.training_loss),
                        "tokens_trained": float(counter.real), "tokens_per_s_overall": counter.real / max(seconds, 1e-9),
                        "peak_memory_mb": peak_memory_mb()})
            if opts.stop_after_steps is not None and trainer.state.global_step < trainer.state.max_steps:
                raise SystemExit(f"stopped after {trainer.state.global_step} steps (simulated interruption)")
            eval_loss = None
            if eval_dataset is not None:
                eval_loss = float(trainer.evaluate()["eval_loss"])
                mlflow.log_metric("eval_loss", eval_loss, step=trainer.state.global_step)
            # ---- save: the adapter is written whole to a temporary folder, then logged
            adapter_uri = _save_adapter(trainer, tokenizer, srun.run_id, job, self.profile, self.cdata)
            version = None
            if opts.register:
                version = registry.register(self.profile.registered_model, srun.run_id, adapter_uri, phase=self.phase, job=job,
                                            profile=self.profile, data_digest=self.cdata.digest, check_status=self.check_status,
                                            tags=tags, supersede=opts.supersede, run_key=self.key)
                mlflow.set_tag("registered_version", version)
        import shutil

        shutil.rmtree(self.ckpt_dir, ignore_errors=True)  # the adapter is in MLflow; checkpoints only serve an interrupted run
        return TrainResult(srun.run_id, False, version, adapter_uri, eval_loss)

    def _fit(self, trainer, resume_from: Path | None):
        start = time.perf_counter()
        trainer.add_callback(self.stop)
        try:
            with preemption.graceful(self.stop):
                output = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise LangdecError(f"could not write a checkpoint to {self.ckpt_dir} ({exc.strerror}); free disk space "
                                   "and re-run the same command to resume from the last complete checkpoint") from None
            raise
        return output, time.perf_counter() - start

    def _stop_if_asked(self, run_id: str | None = None) -> None:
        """Training stopped before its end. Stepping aside (an earlier run of the key is alive elsewhere): the run
        says for which run and ends `Yielded`, and the caller waits for that run and reuses it. A preemption
        signal: the trainer saved checkpoint-N; the run says so and ends `Preempted`, which a scheduler retries
        and the next attempt resumes from. `run_id` is rank 0's run; the other ranks have none."""
        from .trainer import TrainingStop

        stop = self.stop
        if stop.reason == TrainingStop.STEP_ASIDE:
            if run_id is not None:
                tracking.mark_yielded(run_id, stop.yield_to)
                if not os.environ.get("LANGDEC_CHECKPOINTS"):
                    import shutil

                    shutil.rmtree(self.ckpt_dir, ignore_errors=True)  # this machine's own; a shared folder is the other run's too
                raise tracking.Yielded(stop.yield_to)
            return
        if stop.reason != TrainingStop.SIGNAL:
            return
        import signal as signals

        name = signals.Signals(stop.signal).name if stop.signal is not None else "another rank's stop signal"
        if run_id is not None:
            from mlflow.tracking import MlflowClient

            MlflowClient().set_tag(run_id, "langdec.preempted", f"checkpoint-{stop.step} ({name})")
        raise Preempted(f"{self.job.run_name}: {name} received; training stopped at step {stop.step} with "
                        f"checkpoint-{stop.step} in {self.ckpt_dir}; the next attempt (the same command, or the "
                        "scheduler's requeue) resumes there")


def _device() -> str:
    from .model import device_name

    return device_name()


def _dataset(ids: list[list[int]], pack_to: int | None = None):
    """One row per window, or (packing) windows laid end to end in rows of `pack_to` tokens."""
    from datasets import Dataset

    from .packing import packed_rows

    return Dataset.from_dict(packed_rows(ids, pack_to) if pack_to else {"input_ids": ids})


def _trainer(profile: Profile, backend: str, quantization: str, seed: int, dataset, tokenizer, ckpt_dir: Path,
             logger: tracking.MetricLogger, progress: bool, stop_after_steps: int | None, *, eval_dataset=None,
             eval_steps: int | None = None):
    import torch
    from transformers.trainer_callback import PrinterCallback, ProgressCallback
    from trl import SFTConfig
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    from . import optimizers
    from .trainer import BarOnly, CountingCollator, LangdecTrainer, MetricsCallback, StopAfter

    t = profile.training
    cuda = torch.cuda.is_available()
    precision = training_precision(t)
    model, peft_config = _model_and_peft_config(profile, backend, quantization)
    if optimizers.resolve(effective_optimizer(t.optimizer)).needs_graph:
        # fused attention kernels (SDPA flash/efficient) have no double backward; the eager path does
        model.set_attn_implementation("eager")
    config = SFTConfig(
        output_dir=str(ckpt_dir),
        per_device_train_batch_size=t.batch_size,
        gradient_accumulation_steps=grad_accum(t),
        learning_rate=t.lr,
        lr_scheduler_type=t.scheduler,
        warmup_steps=t.warmup_ratio,  # a fraction of the steps when < 1 (transformers 5, pinned in pyproject.toml)
        num_train_epochs=t.epochs,
        max_steps=t.max_steps,
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,
        # a package optimiser is built by the trainer subclass; transformers only needs a valid placeholder
        optim=choice.name if (choice := optimizers.resolve(effective_optimizer(t.optimizer))).source == "transformers" else "adamw_torch",
        fp16=precision == "fp16",
        bf16=precision == "bf16",
        use_cpu=not cuda,
        logging_steps=t.logging_steps,
        save_steps=t.save_steps,
        save_total_limit=2,
        seed=seed,
        data_seed=seed,
        gradient_checkpointing=t.gradient_checkpointing,
        max_length=t.max_length,
        packing=False,  # the dataset arrives packed (langdec.packing), with the collator to match
        report_to="none",
        eval_strategy="steps" if eval_dataset is not None else "no",
        eval_steps=eval_steps,
        per_device_eval_batch_size=t.batch_size,
        disable_tqdm=not progress,
        dataloader_num_workers=0,
        ddp_find_unused_parameters=False,  # as the study's DDP: every LoRA parameter takes part in every step
    )
    if t.packing:
        from .packing import PackedCollator

        inner = PackedCollator(tokenizer.pad_token_id, flatten=packed_attention(True, precision) == "flash_attention_2")
    else:
        inner = DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id)
    collator = CountingCollator(inner)
    trainer = LangdecTrainer(model=model, args=config, train_dataset=dataset, eval_dataset=eval_dataset, processing_class=tokenizer,
                               peft_config=peft_config, data_collator=collator, langdec_optimizer=choice, langdec_training=t)
    trainer.add_callback(MetricsCallback(logger, collator))
    if eval_dataset is not None:
        # evaluation batches must not count as trained tokens: build eval loaders with the bare collator
        make_eval_loader = trainer.get_eval_dataloader

        def eval_loader(*args, **kwargs):
            trainer.data_collator = collator.inner
            try:
                return make_eval_loader(*args, **kwargs)
            finally:
                trainer.data_collator = collator

        trainer.get_eval_dataloader = eval_loader
    trainer.remove_callback(PrinterCallback)
    if progress:
        trainer.remove_callback(ProgressCallback)
        trainer.add_callback(BarOnly())
    if stop_after_steps is not None:
        trainer.add_callback(StopAfter(stop_after_steps))
    return trainer, collator


def _save_adapter(trainer, tokenizer, run_id: str, job: Job, profile: Profile, cdata: data.ConditionData) -> str:
    import tempfile

    import mlflow

    with tempfile.TemporaryDirectory(prefix="adapter-") as tmp:
        folder = Path(tmp) / "adapter"
        try:
            trainer.model.save_pretrained(folder)
            tokenizer.save_pretrained(folder)
            (folder / "langdec.json").write_text(json.dumps({
                "run_name": job.run_name, "condition": job.condition, "lang": job.lang, "tier": job.tier, "seed": job.seed,
                "base_model": profile.model.id, "data_digest": cdata.digest}, indent=2))
        except OSError as exc:
            raise LangdecError(f"could not write the adapter ({exc}); free disk space and re-run the same command to resume") from None
        user_modes(folder)  # safetensors writes its weights 0600
        mlflow.log_artifacts(str(folder), artifact_path="adapter")
    return f"runs:/{run_id}/adapter"
