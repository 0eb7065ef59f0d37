"""CUDA-only paths; every test here skips cleanly on a machine without a GPU (CI has none)."""

from __future__ import annotations

import importlib.util

import mlflow
import pytest
import torch

from langdec.core import config
from langdec.tracking import runs as tracking

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def _train(profile):
    from test_train import JOB, _prepare

    from langdec.training import stage as train

    tracking.configure()
    cond, data_run = _prepare(profile, "phase-3-smoke")
    return train.run(profile, cond, JOB, phase="phase-3", experiment="phase-3-smoke", data_run=data_run, progress=False)


@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None, reason="bitsandbytes not installed")
def test_qlora_nf4_fp16_on_cuda(store, smoke_profile):
    profile = config.load_profile(
        "smoke",
        [
            "training.max_steps=4",
            "training.quantization=nf4",
            "training.precision=fp16",
            "training.optimizer=paged_adamw_8bit",
        ],
    )
    run = mlflow.get_run(_train(profile).run_id)
    assert run.data.params["train.optimizer"] == "paged_adamw_8bit"
    assert run.data.metrics["peak_memory_mb"] > 0 and run.data.metrics["loss"] > 0


def test_packing_really_packs(store, smoke_profile):
    profile = config.load_profile("smoke", ["training.max_steps=2", "training.packing=true", "training.precision=bf16"])
    metrics = mlflow.get_run(_train(profile).run_id).data.metrics
    assert metrics["sequences"] < metrics["windows"] and metrics["padding_fraction"] < 0.05


@pytest.mark.skipif(importlib.util.find_spec("flash_attn") is None, reason="flash-attn not installed")
def test_flash_attention_packed_rows_keep_files_apart(store, smoke_profile, tmp_path):
    """With flash-attention the collator flattens the batch into one row; its varlen kernels must
    give each file's loss as if trained alone (bf16, so to bf16's precision)."""
    from langdec.models.loading import load_tokenizer
    from langdec.training import backend, recipe, tokenize

    profile = config.load_profile(
        "smoke", ["training.packing=true", "training.precision=bf16", "training.lora_dropout=0.0"]
    )
    assert backend.packed_attention(True, "bf16") == "flash_attention_2"
    tokenizer = load_tokenizer(profile.model)
    torch.manual_seed(0)
    docs = [torch.randint(3, profile.model.tokenizer_vocab, (n,)).tolist() for n in (13, 40, 25)]
    trainer, _ = recipe.build_trainer(
        profile,
        "hf",
        "none",
        42,
        tokenize.dataset(docs, 45),
        tokenizer,
        tmp_path / "ckpt",
        tracking.MemoryMetricLogger(),
        False,
        None,
    )
    collate = trainer.data_collator
    rows = trainer.train_dataset
    packed = {k: v.cuda() if hasattr(v, "cuda") else v for k, v in collate([rows[i] for i in range(len(rows))]).items()}
    assert packed["input_ids"].shape == (1, 78) and "cu_seq_lens_q" in packed
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        together = float(trainer.compute_loss(trainer.model, packed))
        apart = []
        for d in docs:
            one = {
                k: v.cuda() if hasattr(v, "cuda") else v
                for k, v in collate([{"input_ids": d, "seq_lengths": [len(d)]}]).items()
            }
            apart.append(float(trainer.compute_loss(trainer.model, one)))
    weights = [len(d) - 1 for d in docs]
    assert together == pytest.approx(sum(l * w for l, w in zip(apart, weights)) / sum(weights), rel=2e-2)


def test_training_benchmark_backends_on_cuda(tmp_path, monkeypatch):
    """The fused-loss path and the plain path both train on CUDA (figures go to the benchmark table)."""
    import sys
    from pathlib import Path

    monkeypatch.setenv("LANGDEC_BENCH_DIR", str(tmp_path))
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import train_throughput

    for backend in ("plain", "fused", "langdec"):
        row = train_throughput.one("small", "nf4", backend, 2, 256, 1, "lognormal")
        assert row["status"] == "ok" and row["tokens_per_s"] > 0 and row["peak_gib"] > 0
