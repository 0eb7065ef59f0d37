"""The `train` stage: one LoRA/QLoRA adapter per (condition, language, tier, seed).

Reads top to bottom like a recipe: setup (data, checks, model), train (TRL
SFTTrainer; windows so no token is cut, packed rows so few are padding), save (adapter artifact, registered
version). The CPU smoke profile runs the same code path as the GPU paper profile.
"""

from __future__ import annotations

import errno
import json
import os
import resource
import signal
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import checks, data, registry, tracking
from .config import Condition, Job, Profile
from .errors import LangdecError
from .paths import work_dir

TRAIN_STAGE = "train"


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
class _CountingCollator:
    """Wraps the trainer's collator to count real vs padded tokens actually trained on."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.real = 0
        self.padded = 0

    def __call__(self, features):
        batch = self.inner(features)
        real = sum(len(f["input_ids"]) for f in features)
        self.real += real
        self.padded += int(batch["input_ids"].numel()) - real
        return batch


def peak_memory_mb() -> float:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _callback(logger: tracking.MetricLogger, counter: _CountingCollator):
    from transformers import TrainerCallback

    class MetricsCallback(TrainerCallback):
        def __init__(self) -> None:
            self.start = time.perf_counter()
            self.tokens_at_start = counter.real

        def on_train_begin(self, args, state, control, **kwargs):
            self.start = time.perf_counter()
            self.tokens_at_start = counter.real

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = logs or {}
            elapsed = max(time.perf_counter() - self.start, 1e-9)
            metrics = {k: float(v) for k, v in logs.items() if isinstance(v, (int, float)) and k in ("loss", "learning_rate", "grad_norm", "epoch", "task_loss", "fourier_penalty")}
            metrics["tokens_seen"] = float(counter.real)
            metrics["tokens_per_s"] = (counter.real - self.tokens_at_start) / elapsed
            metrics["peak_memory_mb"] = peak_memory_mb()
            logger.log(metrics, step=state.global_step)

    return MetricsCallback()


# --------------------------------------------------------------------------- backends
def choose_backend(requested: str, packing: bool = False) -> str:
    """hf or unsloth. Packed rows are proven to keep files apart on the hf path only (tests/test_train.py),
    so with packing `auto` takes hf and an explicit unsloth is refused."""
    import importlib.util

    import torch

    has_unsloth = importlib.util.find_spec("unsloth") is not None
    if requested == "unsloth":
        if not torch.cuda.is_available():
            raise LangdecError("--backend unsloth needs a CUDA GPU; use --backend hf on this machine")
        if not has_unsloth:
            raise LangdecError("--backend unsloth needs the GPU extra: pip install 'langdec[gpu]'")
        if packing:
            raise LangdecError("--backend unsloth with training.packing=true is not verified to keep packed files apart; "
                               "use --backend hf (packing proven), or --set training.packing=false")
        return "unsloth"
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
    from peft import LoraConfig

    t = profile.training
    lora = LoraConfig(r=t.lora_r, lora_alpha=t.lora_alpha, lora_dropout=t.lora_dropout, bias="none",
                      target_modules=list(t.target_modules), task_type="CAUSAL_LM")
    if backend == "unsloth":
        from unsloth import FastLanguageModel  # type: ignore[import-not-found]

        from .model import model_source

        model, _ = FastLanguageModel.from_pretrained(model_source(profile), max_seq_length=t.max_length, load_in_4bit=quantization == "nf4")
        model = FastLanguageModel.get_peft_model(model, r=t.lora_r, lora_alpha=t.lora_alpha, lora_dropout=t.lora_dropout,
                                                 target_modules=list(t.target_modules), bias="none", use_gradient_checkpointing="unsloth")
        return model, None
    from .model import load_base_model

    precision = training_precision(t)
    model = load_base_model(profile, quantization=quantization, precision=precision,
                            attn_implementation=packed_attention(t.packing, precision))
    if quantization == "nf4":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=t.gradient_checkpointing)
    return model, lora


# --------------------------------------------------------------------------- recipe
@dataclass
class TrainResult:
    run_id: str
    reused: bool
    version: str | None
    adapter_uri: str
    eval_loss: float | None = None


def effective_optimizer(name: str) -> str:
    """Paged optimizers live in CUDA memory; on CPU the same recipe uses plain AdamW."""
    import torch

    return name if torch.cuda.is_available() or not name.startswith("paged") else "adamw_torch"


def effective_loss(name: str) -> str:
    """By measurement (benchmarks/train_throughput.py): TRL's fused head saves the logits' memory on
    CUDA, but its CPU fallback is slower and larger than the plain loss, so `auto` picks per device."""
    import torch

    return name if name != "auto" else ("fused" if torch.cuda.is_available() else "plain")


def training_precision(t) -> str:
    from . import optimizers
    from .model import effective_precision

    return effective_precision(t.precision, second_order=optimizers.resolve(effective_optimizer(t.optimizer)).needs_graph)


def _trainer_class():
    """SFTTrainer plus the options transformers does not have: package optimisers (Sophia),
    a second-order backward, and the Fourier penalty logged beside the task loss."""
    from transformers import Trainer
    from trl import SFTTrainer

    from . import optimizers, regularizers

    class LangdecTrainer(SFTTrainer):
        def __init__(self, *args, langdec_optimizer: optimizers.OptimizerChoice, langdec_training: Any, **kwargs) -> None:
            self.langdec_optimizer = langdec_optimizer
            self.langdec_training = langdec_training
            super().__init__(*args, **kwargs)

        def create_optimizer(self, model=None):
            choice = self.langdec_optimizer
            if self.optimizer is None and choice.source == "pytorch_optimizer":
                params = [p for p in (model or self.model).parameters() if p.requires_grad]
                self.optimizer = optimizers.build(choice, params, self.args.learning_rate, self.args.weight_decay,
                                                  dict(self.langdec_training.optimizer_args))
                return self.optimizer
            return super().create_optimizer(model)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            # With a KV cache, transformers skips its packed-sequence mask and packed files attend to each
            # other (measured; the test shows it). Trainer's default args keep the cache off through the
            # config; pinning it here keeps the plain path below safe whatever the model's config says.
            inputs["use_cache"] = False
            # TRL's fused LM head has no double backward: a second-order step needs the plain loss (full logits)
            plain = effective_loss(self.langdec_training.loss) == "plain" or self.langdec_optimizer.needs_graph
            if plain:
                out = Trainer.compute_loss(self, model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)
            else:
                out = super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)
            lam = self.langdec_training.fourier_lambda
            if lam <= 0 or not model.training:
                return out
            loss = out[0] if return_outputs else out
            penalty = regularizers.fourier_penalty(model, self.langdec_training.fourier_cutoff)
            sums = self.__dict__.setdefault("_langdec_sums", {"task_loss": 0.0, "fourier_penalty": 0.0, "n": 0})
            sums["task_loss"] += float(loss.detach())
            sums["fourier_penalty"] += float(penalty.detach())
            sums["n"] += 1
            loss = loss + lam * penalty.to(loss.dtype)
            return (loss, *out[1:]) if return_outputs else loss

        def training_step(self, model, inputs, num_items_in_batch=None):
            if not self.langdec_optimizer.needs_graph:
                return super().training_step(model, inputs, num_items_in_batch)
            backward = self.accelerator.backward
            # the Hutchinson estimate in step() differentiates these gradients again
            self.accelerator.backward = lambda loss, **kw: backward(loss, create_graph=True, **kw)
            try:
                return super().training_step(model, inputs, num_items_in_batch)
            finally:
                self.accelerator.backward = backward

        def log(self, logs, start_time=None):
            sums = self.__dict__.get("_langdec_sums")
            if sums and sums["n"] and "loss" in logs:
                logs = {**logs, "task_loss": sums["task_loss"] / sums["n"], "fourier_penalty": sums["fourier_penalty"] / sums["n"]}
                sums.update(task_loss=0.0, fourier_penalty=0.0, n=0)
            super().log(logs, start_time)

    return LangdecTrainer


def train_params(profile: Profile, job: Job, quantization: str, backend: str) -> dict[str, Any]:
    settings = asdict(profile.training)
    settings["optimizer"] = effective_optimizer(settings["optimizer"])
    settings["loss"] = effective_loss(settings["loss"])
    settings["precision"] = training_precision(profile.training)
    return {
        "condition": job.condition, "lang": job.lang or "en", "tier": job.tier, "seed": job.seed, "profile": profile.name,
        "model_id": profile.model.id, "quantization": quantization, "backend": backend,
        **{f"train.{k}": v for k, v in settings.items() if k not in ("quantization", "backend")},
        **({"arm": job.arm} if job.arm else {}),
    }


def run_key(profile: Profile, job: Job, quantization: str, backend: str, data_digest: str) -> str:
    """The reuse key of a training run: every effective setting, the code version and the data."""
    return tracking.run_key(TRAIN_STAGE, train_params(profile, job, quantization, backend), data_digest)


def _checkpoint_dir(experiment: str, key: str) -> Path:
    return work_dir() / "checkpoints" / experiment / key


def _last_checkpoint(folder: Path) -> Path | None:
    found = sorted(folder.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1])) if folder.exists() else []
    return found[-1] if found else None


def _resumable_run(experiment: str, key: str):
    from mlflow.tracking import MlflowClient

    runs = MlflowClient().search_runs(
        [tracking.experiment_id(experiment)],
        filter_string=f"tags.`langdec.stage` = '{TRAIN_STAGE}' and tags.`langdec.run_key` = '{key}'",
        order_by=["attributes.start_time DESC"], max_results=1,
    )
    return runs[0] if runs and runs[0].info.status != "FINISHED" else None


def _raise_on_sigterm() -> None:
    owner = os.getpid()

    def handler(signum, frame):
        if os.getpid() != owner:
            # a forked worker (the transpiler's pool) inherited this handler: end as SIGTERM would, without a message
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise SystemExit(f"terminated by signal {signum}")  # the run context marks the run FAILED

    if sys.platform != "win32":
        signal.signal(signal.SIGTERM, handler)


def run(profile: Profile, cond: Condition, job: Job, *, phase: str, experiment: str, quantization: str | None = None,
        backend: str = "auto", allow_unchecked: bool = False, resume: bool = True, supersede: bool = False,
        data_run: tuple[data.ConditionData, str] | None = None, progress: bool = True,
        extra_loggers: list[tracking.MetricLogger] | None = None, stop_after_steps: int | None = None,
        register: bool = True, eval_steps: int | None = None, callbacks: list | None = None,
        extra_tags: dict[str, str] | None = None) -> TrainResult:
    """Train one adapter. Sweeps pass register=False (trials are not study adapters), eval_steps
    (validation loss during training) and callbacks (e.g. Optuna pruning)."""
    import mlflow

    # ---- setup: data, checks, refusal before any model work
    if not job.trains:
        raise LangdecError("the baseline has no adapter to train; evaluate it with `langdec evaluate --condition baseline`")
    if not cond.available:
        raise LangdecError(f"condition {cond.name}: {cond.unavailable_reason}")
    quantization = quantization or profile.training.quantization
    backend = choose_backend(backend if backend != "auto" else profile.training.backend, profile.training.packing)
    import torch

    if quantization == "nf4" and not torch.cuda.is_available() and profile.name == "paper":
        raise LangdecError("the paper profile trains NF4 on a CUDA GPU; none is visible. Use a GPU machine or --profile smoke")
    cdata, data_run_id = data_run or data.run_stage(profile, cond, job, experiment, progress=progress)
    status, check_run_id, failed = checks.latest_status(experiment, cdata.digest)
    if status != "passed" and not allow_unchecked:
        what = "no data-check run" if status == "missing" else f"data checks FAILED ({', '.join(failed)})"
        raise LangdecError(
            f"{job.run_name}: refusing to train on {cdata.path}: {what} for data digest {cdata.digest}. "
            f"Run `langdec check --condition {job.condition} --lang {job.lang or 'en'} --tier {job.tier} --seed {job.seed} --profile {profile.name}`"
            " or pass --allow-unchecked (recorded as a tag)."
        )
    params = train_params(profile, job, quantization, backend)
    key = run_key(profile, job, quantization, backend, cdata.digest)
    # one process per key: its run, its checkpoint folder and its registered version; a second one waits,
    # then finds the finished run below and reuses it
    with tracking.claim(experiment, TRAIN_STAGE, key, job.run_name):
        finished = tracking.find_finished(experiment, TRAIN_STAGE, key)
        if finished is not None:
            version = registry.version_for_run(profile.registered_model, finished.info.run_id)
            return TrainResult(finished.info.run_id, True, version, f"runs:/{finished.info.run_id}/adapter",
                               finished.data.metrics.get("eval_loss"))
        if register:
            registry.ensure_can_register(profile.registered_model, phase, job, supersede=supersede)
        ckpt_dir = _checkpoint_dir(experiment, key)
        previous = _resumable_run(experiment, key) if resume else None
        resume_from = _last_checkpoint(ckpt_dir) if previous is not None else None
        if previous is not None and resume_from is None and previous.info.status == "RUNNING":
            # killed before its first checkpoint (SIGKILL, a lost machine): close it as failed, start afresh
            from mlflow.tracking import MlflowClient

            MlflowClient().set_terminated(previous.info.run_id, "FAILED")
        if resume_from is None and ckpt_dir.exists():
            import shutil

            shutil.rmtree(ckpt_dir)  # stale checkpoints of a run we are not resuming

        from transformers import set_seed

        set_seed(job.seed)
        from .model import load_tokenizer

        tokenizer = load_tokenizer(profile, padding_side="right")
        train_frame, validation_frame = cdata.frames()
        train_ids, stats = tokenize_windows(train_frame["code"].tolist(), tokenizer, profile.training.max_length)
        tags = {**data.job_tags(profile, job), "phase": phase, "run_name": job.run_name, "data_check_run": check_run_id or "",
                "data_check_status": status, "data_run": data_run_id, "backend": backend, "device": _device(), **(extra_tags or {})}
        if status != "passed":
            tags["langdec.allow_unchecked"] = "true"
        if cdata.manifest.get("transpiler_version"):
            tags["transpiler_version"] = cdata.manifest["transpiler_version"]
            tags["pack_digest"] = cdata.manifest["pack_digest"]
        _raise_on_sigterm()
        with tracking.stage_run(experiment, TRAIN_STAGE, job.run_name, params=params, tags=tags, data_digest=cdata.digest,
                                reuse=False, run_id=previous.info.run_id if resume_from else None, system_metrics=True) as srun:
            if resume_from is not None:
                mlflow.set_tag("langdec.resumed_from", resume_from.name)
            logger = tracking.TeeMetricLogger([tracking.MlflowMetricLogger(srun.run_id), *(extra_loggers or [])])
            logger.log({"files": stats.files, "windows": stats.windows, "tokens_total": stats.tokens, "target_tokens": stats.target_tokens})
            pack_to = profile.training.max_length if profile.training.packing else None
            train_dataset = _dataset(train_ids, pack_to)
            eval_dataset = None
            if eval_steps:
                eval_ids, _ = tokenize_windows(validation_frame["code"].tolist(), tokenizer, profile.training.max_length)
                eval_dataset = _dataset(eval_ids, pack_to)
            # ---- train
            trainer, counter = _trainer(profile, backend, quantization, job.seed, train_dataset, tokenizer, ckpt_dir, logger, progress,
                                        stop_after_steps, eval_dataset=eval_dataset, eval_steps=eval_steps)
            for callback in callbacks or []:
                trainer.add_callback(callback)
            trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
            mlflow.log_metric("trainable_parameters", trainable)
            mlflow.log_metric("sequences", len(trainer.train_dataset))  # rows trained: fewer than windows when packed
            start = time.perf_counter()
            try:
                output = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
            except OSError as exc:
                if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise LangdecError(f"could not write a checkpoint to {ckpt_dir} ({exc.strerror}); free disk space "
                                       "and re-run the same command to resume from the last complete checkpoint") from None
                raise
            seconds = time.perf_counter() - start
            padding = counter.padded / max(counter.real + counter.padded, 1)
            logger.log({"train_seconds": seconds, "padding_fraction": padding, "train_loss": float(output.training_loss),
                        "tokens_trained": float(counter.real), "tokens_per_s_overall": counter.real / max(seconds, 1e-9),
                        "peak_memory_mb": peak_memory_mb()})
            if stop_after_steps is not None and trainer.state.global_step < trainer.state.max_steps:
                raise SystemExit(f"stopped after {trainer.state.global_step} steps (simulated interruption)")
            eval_loss = None
            if eval_dataset is not None:
                eval_loss = float(trainer.evaluate()["eval_loss"])
                mlflow.log_metric("eval_loss", eval_loss, step=trainer.state.global_step)
            # ---- save: the adapter is written whole to a temporary folder, then logged
            adapter_uri = _save_adapter(trainer, tokenizer, srun.run_id, job, profile, cdata)
            version = None
            if register:
                version = registry.register(profile.registered_model, srun.run_id, adapter_uri, phase=phase, job=job, profile=profile,
                                            data_digest=cdata.digest, check_status=status, tags=tags, supersede=supersede)
                mlflow.set_tag("registered_version", version)
        import shutil

        shutil.rmtree(ckpt_dir, ignore_errors=True)  # the adapter is in MLflow; checkpoints only serve an interrupted run
        return TrainResult(srun.run_id, False, version, adapter_uri, eval_loss)


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
    from transformers import TrainerCallback
    from trl import SFTConfig
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    from . import optimizers

    t = profile.training
    cuda = torch.cuda.is_available()
    precision = training_precision(t)
    model, lora = _model_and_peft_config(profile, backend, quantization)
    if optimizers.resolve(effective_optimizer(t.optimizer)).needs_graph:
        # fused attention kernels (SDPA flash/efficient) have no double backward; the eager path does
        model.set_attn_implementation("eager")
    config = SFTConfig(
        output_dir=str(ckpt_dir),
        per_device_train_batch_size=t.batch_size,
        gradient_accumulation_steps=t.grad_accum,
        learning_rate=t.lr,
        lr_scheduler_type=t.scheduler,
        warmup_steps=t.warmup_ratio,
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
    )
    if t.packing:
        from .packing import PackedCollator

        inner = PackedCollator(tokenizer.pad_token_id, flatten=packed_attention(True, precision) == "flash_attention_2")
    else:
        inner = DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id)
    collator = _CountingCollator(inner)
    trainer = _trainer_class()(model=model, args=config, train_dataset=dataset, eval_dataset=eval_dataset, processing_class=tokenizer,
                               peft_config=lora, data_collator=collator, langdec_optimizer=choice, langdec_training=t)
    trainer.add_callback(_callback(logger, collator))
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
    # Metrics go to MLflow; the terminal keeps a bare progress bar instead of a dict per step.
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    if progress:
        class BarOnly(ProgressCallback):
            def on_log(self, args, state, control, logs=None, **kwargs):
                return None

        trainer.remove_callback(ProgressCallback)
        trainer.add_callback(BarOnly())
    if stop_after_steps is not None:
        class Stop(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if state.global_step >= stop_after_steps:
                    control.should_save = True
                    control.should_training_stop = True

        trainer.add_callback(Stop())
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
        mlflow.log_artifacts(str(folder), artifact_path="adapter")
    return f"runs:/{run_id}/adapter"
