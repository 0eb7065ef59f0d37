"""The study's recipe as a trainer: the profile's training settings as TRL's SFTConfig, the collator that matches
the rows (packed or padded, counting real tokens), and langdec's trainer with its callbacks."""

from __future__ import annotations

from pathlib import Path

from langdec.core.config import Profile
from langdec.models.effective import effective_optimizer
from langdec.tracking.runs import MetricLogger
from langdec.training.backend import model_and_peft_config, packed_attention
from langdec.training.keys import grad_accum
from langdec.training.optimizers import training_precision


def build_trainer(
    profile: Profile,
    backend: str,
    quantization: str,
    seed: int,
    dataset,
    tokenizer,
    ckpt_dir: Path,
    logger: MetricLogger,
    progress: bool,
    stop_after_steps: int | None,
    *,
    eval_dataset=None,
    eval_steps: int | None = None,
):
    """The trainer for one run, and the collator that counts the tokens it trains on."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    from langdec.training import optimizers
    from langdec.training.trainer import BarOnly, CountingCollator, LangdecTrainer, MetricsCallback, StopAfter

    t = profile.training
    choice = optimizers.resolve(effective_optimizer(t.optimizer))
    model, peft_config = model_and_peft_config(profile, backend, quantization)
    if choice.needs_graph:
        # fused attention kernels (SDPA flash/efficient) have no double backward; the eager path does
        model.set_attn_implementation("eager")
    config = sft_config(
        profile, seed, ckpt_dir, choice, progress, evaluates=eval_dataset is not None, eval_steps=eval_steps
    )
    collator = CountingCollator(_collator(profile, tokenizer))
    trainer = LangdecTrainer(
        model=model,
        args=config,
        train_dataset=dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
        data_collator=collator,
        langdec_optimizer=choice,
        langdec_training=t,
    )
    trainer.add_callback(MetricsCallback(logger, collator))
    if eval_dataset is not None:
        _evaluate_with_the_bare_collator(trainer, collator)
    trainer.remove_callback(PrinterCallback)
    if progress:
        trainer.remove_callback(ProgressCallback)
        trainer.add_callback(BarOnly())
    if stop_after_steps is not None:
        trainer.add_callback(StopAfter(stop_after_steps))
    return trainer, collator


def sft_config(
    profile: Profile, seed: int, ckpt_dir: Path, optimizer, progress: bool, *, evaluates: bool, eval_steps: int | None
):
    """The profile's training settings as TRL's SFTConfig; `optimizer` is the resolved optimiser choice."""
    import torch
    from trl import SFTConfig

    t = profile.training
    precision = training_precision(t)
    return SFTConfig(
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
        optim=optimizer.name if optimizer.source == "transformers" else "adamw_torch",
        fp16=precision == "fp16",
        bf16=precision == "bf16",
        use_cpu=not torch.cuda.is_available(),
        logging_steps=t.logging_steps,
        save_steps=t.save_steps,
        save_total_limit=2,
        seed=seed,
        data_seed=seed,
        gradient_checkpointing=t.gradient_checkpointing,
        max_length=t.max_length,
        packing=False,  # the dataset arrives packed (langdec.packing), with the collator to match
        report_to="none",
        eval_strategy="steps" if evaluates else "no",
        eval_steps=eval_steps,
        per_device_eval_batch_size=t.batch_size,
        disable_tqdm=not progress,
        dataloader_num_workers=0,
        ddp_find_unused_parameters=False,  # as the study's DDP: every LoRA parameter takes part in every step
    )


def _collator(profile: Profile, tokenizer):
    """Packed rows keep their files apart (flattened for flash-attention); padded rows are padded per batch."""
    t = profile.training
    if t.packing:
        from langdec.training.packing import PackedCollator

        flatten = packed_attention(True, training_precision(t)) == "flash_attention_2"
        return PackedCollator(tokenizer.pad_token_id, flatten=flatten)
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    return DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id)


def _evaluate_with_the_bare_collator(trainer, collator) -> None:
    """Evaluation batches must not count as trained tokens: eval loaders are built with the bare collator."""
    make_eval_loader = trainer.get_eval_dataloader

    def eval_loader(*args, **kwargs):
        trainer.data_collator = collator.inner
        try:
            return make_eval_loader(*args, **kwargs)
        finally:
            trainer.data_collator = collator

    trainer.get_eval_dataloader = eval_loader
