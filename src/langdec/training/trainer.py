"""The trainer langdec runs: TRL's SFTTrainer with langdec's optimisers, second-order steps and Fourier
penalty, and the callbacks that log metrics, keep a bare progress bar and stop a simulated interruption.
Imported only when a run trains (TRL takes seconds to import)."""

from __future__ import annotations

import time
from typing import Any

from transformers import Trainer, TrainerCallback
from transformers.trainer_callback import ProgressCallback
from trl import SFTTrainer

from langdec.models.effective import effective_loss, peak_memory_mb
from langdec.tracking.runs import MetricLogger
from langdec.training import optimizers, regularizers


class CountingCollator:
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


class MetricsCallback(TrainerCallback):
    """Loss, rates and memory to langdec's metric logger at every logging step."""

    def __init__(self, logger: MetricLogger, counter: CountingCollator) -> None:
        self.logger = logger
        self.counter = counter
        self.start = time.perf_counter()
        self.tokens_at_start = counter.real

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.perf_counter()
        self.tokens_at_start = self.counter.real

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        metrics = {
            k: float(v)
            for k, v in logs.items()
            if isinstance(v, (int, float))
            and k in ("loss", "learning_rate", "grad_norm", "epoch", "task_loss", "fourier_penalty")
        }
        metrics["tokens_seen"] = float(self.counter.real)
        metrics["tokens_per_s"] = (self.counter.real - self.tokens_at_start) / elapsed
        metrics["peak_memory_mb"] = peak_memory_mb()
        self.logger.log(metrics, step=state.global_step)


class BarOnly(ProgressCallback):
    """Metrics go to MLflow; the terminal keeps a bare progress bar instead of a dict per step."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        return None


class StopAfter(TrainerCallback):
    """Ends training after `steps` with a checkpoint, as an interruption would (tests resume from it)."""

    def __init__(self, steps: int) -> None:
        self.steps = steps

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= self.steps:
            control.should_save = True
            control.should_training_stop = True


class TrainingStop(TrainerCallback):
    """Ends training at the end of the step in progress once a stop was requested: a preemption signal (see
    langdec.preemption) stops with a checkpoint to resume from; stepping aside for an earlier run of the same key
    (another machine that passed the claim at the same moment) stops without one, since that run trains the
    adapter. Under DDP every rank must stop at the same step or the next collective hangs, so the ranks agree on
    it each step (one tiny all-reduce)."""

    NONE, STEP_ASIDE, SIGNAL = 0, 1, 2

    def __init__(self) -> None:
        self.signal: int | None = None
        self.yield_to: str | None = None
        self.step: int | None = None
        self.reason = self.NONE

    def request(self, signum: int) -> None:
        self.signal = signum

    def step_aside(self, run_id: str) -> None:
        self.yield_to = run_id

    def _wanted(self) -> int:
        return self.SIGNAL if self.signal is not None else self.STEP_ASIDE if self.yield_to is not None else self.NONE

    def _agreed(self) -> int:
        from langdec.training import distributed

        if distributed.world().size == 1:
            return self._wanted()
        import torch
        import torch.distributed as dist

        flag = torch.tensor(
            [float(self._wanted())],
            device="cuda" if torch.cuda.is_available() and dist.get_backend() == "nccl" else "cpu",
        )
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return int(flag.item())

    def on_step_end(self, args, state, control, **kwargs):
        reason = self._agreed()
        if reason != self.NONE:
            control.should_save = reason == self.SIGNAL
            control.should_training_stop = True
            self.step, self.reason = state.global_step, reason


class LangdecTrainer(SFTTrainer):
    """SFTTrainer plus the options transformers does not have: package optimisers (Sophia),
    a second-order backward, and the Fourier penalty logged beside the task loss."""

    def __init__(self, *args, langdec_optimizer: optimizers.OptimizerChoice, langdec_training: Any, **kwargs) -> None:
        self.langdec_optimizer = langdec_optimizer
        self.langdec_training = langdec_training
        super().__init__(*args, **kwargs)

    def create_optimizer(self, model=None):
        choice = self.langdec_optimizer
        if self.optimizer is None and choice.source == "pytorch_optimizer":
            params = [p for p in (model or self.model).parameters() if p.requires_grad]
            self.optimizer = optimizers.build(
                choice,
                params,
                self.args.learning_rate,
                self.args.weight_decay,
                dict(self.langdec_training.optimizer_args),
            )
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
            out = Trainer.compute_loss(
                self, model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
            )
        else:
            out = super().compute_loss(
                model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
            )
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
            logs = {
                **logs,
                "task_loss": sums["task_loss"] / sums["n"],
                "fourier_penalty": sums["fourier_penalty"] / sums["n"],
            }
            sums.update(task_loss=0.0, fourier_penalty=0.0, n=0)
        super().log(logs, start_time)
