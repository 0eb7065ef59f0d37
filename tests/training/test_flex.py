"""FLeX: optimiser choice (Sophia from pytorch-optimizer), the Fourier regulariser, and the FLeX ladder."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
import torch
from mlflow.tracking import MlflowClient
from transformers import TrainerCallback

from langdec import cli
from langdec.core import config
from langdec.core.errors import LangdecError
from langdec.data import checks
from langdec.data import stage as data
from langdec.tracking import runs as tracking
from langdec.training import optimizers, regularizers
from langdec.training import stage as train

ROOT = Path(__file__).resolve().parents[2]
JOB = config.Job("2", "es", "5k", 42)


def test_optimizer_names_resolve_to_transformers_or_the_package():
    assert optimizers.resolve("adamw_torch") == optimizers.OptimizerChoice("adamw_torch", "transformers")
    sophia = optimizers.resolve("SophiaH")
    assert sophia.source == "pytorch_optimizer" and sophia.needs_graph
    assert optimizers.resolve("lion").source in ("transformers", "pytorch_optimizer")
    with pytest.raises(LangdecError, match="unknown optimizer 'sofia'; valid optimizers: .*sophiah"):
        optimizers.resolve("sofia")
    with pytest.raises(LangdecError, match="fp16 loss scaling"):
        config.load_profile("smoke", ["training.optimizer=sophiah", "training.precision=fp16"])


def test_high_frequency_energy_separates_smooth_from_rough_updates():
    smooth = torch.ones(16, 32)
    rough = torch.ones(16, 32)
    rough[::2] *= -1
    rough[:, ::2] *= -1  # a checkerboard: all energy at the highest frequency
    assert regularizers.high_frequency_energy(smooth, 0.5) == pytest.approx(0.0, abs=1e-6)
    assert regularizers.high_frequency_energy(rough, 0.5) > 100 * regularizers.high_frequency_energy(
        smooth + 1e-3 * rough, 0.5
    )


def _train(profile, experiment: str, *, callbacks=None):
    cond = config.condition(JOB.condition)
    data_run = data.run_stage(profile, cond, JOB, experiment, progress=False)
    checks.run_stage(
        data_run[0], cond, experiment, {"run_name": JOB.run_name}, tier_idx=set(data.build_tier_idx(profile, JOB))
    )
    return train.run(
        profile,
        cond,
        JOB,
        phase="phase-3",
        experiment=experiment,
        data_run=data_run,
        progress=False,
        options=train.Options(register=False, callbacks=list(callbacks or [])),
    )


class _SeeOptimizer(TrainerCallback):
    def __init__(self) -> None:
        self.name = None

    def on_train_begin(self, args, state, control, optimizer=None, **kwargs):
        self.name = type(optimizer.optimizer if hasattr(optimizer, "optimizer") else optimizer).__name__


@pytest.mark.slow
def test_sophia_trains_and_every_setting_is_logged(store, smoke_profile):
    profile = config.load_profile(
        "smoke",
        ["training.max_steps=4", "training.optimizer=sophiah", "training.optimizer_args={update_period: 2, rho: 0.05}"],
    )
    seen = _SeeOptimizer()
    result = _train(profile, "phase-3-smoke", callbacks=[seen])
    run = mlflow.get_run(result.run_id)
    assert seen.name == "SophiaH"
    assert (
        run.data.params["train.optimizer"] == "sophiah" and "update_period" in run.data.params["train.optimizer_args"]
    )
    losses = [m.value for m in MlflowClient().get_metric_history(result.run_id, "loss")]
    assert len(losses) == 4 and all(torch.isfinite(torch.tensor(losses)))


def _adapter_energy(run_id: str, profile) -> float:
    from peft import PeftModel

    from langdec.models.loading import load_base_model

    local = mlflow.artifacts.download_artifacts(f"runs:/{run_id}/adapter")
    model = PeftModel.from_pretrained(load_base_model(profile.model, quantization="none"), local)
    updates = regularizers.lora_updates(model)
    return float(
        torch.stack([regularizers.high_frequency_energy(u, profile.training.fourier_cutoff) for u in updates]).mean()
    )


@pytest.mark.slow
def test_fourier_regulariser_lowers_high_frequency_energy_and_is_logged(store, smoke_profile):
    base = ["training.max_steps=8"]
    plain = _train(config.load_profile("smoke", base), "phase-3-smoke")
    regular = config.load_profile("smoke", [*base, "training.fourier_lambda=200"])
    penalised = _train(regular, "phase-3-smoke")
    client = MlflowClient()
    penalty = [m.value for m in client.get_metric_history(penalised.run_id, "fourier_penalty")]
    task = [m.value for m in client.get_metric_history(penalised.run_id, "task_loss")]
    assert len(penalty) == len(task) == 8  # per step, beside the task loss
    assert not client.get_metric_history(plain.run_id, "fourier_penalty")
    assert mlflow.get_run(penalised.run_id).data.params["train.fourier_lambda"] == "200.0"
    plain_energy = _adapter_energy(plain.run_id, regular)
    penalised_energy = _adapter_energy(penalised.run_id, regular)
    assert penalised_energy < 0.5 * plain_energy, (plain_energy, penalised_energy)


def _no_sandbox() -> str | None:
    import shutil

    from langdec.evaluation.sandbox import bwrap

    try:
        bwrap()
    except LangdecError as exc:
        return str(exc)
    return None if shutil.which("javac") else "no javac (apt-get install default-jdk-headless)"


@pytest.mark.slow
@pytest.mark.skipif(_no_sandbox() is not None, reason=f"code benchmarks need the sandbox: {_no_sandbox()}")
def test_flex_ladder_runs_three_arms_side_by_side(module_store, capsys):
    code = cli.main(["--quiet", "ladder", str(ROOT / "experiments/ladders/flex.yaml")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "4 of 4 jobs ok" in out and "code.pass_at_1 (executed in the sandbox)" in out
    header = next(line for line in out.splitlines() if line.startswith("benchmark/data"))
    assert header.split()[1:] == ["baseline", "condflex-adamw", "condflex-fourier", "condflex-sophia"]
    assert "mbpp/python" in out and "mbpp_java/java" in out
    client = MlflowClient()
    runs = client.search_runs([tracking.experiment_id("flex-smoke")], "tags.`langdec.stage` = 'train'")
    by_arm = {r.data.tags["arm"]: r for r in runs}
    assert set(by_arm) == {"adamw", "sophia", "fourier"}
    assert by_arm["sophia"].data.params["train.optimizer"] == "sophiah"
    assert by_arm["fourier"].data.params["train.fourier_lambda"] == "10.0"
    assert by_arm["adamw"].data.params["train.fourier_lambda"] == "0.0"
    evals = client.search_runs([tracking.experiment_id("flex-smoke")], "tags.`langdec.stage` = 'evaluate'")
    assert len(evals) == 4
    for run in evals:
        assert {"code.mbpp.pass_at_1", "code.mbpp_java.pass_at_1", "code.mbpp.candidates_per_s"} <= set(
            run.data.metrics
        )
        results = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="code_results.jsonl"))
        rows = [json.loads(line) for line in results.read_text().splitlines()]
        assert {r["benchmark"] for r in rows} == {"mbpp", "mbpp_java"} and all(r["status"] for r in rows)
    # the training data is MBPP's train split, checked like any other condition's
    manifest = json.loads(
        Path(
            mlflow.artifacts.download_artifacts(
                run_id=client.search_runs([tracking.experiment_id("flex-smoke")], "tags.`langdec.stage` = 'transpile'")[
                    0
                ].info.run_id,
                artifact_path="manifest.json",
            )
        ).read_text()
    )
    assert manifest["source_benchmark"] == "mbpp" and manifest["rows"]["train"] + manifest["rows"]["validation"] == 10
