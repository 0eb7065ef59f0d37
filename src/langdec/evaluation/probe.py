"""The `probe` stage: measurements of a model's hidden states, tracked like an evaluation (reused when its
key matches). `isotropy` (evaluation.isotropy) is the one probe so far: per language and layer, the average
cosine of random token pairs and IsoScore, with a plot."""

from __future__ import annotations

from pathlib import Path

from langdec.core.config import Condition, Job, Profile
from langdec.core.errors import LangdecError
from langdec.evaluation import benchmarks
from langdec.tracking import lease
from langdec.tracking import runs as tracking

PROBE_STAGE = "probe"
SECTIONS = ("model", "evaluation", "training")  # what the probe stage reads of the profile
PROBES = ("isotropy",)  # the probes by name; a ladder's `probes:` and `langdec probe KIND` take these
TEXT_FIELDS = ("text", "premise", "passage", "question")  # the first a benchmark's items have is what is read


def texts(benchmark: str, lang: str, source: str, limit: int | None) -> list[str]:
    items = benchmarks.load(benchmark, lang, source=source, limit=limit)
    field = next((f for f in TEXT_FIELDS if items and f in items[0].fields), None)
    if field is None:
        raise LangdecError(
            f"{benchmark}: its items have no text field to probe ({', '.join(TEXT_FIELDS)}); pick another benchmark"
        )
    return [it.fields[field] for it in items]


def run(
    profile: Profile,
    cond: Condition,
    job: Job,
    *,
    phase: str,
    experiment: str,
    adapter_uri: str | None,
    adapter_run: str | None,
    languages: list[str],
    benchmark: str = "sib200",
    max_tokens: int = 2000,
    source: str | None = None,
) -> tuple[str, bool, dict[str, float]]:
    """(run id, reused, metrics) of the isotropy probe on the base model or the adapter."""
    import mlflow

    source = source or profile.evaluation.source
    params = {
        "probe": "isotropy",
        "benchmark": benchmark,
        "languages": languages,
        "max_tokens": max_tokens,
        "source": source,
        "condition": job.condition,
        "lang": job.lang or "",
        "tier": job.tier,
        "seed": job.seed,
        "profile": profile.name,
        "adapter_run": adapter_run or "none",
    }
    with lease.stage_run(
        experiment,
        PROBE_STAGE,
        f"{job.run_name}-isotropy",
        params=params,
        tags=_tags(profile, job, phase, adapter_run),
        data_digest=adapter_run or "base-model",
    ) as srun:
        if srun.reused:
            return srun.run_id, True, mlflow.get_run(srun.run_id).data.metrics
        metrics = _measure(
            profile,
            job,
            srun.run_id,
            adapter_uri,
            benchmark=benchmark,
            languages=languages,
            source=source,
            max_tokens=max_tokens,
        )
    return srun.run_id, False, metrics


def _tags(profile: Profile, job: Job, phase: str, adapter_run: str | None) -> dict[str, str]:
    return {
        "condition": job.condition,
        "lang": job.lang or "",
        "tier": job.tier,
        "seed": str(job.seed),
        "phase": phase,
        "profile": profile.name,
        "run_name": job.run_name,
        "adapter_run": adapter_run or "",
    }


def _measure(
    profile: Profile,
    job: Job,
    run_id: str,
    adapter_uri: str | None,
    *,
    benchmark: str,
    languages: list[str],
    source: str,
    max_tokens: int,
) -> dict[str, float]:
    """Isotropy of the model (with the adapter, if any) on each language's benchmark texts, logged to the active run
    `run_id` with its plot."""
    import mlflow

    from langdec.evaluation import isotropy  # torch: only when a probe runs, so a ladder file validates without it
    from langdec.evaluation.loading import adapter_folder, load_local

    by_lang = {lang: texts(benchmark, lang, source, None) for lang in languages}
    model, tokenizer = load_local(
        profile.model, adapter_folder(adapter_uri), quantization=profile.training.quantization
    )
    metrics = isotropy.measure(model, tokenizer, by_lang, max_tokens=max_tokens, seed=job.seed)
    tracking.MlflowMetricLogger(run_id).log(metrics)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        figure = plot(metrics, Path(tmp) / "isotropy.png", title=job.run_name)
        mlflow.log_artifact(str(figure))
    return metrics


def plot(metrics: dict[str, float], path: Path, title: str = "") -> Path:
    """Average cosine and IsoScore by layer, one line per language."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2), layout="constrained")
    langs = sorted({k.split(".")[1] for k in metrics if k.startswith("isotropy.")})
    for ax, stat, label in (
        (axes[0], "avg_cos", "average cosine of random token pairs"),
        (axes[1], "isoscore", "IsoScore"),
    ):
        for lang in langs:
            layers = sorted(
                int(k.split(".")[2][5:]) for k in metrics if k.startswith(f"isotropy.{lang}.") and k.endswith(stat)
            )
            ax.plot(layers, [metrics[f"isotropy.{lang}.layer{i}.{stat}"] for i in layers], marker="o", label=lang)
        ax.set_xlabel("layer (0 = embeddings)")
        ax.set_title(label, fontsize=9)
        ax.set_ylim(-0.05, 1.05)
    axes[1].legend(fontsize=7)
    fig.suptitle(f"Isotropy of hidden states {title}".strip(), fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
