"""CUDA-only paths; every test here skips cleanly on a machine without a GPU (CI has none)."""

from __future__ import annotations

import importlib.util

import mlflow
import pytest
import torch

from langdec import config, tracking

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def _train(profile):
    from test_train import JOB, _prepare
    from langdec import train

    tracking.configure()
    cond, data_run = _prepare(profile, "phase-3-smoke")
    return train.run(profile, cond, JOB, phase="phase-3", experiment="phase-3-smoke", data_run=data_run, progress=False)


@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None, reason="bitsandbytes not installed")
def test_qlora_nf4_fp16_on_cuda(store, smoke_profile):
    profile = config.load_profile("smoke", ["training.max_steps=4", "training.quantization=nf4", "training.precision=fp16",
                                            "training.optimizer=paged_adamw_8bit"])
    run = mlflow.get_run(_train(profile).run_id)
    assert run.data.params["train.optimizer"] == "paged_adamw_8bit"
    assert run.data.metrics["peak_memory_mb"] > 0 and run.data.metrics["loss"] > 0


@pytest.mark.skipif(importlib.util.find_spec("flash_attn") is None, reason="flash-attn not installed")
def test_packing_really_packs(store, smoke_profile):
    profile = config.load_profile("smoke", ["training.max_steps=2", "training.packing=true", "training.precision=bf16"])
    metrics = mlflow.get_run(_train(profile).run_id).data.metrics
    assert metrics["sequences"] < metrics["windows"]


def test_training_benchmark_backends_on_cuda(tmp_path, monkeypatch):
    """The fused-loss path and the plain path both train on CUDA (figures go to the benchmark table)."""
    import sys
    from pathlib import Path

    monkeypatch.setenv("LANGDEC_BENCH_DIR", str(tmp_path))
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import train_throughput

    for backend in ("plain", "fused"):
        row = train_throughput.one("small", "nf4", backend, 2, 256, 1)
        assert row["status"] == "ok" and row["tokens_per_s"] > 0 and row["peak_gib"] > 0
