"""What identifies a training run: its params (every effective setting) and its run key, by which a finished
run is reused; and the keys a run of the same settings may carry under another backend or quantisation."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from langdec.core.config import Job, Profile
from langdec.core.errors import LangdecError
from langdec.models.effective import effective_loss, effective_optimizer
from langdec.models.loading import model_identity  # a GGUF file's sha256: part of the run key
from langdec.tracking import runs as tracking
from langdec.training import distributed
from langdec.training.backend import choose_backend
from langdec.training.optimizers import training_precision

TRAIN_STAGE = "train"


def grad_accum(t, processes: int | None = None) -> int:
    """Steps accumulated per optimiser step: from `global_batch` over the processes at hand when it is set."""
    processes = processes or distributed.world().size
    if t.global_batch is None:
        return t.grad_accum
    per_step = t.batch_size * processes
    if t.global_batch % per_step:
        raise LangdecError(
            f"training.global_batch {t.global_batch} is not a multiple of batch_size {t.batch_size} x "
            f"{processes} processes; change one of them"
        )
    return t.global_batch // per_step


def train_params(profile: Profile, job: Job, quantization: str, backend: str) -> dict[str, Any]:
    settings = asdict(profile.training)
    settings["grad_accum"] = grad_accum(profile.training)
    settings["optimizer"] = effective_optimizer(settings["optimizer"])
    settings["loss"] = effective_loss(settings["loss"])
    settings["precision"] = training_precision(profile.training)
    return {
        "condition": job.condition,
        "lang": job.lang or "en",
        "tier": job.tier,
        "seed": job.seed,
        "profile": profile.name,
        "model_id": profile.model.id,
        **model_identity(profile.model),
        "quantization": quantization,
        "backend": backend,
        **{
            f"train.{k}": v
            for k, v in settings.items()
            if k not in ("quantization", "backend", "allow_cpu", *_left_out_of_key(profile))
        },
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
    pairs = [
        (
            profile.training.quantization,
            choose_backend(profile.training.backend, profile.training.packing, profile.training.peft_method),
        )
    ]
    pairs += [(q, b) for q in ("nf4", "none") for b in ("hf", "unsloth") if (q, b) not in pairs]
    return [run_key(profile, job, q, b, data_digest) for q, b in pairs]
