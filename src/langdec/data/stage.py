"""The `transpile` stage: a condition's training data for one (condition, language, tier, seed).

Conditions 1 and 2 come from the same English tier (source-file control): the
same `idx` set, the same train/validation split (chosen from `idx`, not from the
condition), and only the processing differs. A file the transpiler refuses is
dropped and listed, never silently.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from langdec.core.atomic import atomic_dir
from langdec.core.config import Condition, Job, Profile
from langdec.core.errors import LangdecError
from langdec.data import kinds, study_corpus
from langdec.data.corpus import Tier, build_tier
from langdec.data.kinds import transpiled
from langdec.data.splits import validation_idx
from langdec.models.loading import model_identity
from langdec.tracking import lease

SCHEMA = ["code", "code_en", "language", "file_path", "license", "idx", "token_count"]


@dataclass
class ConditionData:
    path: Path
    digest: str
    manifest: dict

    @property
    def train(self) -> Path:
        return self.path / "train.parquet"

    @property
    def validation(self) -> Path:
        return self.path / "validation.parquet"

    def frames(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        return pd.read_parquet(self.train), pd.read_parquet(self.validation)


def data_digest(train: pd.DataFrame, validation: pd.DataFrame) -> str:
    h = hashlib.sha256()
    for split, frame in (("train", train), ("validation", validation)):
        for idx, code in sorted(zip(frame["idx"].tolist(), frame["code"].tolist())):
            h.update(f"{split}\0{idx}\0".encode())
            h.update(code.encode("utf-8"))
    return h.hexdigest()[:16]


def prepare(profile: Profile, cond: Condition, job: Job, *, tokenizer=None, progress: bool = True) -> ConditionData:
    """Build (or find) the condition's Parquet splits under the work dir."""
    if not cond.available:
        raise LangdecError(f"condition {cond.name}: {cond.unavailable_reason}")
    from langdec.core.paths import work_dir

    if profile.corpus.data == "published":
        return _prepare_published(profile, cond, job, tokenizer)
    tier = build_tier(profile, job.tier, job.seed, progress=progress)

    kind = kinds.get(cond.data)
    out = work_dir() / "data" / profile.name / f"{job.run_name}-{_cache_key(profile, cond, job, tier, kind)}"
    if (out / "manifest.json").exists():
        manifest = json.loads((out / "manifest.json").read_text())
        return ConditionData(out, manifest["digest"], manifest)
    frame, processing = kind.rows(kinds.Build(profile, tier, cond, job, progress))
    aligned, lost_anywhere = transpiled.aligned_idx(tier, progress=progress)
    # native files (condition 3) and benchmark tasks are not from the tier: tier alignment does not apply to them
    outside = frame["origin"].isin(kinds.outside_tier()) if "origin" in frame else pd.Series(False, index=frame.index)
    frame = frame[frame["idx"].isin(aligned) | outside]
    if frame.empty:
        raise LangdecError(f"{job.run_name}: every file of the tier was dropped ({processing['dropped'][:3]} ...)")
    if tokenizer is None:
        from langdec.models.loading import load_tokenizer

        tokenizer = load_tokenizer(profile.model)
    frame["token_count"] = _token_counts(frame["code"].tolist(), tokenizer)
    frame["idx"] = frame["idx"].astype("int64")
    held_out = processing.pop("validation", None)  # a kind that splits its rows itself (the study's condition-3 blend)
    if held_out is None:
        held_out = _tier_validation(profile, tier, job.seed) | processing.pop("extra_validation", set())
    is_val = frame["idx"].isin(held_out)
    columns = SCHEMA + [c for c in ("origin",) if c in frame]
    train, validation = frame.loc[~is_val, columns], frame.loc[is_val, columns]
    digest = data_digest(train, validation)
    manifest = {
        **{k: tier.manifest[k] for k in ("source", "tier", "seed", "split_ratio", "requested")},
        "tier_digest": tier.manifest["digest"],
        "filters": tier.manifest["filters"],
        "condition": cond.name,
        "language": job.lang or "en",
        "rows": {"train": len(train), "validation": len(validation)},
        "tier_files": len(tier.frame),
        "lost_files": processing.pop("dropped"),
        "aligned_files": len(aligned),
        "lost_by_alignment": lost_anywhere,
        "digest": digest,
        "tokens": int(frame["token_count"].sum()),
        **processing,
    }
    _write_splits(out, train, validation, manifest)
    return ConditionData(out, digest, manifest)


def _cache_key(profile: Profile, cond: Condition, job: Job, tier: Tier, kind: kinds.DataKind) -> str:
    """What the built data depends on: the tier, the condition, the language, the kind's version and alignment."""
    return hashlib.sha256(
        json.dumps(
            [
                tier.manifest["digest"],
                cond.name,
                job.lang,
                kind.version(profile, cond, job.lang),
                transpiled.alignment_key(),
            ]
        ).encode()
    ).hexdigest()[:12]


def _token_counts(codes: list[str], tokenizer) -> list[int]:
    """Tokens per file, without special tokens: what a training example of the file costs."""
    return [len(ids) for ids in tokenizer(codes, add_special_tokens=False)["input_ids"]]


def _write_splits(out: Path, train: pd.DataFrame, validation: pd.DataFrame, manifest: dict) -> None:
    """The two splits and their manifest, written whole or not at all."""
    with atomic_dir(out, replace=True) as tmp:  # langdec's own cache
        train.to_parquet(tmp / "train.parquet", index=False)
        validation.to_parquet(tmp / "validation.parquet", index=False)
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False))


def _prepare_published(profile: Profile, cond: Condition, job: Job, tokenizer=None) -> ConditionData:
    """The study's own rows for this condition (corpus.data: published), kept exactly: nothing is filtered,
    re-split or dropped here; the data checks then report any row that fails, and training refuses failed data
    unless --allow-unchecked says otherwise."""
    from langdec.core.paths import work_dir
    from langdec.tracking import published

    config_name = published.stem(cond.name, job.lang, job.tier, profile.translation.model)
    train, validation, where = published.data_frames(profile.corpus.published, config_name)
    for split, frame in (("train", train), ("validation", validation)):
        if "code" not in frame:
            raise LangdecError(f"{where} ({split}): no `code` column; columns are {sorted(frame.columns)}")
    frames = []
    for frame in (train, validation):
        frame = frame.copy()
        for column in SCHEMA:
            if column not in frame:
                frame[column] = None  # a missing column is the checks' to report, not ours to invent
        if frame["idx"].isna().any():
            raise LangdecError(f"{where}: rows without idx; the study's rows carry their source index")
        frame["idx"] = frame["idx"].astype("int64")
        if frame["token_count"].isna().any():
            if tokenizer is None:
                from langdec.models.loading import load_tokenizer

                tokenizer = load_tokenizer(profile.model)
            counted = _token_counts(frame["code"].astype(str).tolist(), tokenizer)
            frame["token_count"] = frame["token_count"].fillna(pd.Series(counted, index=frame.index)).astype("int64")
        frames.append(frame)
    train, validation = frames
    digest = data_digest(train, validation)
    out = work_dir() / "data" / profile.name / f"{job.run_name}-published-{digest[:12]}"
    manifest = {
        "source": where,
        "data": "published",
        "published_config": config_name,
        "condition": cond.name,
        "language": job.lang or "en",
        "tier": job.tier,
        "seed": job.seed,
        "rows": {"train": len(train), "validation": len(validation)},
        "lost_files": [],
        "digest": digest,
        "tokens": int(pd.concat([train["token_count"], validation["token_count"]]).sum()),
    }
    if not (out / "manifest.json").exists():
        _write_splits(out, train, validation, manifest)
    return ConditionData(out, digest, manifest)


def _tier_validation(profile: Profile, tier, seed: int) -> set[int]:
    """The tier's held-out files, the same in every condition: the study's split, or langdec's keyed one."""
    ratio = profile.corpus.validation_ratio
    if profile.corpus.sampling == "study":
        return study_corpus.validation_idx(list(zip(tier.frame["file_path"], tier.frame["idx"])), seed, ratio)
    return validation_idx(tier.frame["idx"].tolist(), seed, ratio)


def build_tier_idx(profile: Profile, job: Job) -> list[int]:
    return build_tier(profile, job.tier, job.seed, progress=False).frame["idx"].tolist()


def run_stage(
    profile: Profile, cond: Condition, job: Job, experiment: str, *, progress: bool = True
) -> tuple[ConditionData, str]:
    """The tracked transpile stage: build the data and log it as an MLflow dataset input."""
    data = prepare(profile, cond, job, progress=progress)
    params = _stage_params(profile, cond, job, data)
    tags = job_tags(profile, job)
    with lease.stage_run(
        experiment, "transpile", f"{job.run_name}-data", params=params, tags=tags, data_digest=data.digest
    ) as run:
        if not run.reused:
            _log_data(data, job)
    return data, run.run_id


def _stage_params(profile: Profile, cond: Condition, job: Job, data: ConditionData) -> dict:
    """The transpile run's params: the job, and where published data came from."""
    params = {
        "condition": cond.name,
        "lang": job.lang or "en",
        "tier": job.tier,
        "seed": job.seed,
        "profile": profile.name,
        "source": profile.corpus.source,
        "tier_files": profile.tier_files(job.tier),
    }
    if profile.corpus.data == "published":
        params.update(
            source=data.manifest["source"], data="published", published_config=data.manifest["published_config"]
        )
    return params


def _log_data(data: ConditionData, job: Job) -> None:
    """Into the active run: both splits as dataset inputs, their counts, the manifest, and how they were made."""
    import warnings

    import mlflow

    train, validation = data.frames()
    for split, frame in (("train", train), ("validation", validation)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # mlflow's schema-inference hints
            dataset = mlflow.data.from_pandas(
                frame,
                source=str(data.path / f"{split}.parquet"),
                name=f"{job.run_name}-{split}",
                digest=data.digest,
            )
            mlflow.log_input(dataset, context=split)
    mlflow.log_metrics(
        {
            "rows_train": len(train),
            "rows_validation": len(validation),
            "lost_files": len(data.manifest["lost_files"]),
            "tokens": data.manifest["tokens"],
        }
    )
    mlflow.log_dict(data.manifest, "manifest.json")
    translation = data.manifest.get("translation")
    if translation:
        _log_translation(translation, job.lang)
    blend = data.manifest.get("blend")
    if blend:
        mlflow.log_metrics(
            {"blend.native_files": blend["native_files"], "blend.condition_2_files": blend["condition_2_files"]}
        )


def _log_translation(translation: dict, lang: str | None) -> None:
    """Condition 5's translation settings and its report for this language, as params and metrics."""
    import mlflow

    from langdec.data.translation import stage as translation_stage

    mlflow.log_params(
        {f"translation.{k}": v for k, v in translation.items() if k in ("backend", "model", "prompt_version")}
    )
    translation_stage.log_metrics(translation["reports"][lang], prefix="translation.")
    mlflow.log_metrics(
        {
            "translation.aligned_files": translation["aligned_files"],
            "translation.input_files": translation["input_files"],
        }
    )


def job_tags(profile: Profile, job: Job) -> dict[str, str]:
    tags = {
        "condition": job.condition,
        "lang": job.lang or "en",
        "tier": job.tier,
        "seed": str(job.seed),
        "profile": profile.name,
        "model_id": profile.model.id,
        **model_identity(profile.model),  # a GGUF file's sha256 (the model's version)
    }
    if job.arm:
        tags["arm"] = job.arm
    return tags
