"""Training on the smoke model: real TRL/peft runs, tracked, reproducible, resumable, no truncation."""

from __future__ import annotations

import importlib.util

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from langdec.core import config
from langdec.core.errors import LangdecError
from langdec.data import checks
from langdec.data import stage as data
from langdec.orchestration import pipeline
from langdec.tracking import runs as tracking
from langdec.training import backend, keys, recipe, tokenize
from langdec.training import stage as train

JOB = config.Job("2", "es", "5k", 42)


def test_windows_keep_every_token():
    ids = list(range(23))
    parts = tokenize.windows(ids, 8)
    assert all(len(p) <= 8 for p in parts)
    targets = [t for p in parts for t in p[1:]]  # the first token of a window is context only
    assert targets == ids[1:]  # every token after the first is a target exactly once
    assert tokenize.windows(ids[:5], 8) == [ids[:5]]


def test_tokenize_windows_counts(smoke_profile):
    from langdec.models.loading import load_tokenizer

    tok = load_tokenizer(smoke_profile.model)
    codes = ["def f():\n    return 1\n" * 40, "x = 1\n"]
    windows, stats = tokenize.tokenize_windows(codes, tok, 32)
    assert stats.files == 2 and stats.windows == len(windows) > 2
    assert stats.target_tokens == stats.tokens - stats.files
    assert max(len(w) for w in windows) <= 32


def _prepare(profile, experiment):
    cond = config.condition(JOB.condition)
    data_run = data.run_stage(profile, cond, JOB, experiment, progress=False)
    checks.run_stage(
        data_run[0], cond, experiment, {"run_name": JOB.run_name}, tier_idx=set(data.build_tier_idx(profile, JOB))
    )
    return cond, data_run


def _train(profile, **kwargs):
    experiment = "phase-3-smoke"
    tracking.configure()
    cond, data_run = _prepare(profile, experiment)
    # as `langdec train` runs it: the pipeline trains on the data it was given and registers the adapter
    where = pipeline.Where(profile, cond, JOB, "phase-3", experiment)
    return pipeline.run(
        where, stages=("train",), training=train.Options(**kwargs), data_run=data_run, progress=False
    ).train


@pytest.mark.slow
def test_training_run_logs_and_registers(store, smoke_profile):
    profile = config.load_profile("smoke", ["training.max_steps=6"])
    memory = tracking.MemoryMetricLogger()
    result = _train(profile, extra_loggers=[memory])
    run = mlflow.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert (
        params["train.lora_r"] == "8"
        and params["train.lr"] == "0.01"
        and params["condition"] == "2"
        and params["lang"] == "es"
    )
    metrics = run.data.metrics
    for key in (
        "loss",
        "learning_rate",
        "grad_norm",
        "tokens_per_s",
        "peak_memory_mb",
        "trainable_parameters",
        "tokens_total",
        "windows",
        "files",
        "padding_fraction",
        "tokens_trained",
    ):
        assert key in metrics, key
    assert len(MlflowClient().get_metric_history(result.run_id, "loss")) == 6
    assert memory.series("loss") == [m.value for m in MlflowClient().get_metric_history(result.run_id, "loss")]
    tags = run.data.tags
    assert tags["langdec.stage"] == "train" and tags["data_check_status"] == "passed" and tags["transpiler_version"]
    artifacts = {a.path for a in MlflowClient().list_artifacts(result.run_id, "adapter")}
    assert {"adapter/adapter_model.safetensors", "adapter/adapter_config.json", "adapter/tokenizer.json"} <= artifacts
    version = MlflowClient().get_model_version(profile.registered_model, result.version)
    assert {
        k: version.tags[k] for k in ("phase", "condition", "lang", "tier", "seed", "base_model", "data_check_status")
    } == {
        "phase": "phase-3",
        "condition": "2",
        "lang": "es",
        "tier": "5k",
        "seed": "42",
        "base_model": "smoke",
        "data_check_status": "passed",
    }

    again = _train(profile)  # same stage, params, code and data: reused, not retrained
    assert again.reused and again.run_id == result.run_id and again.version == result.version

    other = config.load_profile("smoke", ["training.max_steps=5"])
    with pytest.raises(LangdecError, match="already holds phase-3 cond2-es-5k-s42.*--supersede"):
        _train(other)
    replaced = _train(other, supersede=True)
    old = MlflowClient().get_model_version(profile.registered_model, result.version)
    assert old.tags["superseded_by"] == replaced.version


@pytest.mark.slow
def test_same_seed_same_loss_curve(tmp_path, monkeypatch, smoke_profile):
    profile = config.load_profile("smoke", ["training.max_steps=5"])
    curves = []
    for attempt in range(2):
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/seed{attempt}.db")
        memory = tracking.MemoryMetricLogger()
        _train(profile, extra_loggers=[memory])
        curves.append(memory.series("loss"))
    assert len(curves[0]) == 5 and curves[0] == curves[1]


@pytest.mark.slow
def test_resume_after_interruption(store, smoke_profile):
    profile = config.load_profile("smoke", ["training.max_steps=6", "training.save_steps=2"])
    with pytest.raises(SystemExit):
        _train(profile, stop_after_steps=2)
    client = MlflowClient()
    failed = client.search_runs([tracking.experiment_id("phase-3-smoke")], "tags.`langdec.stage` = 'train'")
    assert len(failed) == 1 and failed[0].info.status == "FAILED"  # marked failed, not left running
    result = _train(profile)  # the same command again resumes
    run = mlflow.get_run(result.run_id)
    assert result.run_id == failed[0].info.run_id and run.info.status == "FINISHED"
    assert run.data.tags["langdec.resumed_from"] == "checkpoint-2"
    assert (
        run.data.tags["peft_method"] == "lora"
    )  # a tag on every run (the views' column), the param only off the default
    steps = [m.step for m in client.get_metric_history(result.run_id, "loss")]
    assert steps == [1, 2, 3, 4, 5, 6]


@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None, reason="bitsandbytes not installed")
def test_nf4_quantised_training_runs_on_cpu(store, smoke_profile):
    profile = config.load_profile("smoke", ["training.max_steps=2", "training.quantization=nf4"])
    memory = tracking.MemoryMetricLogger()
    result = _train(profile, extra_loggers=[memory])
    assert mlflow.get_run(result.run_id).data.params["quantization"] == "nf4"
    losses = memory.series("loss")
    assert len(losses) == 2 and all(l == l and l > 0 for l in losses)


def test_unavailable_condition_fails_clearly(store, smoke_profile):
    with pytest.raises(LangdecError, match="condition 4: the study has no condition-4 data yet"):
        train.preflight(
            smoke_profile,
            config.condition("4"),
            config.Job("4", "ur", "5k", 42),
            phase="phase-3",
            experiment="phase-3-smoke",
        )


def test_gpu_only_backend_fails_clearly_without_cuda():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(LangdecError, match="needs a CUDA GPU"):
        backend.choose_backend("unsloth")


def test_disk_full_while_saving_leaves_no_adapter(store, smoke_profile, monkeypatch):
    import errno

    from peft import PeftModel

    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(PeftModel, "save_pretrained", full)
    # save_steps beyond max_steps: the trainer writes no checkpoint, so the adapter save is what hits the full disk
    profile = config.load_profile("smoke", ["training.max_steps=2", "training.save_steps=100"])
    with pytest.raises(LangdecError, match="could not write .*free disk space"):
        _train(profile)
    client = MlflowClient()
    run = client.search_runs([tracking.experiment_id("phase-3-smoke")], "tags.`langdec.stage` = 'train'")[0]
    assert run.info.status == "FAILED"
    assert client.list_artifacts(run.info.run_id, "adapter") == []
    assert client.search_model_versions(f"name = '{profile.registered_model}'") == []


def test_pack_places_every_window_once_within_the_row_length():
    import random

    from langdec.training.packing import pack

    rng = random.Random(0)
    windows = [[0] * rng.randint(1, 64) for _ in range(300)]
    rows = pack(windows, 64)
    assert sorted(i for row in rows for i in row) == list(range(300))
    assert all(sum(len(windows[i]) for i in row) <= 64 for row in rows)
    total = sum(map(len, windows))
    assert len(rows) <= -(-total // 64) * 1.05  # best fit wastes almost nothing
    with pytest.raises(ValueError, match="window 0 has 65 tokens"):
        pack([[0] * 65], 64)


@pytest.mark.slow
def test_packing_trains_full_rows_without_padding(store, smoke_profile):
    runs = {
        packing: mlflow.get_run(
            _train(
                config.load_profile("smoke", ["training.max_steps=2", f"training.packing={packing}"]), register=False
            ).run_id
        )
        for packing in ("false", "true")
    }
    packed, padded = runs["true"].data.metrics, runs["false"].data.metrics
    assert runs["true"].info.status == "FINISHED" and runs["true"].data.params["train.packing"] == "True"
    assert packed["sequences"] < packed["windows"] == padded["sequences"]  # several windows share a row
    assert packed["padding_fraction"] < 0.05 < padded["padding_fraction"]


@pytest.mark.parametrize("loss", ["plain", "fused"])
def test_packed_files_do_not_attend_to_each_other(store, smoke_profile, tmp_path, loss):
    """A packed row's loss is exactly the token-weighted loss of its files trained one by one,
    through the trainer's own collator and compute_loss: no attention or label crosses a file
    boundary. The same row with a KV cache switched on leaks, which is why the trainer turns it off."""
    import torch

    profile = config.load_profile(
        "smoke", ["training.packing=true", "training.lora_dropout=0.0", f"training.loss={loss}"]
    )
    from langdec.models.loading import load_tokenizer

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
    for name, p in trainer.model.named_parameters():  # non-zero LoRA B, so the adapters take part
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.02)
    collate = trainer.data_collator
    rows = trainer.train_dataset
    assert sorted(map(sorted, rows["seq_lengths"])) == [[13, 25], [40]]  # best fit: 40 alone, 25 + 13 share a row
    packed = collate([rows[i] for i in range(len(rows))])
    assert packed["input_ids"].shape == (2, 40) and "attention_mask" not in packed
    with torch.no_grad():
        together = float(trainer.compute_loss(trainer.model, dict(packed)))
        apart = [
            float(trainer.compute_loss(trainer.model, dict(collate([{"input_ids": d, "seq_lengths": [len(d)]}]))))
            for d in docs
        ]
        leaked = float(trainer.model(**packed, use_cache=True).loss)
    weights = [len(d) - 1 for d in docs]  # a file's first token is context only
    expected = sum(l * w for l, w in zip(apart, weights)) / sum(weights)
    assert together == pytest.approx(expected, rel=1e-5)
    assert abs(leaked - expected) > 1e-4
    # the layout flash-attention gets: the batch as one row, boundaries also as cu_seq_lens
    from langdec.training.packing import PackedCollator

    flat = PackedCollator(tokenizer.pad_token_id, flatten=True)([rows[i] for i in range(len(rows))])
    assert flat["input_ids"].shape == (1, 78) and flat["cu_seq_lens_q"].tolist()[-1] == 78
    assert int((flat["labels"] == -100).sum()) == 3  # one context-only token per file
    with torch.no_grad():
        assert float(trainer.compute_loss(trainer.model, dict(flat))) == pytest.approx(expected, rel=1e-5)


def test_model_not_reachable_offline_says_what_to_do(monkeypatch, langdec_home):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from langdec.models.loading import load_tokenizer

    with pytest.raises(LangdecError, match="huggingface-cli download CohereLabs/tiny-aya-base.*--profile smoke"):
        load_tokenizer(config.load_profile("paper").model)


@pytest.mark.parametrize("logit_scale", [1.0, 0.0625])
def test_fused_lm_head_loss_equals_the_plain_loss(smoke_profile, logit_scale):
    """The training path's loss goes through TRL's fused LM head (no full logits); it must equal
    the model's own cross-entropy, including Tiny Aya's logit scale, and so must its gradients."""
    import torch
    from peft import LoraConfig, get_peft_model
    from trl.trainer.utils import add_fused_lm_head

    from langdec.models.loading import load_base_model

    profile = config.load_profile("smoke", [f"model.smoke.logit_scale={logit_scale}"])
    torch.manual_seed(0)
    model = get_peft_model(
        load_base_model(profile.model, quantization="none"), LoraConfig(r=4, target_modules=["q_proj", "down_proj"])
    )
    for name, p in model.named_parameters():  # non-zero LoRA B, so the adapters matter for the check
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.02)
    ids = torch.randint(3, profile.model.tokenizer_vocab, (3, 40))
    labels = ids.clone()
    labels[1, 30:] = -100  # padding positions are ignored by both
    plain = model(input_ids=ids, labels=labels).loss
    plain.backward()
    plain_grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    model.zero_grad()
    add_fused_lm_head(model.get_base_model(), outputs=("log_probs",))
    out = model(input_ids=ids, labels=labels, fused_lm_head=True)
    fused = -out.log_probs.sum() / out.label_mask.sum()
    fused.backward()
    assert fused.item() == pytest.approx(plain.item(), rel=1e-5)
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert torch.allclose(p.grad, plain_grads[name], rtol=1e-4, atol=1e-6), name


@pytest.mark.parametrize(
    "cuda, bf16, second_order, expected",
    [
        (False, False, False, "fp32"),  # CPU: half-precision matmuls are slow or missing
        (True, True, False, "bf16"),  # Ampere and newer (H100)
        (True, False, False, "fp16"),  # T4, as the study ran
        (True, False, True, "fp32"),  # T4 with a second-order optimiser: no fp16 loss scaling
    ],
)
def test_auto_precision_follows_the_device(monkeypatch, cuda, bf16, second_order, expected):
    import torch

    from langdec.models.loading import effective_precision

    # the decision only, on a machine that has neither GPU: torch's capability probes answer as each device would
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    assert effective_precision("auto", second_order=second_order) == expected
    if cuda and not bf16:
        with pytest.raises(LangdecError, match="bf16 needs a GPU with bf16 support"):
            effective_precision("bf16")


def test_truncate_keeps_each_files_start_as_the_study_did(smoke_profile):
    from langdec.models.loading import load_tokenizer

    tok = load_tokenizer(smoke_profile.model)
    codes = ["def f():\n    return 1\n" * 40, "x = 1\n"]
    full = tok(codes, add_special_tokens=True)["input_ids"]
    ids, stats = tokenize.tokenize_truncated(codes, tok, 32)
    assert ids == [full[0][:32], full[1]]  # the first 32 tokens, special tokens as the tokenizer adds them
    assert stats.files == stats.windows == 2 and stats.dropped_tokens == len(full[0]) - 32
    assert stats.target_tokens == 31 + len(full[1]) - 1
    windows, _ = tokenize.tokenize_files(codes, tok, 32, "windows")
    assert len(windows) > 2  # langdec's: nothing dropped


def test_paper_is_the_studys_recipe_and_paper_fixed_names_every_difference():
    from langdec.tracking import runs as tracking

    paper, fixed = config.load_profile("paper"), config.load_profile("paper-fixed")
    t, f = paper.training, fixed.training
    assert (t.long_files, t.packing, t.precision, t.global_batch, keys.grad_accum(t, 1), keys.grad_accum(t, 2)) == (
        "truncate",
        False,
        "fp16",
        16,
        2,
        1,
    )
    assert (f.long_files, f.packing, f.precision, f.global_batch) == ("windows", True, "auto", 16)
    differing = {k for k in vars(t) if getattr(t, k) != getattr(f, k)}
    assert differing == {"long_files", "packing", "precision"}
    # never mixed: their own experiment, registered model and run keys
    assert tracking.experiment_name(paper.name, "phase-3") == "phase-3"
    assert tracking.experiment_name(fixed.name, "phase-3") == "phase-3-paper-fixed"
    assert paper.registered_model != fixed.registered_model
    job = config.Job("2", "zh", "5k", 42)
    assert keys.train_params(paper, job, "nf4", "hf")["train.long_files"] == "truncate"
    assert "train.long_files" not in keys.train_params(fixed, job, "nf4", "hf")  # the default keeps earlier keys
    assert keys.run_key(paper, job, "nf4", "hf", "d") != keys.run_key(fixed, job, "nf4", "hf", "d")


def test_a_truncating_run_logs_what_it_cut(store):
    profile = config.load_profile(
        "smoke", ["training.long_files=truncate", "training.max_length=48", "training.max_steps=1"]
    )
    result = _train(profile)
    metrics = mlflow.get_run(result.run_id).data.metrics
    assert metrics["windows"] == metrics["files"] and metrics["tokens_dropped"] > 0
    assert metrics["tokens_total"] - metrics["tokens_dropped"] - metrics["files"] == metrics["target_tokens"]
