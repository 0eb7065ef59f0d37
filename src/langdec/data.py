"""The `transpile` stage: a condition's training data for one (condition, language, tier, seed).

Conditions 1 and 2 come from the same English tier (source-file control): the
same `idx` set, the same train/validation split (chosen from `idx`, not from the
condition), and only the processing differs. A file the transpiler refuses is
dropped and listed, never silently.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from . import tracking
from .atomic import atomic_dir
from .config import Condition, Job, Profile
from .corpus import Tier, build_tier
from .errors import LangdecError

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


def validation_idx(idx: list[int], seed: int, ratio: float) -> set[int]:
    """The same files are validation in every condition of a tier: chosen by keyed hash of idx."""
    ranked = sorted(idx, key=lambda i: hashlib.sha256(f"{seed}:{i}".encode()).hexdigest())
    return set(ranked[: max(1, math.ceil(len(ranked) * ratio))]) if len(ranked) > 1 else set()


def _rows(tier: Tier, cond: Condition, lang: str | None, *, progress: bool) -> tuple[pd.DataFrame, dict]:
    english = tier.frame
    if cond.data == "english":
        frame = english.assign(code=english["code_en"], language="en")
        return frame, {"dropped": []}
    if cond.data == "transpiled":
        from .transpiler import batch
        from .sources import SourceRow

        rows = [SourceRow(r.file_path, r.code_en, r.license, int(r.idx)) for r in english.itertuples()]
        outcomes = list(batch.run(rows, lang, progress=progress, total=len(rows)))
        kept = {o.idx: o.text for o in outcomes if o.ok}
        dropped = [{"idx": o.idx, "file_path": o.file_path, "reason": o.reason, "detail": o.detail} for o in outcomes if not o.ok]
        frame = english[english["idx"].isin(kept)].copy()
        frame["code"] = frame["idx"].map(kept)
        frame["language"] = lang
        from .transpiler.packs import load

        pack = load(lang)
        return frame, {"dropped": dropped, "transpiler_version": batch.VERSION, "pack_digest": pack.digest}
    raise LangdecError(
        f"condition {cond.name} ({cond.description}) has no data yet: {cond.unavailable_reason or 'no builder for data kind ' + repr(cond.data)}"
    )


def alignment_languages() -> list[str]:
    """Languages whose condition-2 data must share one idx set with condition 1 (source-file control)."""
    from .config import conditions

    langs: set[str] = set()
    for cond in conditions().values():
        if cond.available and cond.data == "transpiled":
            langs.update(cond.languages)
    return sorted(langs)


def _alignment_key() -> str:
    from .transpiler import batch
    from .transpiler.packs import load

    return hashlib.sha256(json.dumps([batch.VERSION, [(l, load(l).digest) for l in alignment_languages()]]).encode()).hexdigest()[:12]


def aligned_idx(tier: Tier, *, progress: bool = False) -> tuple[set[int], list[dict]]:
    """The tier's files every aligned condition can use, and what each language lost.

    A file that fails to transpile in any language is dropped from conditions 1 and 2
    alike, so they keep exactly the same source files; the loss is listed, never silent.
    Cached beside the tier, keyed by the transpiler version and every pack's digest.
    """
    from .atomic import write_text
    from .sources import SourceRow
    from .transpiler import batch

    key = _alignment_key()
    cache = tier.path / f"alignment-{key}.json"
    if cache.exists():
        saved = json.loads(cache.read_text())
        return set(saved["aligned"]), saved["lost"]
    rows = [SourceRow(r.file_path, r.code_en, r.license, int(r.idx)) for r in tier.frame.itertuples()]
    lost: list[dict] = []
    for lang in alignment_languages():
        for o in batch.run(rows, lang, progress=progress, total=len(rows)):
            if not o.ok:
                lost.append({"idx": o.idx, "file_path": o.file_path, "language": lang, "reason": o.reason, "detail": o.detail})
    dropped = {entry["idx"] for entry in lost}
    aligned = sorted(set(tier.frame["idx"].tolist()) - dropped)
    write_text(cache, json.dumps({"aligned": aligned, "lost": lost, "languages": alignment_languages()}, indent=2))
    return set(aligned), lost


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
    tier = build_tier(profile, job.tier, job.seed, progress=progress)
    from .paths import work_dir

    key = hashlib.sha256(json.dumps([tier.manifest["digest"], cond.name, job.lang, _processing_version(cond, job.lang),
                                     _alignment_key()]).encode()).hexdigest()[:12]
    out = work_dir() / "data" / profile.name / f"{job.run_name}-{key}"
    if (out / "manifest.json").exists():
        manifest = json.loads((out / "manifest.json").read_text())
        return ConditionData(out, manifest["digest"], manifest)
    frame, processing = _rows(tier, cond, job.lang, progress=progress)
    aligned, lost_anywhere = aligned_idx(tier, progress=progress)
    frame = frame[frame["idx"].isin(aligned)]
    if frame.empty:
        raise LangdecError(f"{job.run_name}: every file of the tier was dropped ({processing['dropped'][:3]} ...)")
    if tokenizer is None:
        from .model import load_tokenizer

        tokenizer = load_tokenizer(profile)
    frame["token_count"] = [len(ids) for ids in tokenizer(frame["code"].tolist(), add_special_tokens=False)["input_ids"]]
    frame["idx"] = frame["idx"].astype("int64")
    held_out = validation_idx(tier.frame["idx"].tolist(), job.seed, profile.corpus.validation_ratio)
    is_val = frame["idx"].isin(held_out)
    train, validation = frame.loc[~is_val, SCHEMA], frame.loc[is_val, SCHEMA]
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
    with atomic_dir(out) as tmp:
        train.to_parquet(tmp / "train.parquet", index=False)
        validation.to_parquet(tmp / "validation.parquet", index=False)
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False))
    return ConditionData(out, digest, manifest)


def build_tier_idx(profile: Profile, job: Job) -> list[int]:
    return build_tier(profile, job.tier, job.seed, progress=False).frame["idx"].tolist()


def _processing_version(cond: Condition, lang: str | None) -> str:
    if cond.data == "transpiled" and lang:
        from .transpiler import batch
        from .transpiler.packs import load

        return f"{batch.VERSION}:{load(lang).digest}"
    return "1"


def run_stage(profile: Profile, cond: Condition, job: Job, experiment: str, *, progress: bool = True) -> tuple[ConditionData, str]:
    """The tracked transpile stage: build the data and log it as an MLflow dataset input."""
    import mlflow

    data = prepare(profile, cond, job, progress=progress)
    params = {"condition": cond.name, "lang": job.lang or "en", "tier": job.tier, "seed": job.seed, "profile": profile.name,
              "source": profile.corpus.source, "tier_files": profile.tier_files(job.tier)}
    tags = job_tags(profile, job)
    with tracking.stage_run(experiment, "transpile", f"{job.run_name}-data", params=params, tags=tags, data_digest=data.digest) as run:
        if not run.reused:
            import warnings

            train, validation = data.frames()
            for split, frame in (("train", train), ("validation", validation)):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)  # mlflow's schema-inference hints
                    dataset = mlflow.data.from_pandas(frame, source=str(data.path / f"{split}.parquet"), name=f"{job.run_name}-{split}", digest=data.digest)
                    mlflow.log_input(dataset, context=split)
            mlflow.log_metrics({"rows_train": len(train), "rows_validation": len(validation), "lost_files": len(data.manifest["lost_files"]),
                                "tokens": data.manifest["tokens"]})
            mlflow.log_dict(data.manifest, "manifest.json")
    return data, run.run_id


def job_tags(profile: Profile, job: Job) -> dict[str, str]:
    return {
        "condition": job.condition,
        "lang": job.lang or "en",
        "tier": job.tier,
        "seed": str(job.seed),
        "profile": profile.name,
        "model_id": profile.model.id,
    }

