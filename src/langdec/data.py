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
from .atomic import atomic_dir, atomic_path
from .config import Condition, Job, Profile
from .corpus import Tier, build_tier
from .errors import LangdecError

SCHEMA = ["code", "code_en", "language", "file_path", "license", "idx", "token_count"]
OUTSIDE_TIER = ("native", "benchmark")  # `origin` values of rows that do not come from the English tier


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


def _rows(profile: Profile, tier: Tier, cond: Condition, job: Job, *, progress: bool) -> tuple[pd.DataFrame, dict]:
    english = tier.frame
    lang = job.lang
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
    if cond.data == "llm-translated":
        return _llm_translated(profile, tier, cond, lang, progress=progress)
    if cond.data == "code-benchmark":
        return _code_benchmark_rows(profile, cond, job)
    if cond.data == "native":
        from .native import blend

        transpiled, processing = _rows(profile, tier, _transpiled_twin(cond), job, progress=progress)
        return blend(profile, tier, transpiled, processing, lang, job.seed, progress=progress)
    raise LangdecError(
        f"condition {cond.name} ({cond.description}) has no data yet: {cond.unavailable_reason or 'no builder for data kind ' + repr(cond.data)}"
    )


def _code_benchmark_rows(profile: Profile, cond: Condition, job: Job) -> tuple[pd.DataFrame, dict]:
    """A code benchmark's train split as training files: the task as a docstring, then the reference solution.
    Files are not from the English tier, so they get their own validation split (`extra_validation`)."""
    from .evaluation import code

    if not cond.source_benchmark:
        raise LangdecError(f"condition {cond.name}: data code-benchmark needs source_benchmark (experiments/conditions.yaml)")
    source = profile.evaluation.source
    tasks = [t for t in code.load(cond.source_benchmark, source=source, split="train") if t.reference]
    if not tasks:
        raise LangdecError(f"condition {cond.name}: {cond.source_benchmark} has no train tasks with reference solutions in {source}")
    tasks = tasks[: profile.tier_files(job.tier)]
    bench = code.get(cond.source_benchmark)
    codes = [f'"""{t.text}"""\n{t.reference.strip()}\n\n{t.tests}\n' for t in tasks]
    frame = pd.DataFrame({"idx": [int(hashlib.sha256(c.encode()).hexdigest()[:15], 16) for c in codes],
                          "file_path": [f"{bench.name}/task_{t.id}.py" for t in tasks], "code": codes, "code_en": codes,
                          "license": "cc-by-4.0", "language": "en", "origin": "benchmark"})
    return frame, {"dropped": [], "source_benchmark": bench.name, "source_split": "train", "source": source,
                   "extra_validation": validation_idx(frame["idx"].tolist(), job.seed, profile.corpus.validation_ratio)}


def _transpiled_twin(cond: Condition) -> Condition:
    """The condition-2 processing that conditions 3 and 5 build on."""
    import dataclasses

    return dataclasses.replace(cond, data="transpiled")


def _llm_translated(profile: Profile, tier: Tier, cond: Condition, lang: str, *, progress: bool) -> tuple[pd.DataFrame, dict]:
    """Condition 5: the tier's files (after condition-2 alignment) translated by the LLM into every
    condition-5 language; only files that succeeded in all of them are kept, and the loss is listed."""
    from .sources import SourceRow
    from .translation import stage

    if lang not in cond.languages:
        raise LangdecError(f"condition {cond.name} is defined for {', '.join(cond.languages)}, not {lang!r} (experiments/conditions.yaml)")
    aligned2, _ = aligned_idx(tier, progress=progress)
    cache = stage.alignment_cache(tier.path, profile.translation, cond.languages, _alignment_key())
    per_lang = {l: cache.with_name(f"{cache.stem}-{l}.parquet") for l in cond.languages}
    if not (cache.exists() and all(p.exists() for p in per_lang.values())):
        english = tier.frame[tier.frame["idx"].isin(aligned2)]
        rows = [SourceRow(r.file_path, r.code_en, r.license, int(r.idx)) for r in english.itertuples()]
        results = stage.translate_tier(profile, rows, cond.languages, progress=progress)
        aligned = stage.align(results)
        for l, (kept, _, _) in results.items():
            with atomic_path(per_lang[l]) as tmp:
                pd.DataFrame({"idx": list(kept), "code": list(kept.values())}, columns=["idx", "code"]).to_parquet(tmp, index=False)
        stage.save_alignment(cache, results, aligned)
    saved = json.loads(cache.read_text())
    aligned = set(saved["aligned"])
    translated = pd.read_parquet(per_lang[lang])
    codes = dict(zip(translated["idx"].tolist(), translated["code"].tolist()))
    frame = tier.frame[tier.frame["idx"].isin(aligned)].copy()
    frame["code"] = frame["idx"].map(codes)
    frame["language"] = lang
    return frame, {"dropped": saved["lost"], "translation": {**stage.describe(profile.translation), "languages": cond.languages,
                                                             "input_files": len(aligned2), "aligned_files": len(aligned),
                                                             "reports": saved["reports"]}}


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
    from .paths import work_dir

    if profile.corpus.data == "published":
        return _prepare_published(profile, cond, job, tokenizer)
    tier = build_tier(profile, job.tier, job.seed, progress=progress)

    key = hashlib.sha256(json.dumps([tier.manifest["digest"], cond.name, job.lang, _processing_version(profile, cond, job.lang),
                                     _alignment_key()]).encode()).hexdigest()[:12]
    out = work_dir() / "data" / profile.name / f"{job.run_name}-{key}"
    if (out / "manifest.json").exists():
        manifest = json.loads((out / "manifest.json").read_text())
        return ConditionData(out, manifest["digest"], manifest)
    frame, processing = _rows(profile, tier, cond, job, progress=progress)
    aligned, lost_anywhere = aligned_idx(tier, progress=progress)
    # native files (condition 3) and benchmark tasks are not from the tier: tier alignment does not apply to them
    outside = frame["origin"].isin(OUTSIDE_TIER) if "origin" in frame else pd.Series(False, index=frame.index)
    frame = frame[frame["idx"].isin(aligned) | outside]
    if frame.empty:
        raise LangdecError(f"{job.run_name}: every file of the tier was dropped ({processing['dropped'][:3]} ...)")
    if tokenizer is None:
        from .model import load_tokenizer

        tokenizer = load_tokenizer(profile)
    frame["token_count"] = [len(ids) for ids in tokenizer(frame["code"].tolist(), add_special_tokens=False)["input_ids"]]
    frame["idx"] = frame["idx"].astype("int64")
    held_out = validation_idx(tier.frame["idx"].tolist(), job.seed, profile.corpus.validation_ratio)
    held_out |= processing.pop("extra_validation", set())
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
    with atomic_dir(out, replace=True) as tmp:  # langdec's own cache
        train.to_parquet(tmp / "train.parquet", index=False)
        validation.to_parquet(tmp / "validation.parquet", index=False)
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False))
    return ConditionData(out, digest, manifest)


def _prepare_published(profile: Profile, cond: Condition, job: Job, tokenizer=None) -> ConditionData:
    """The study's own rows for this condition (corpus.data: published), kept exactly: nothing is filtered,
    re-split or dropped here; the data checks then report any row that fails, and training refuses failed data
    unless --allow-unchecked says otherwise."""
    from . import published
    from .paths import work_dir

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
                from .model import load_tokenizer

                tokenizer = load_tokenizer(profile)
            counted = [len(ids) for ids in tokenizer(frame["code"].astype(str).tolist(), add_special_tokens=False)["input_ids"]]
            frame["token_count"] = frame["token_count"].fillna(pd.Series(counted, index=frame.index)).astype("int64")
        frames.append(frame)
    train, validation = frames
    digest = data_digest(train, validation)
    out = work_dir() / "data" / profile.name / f"{job.run_name}-published-{digest[:12]}"
    manifest = {"source": where, "data": "published", "published_config": config_name, "condition": cond.name,
                "language": job.lang or "en", "tier": job.tier, "seed": job.seed,
                "rows": {"train": len(train), "validation": len(validation)}, "lost_files": [], "digest": digest,
                "tokens": int(pd.concat([train["token_count"], validation["token_count"]]).sum())}
    if not (out / "manifest.json").exists():
        with atomic_dir(out, replace=True) as tmp:  # langdec's own cache
            train.to_parquet(tmp / "train.parquet", index=False)
            validation.to_parquet(tmp / "validation.parquet", index=False)
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False))
    return ConditionData(out, digest, manifest)


def build_tier_idx(profile: Profile, job: Job) -> list[int]:
    return build_tier(profile, job.tier, job.seed, progress=False).frame["idx"].tolist()


def _processing_version(profile: Profile, cond: Condition, lang: str | None) -> str:
    if cond.data == "code-benchmark" and cond.source_benchmark:
        from .evaluation import code

        return f"code:{code.source_digest(cond.source_benchmark, profile.evaluation.source)}"
    if cond.data == "llm-translated":
        from .translation import stage

        return f"{_processing_version(profile, _transpiled_twin(cond), lang)}:llm:{stage.settings_key(profile.translation)}:{sorted(cond.languages)}"
    if cond.data == "native":
        from .native import source_key

        return f"{_processing_version(profile, _transpiled_twin(cond), lang)}:native:{source_key(profile, lang)}"
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
    if profile.corpus.data == "published":
        params.update(source=data.manifest["source"], data="published", published_config=data.manifest["published_config"])
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
            translation = data.manifest.get("translation")
            if translation:
                from .translation import stage as translation_stage

                mlflow.log_params({f"translation.{k}": v for k, v in translation.items() if k in ("backend", "model", "prompt_version")})
                translation_stage.log_metrics(translation["reports"][job.lang], prefix="translation.")
                mlflow.log_metrics({"translation.aligned_files": translation["aligned_files"], "translation.input_files": translation["input_files"]})
            blend = data.manifest.get("blend")
            if blend:
                mlflow.log_metrics({"blend.native_files": blend["native_files"], "blend.condition_2_files": blend["condition_2_files"]})
    return data, run.run_id


def job_tags(profile: Profile, job: Job) -> dict[str, str]:
    tags = {
        "condition": job.condition,
        "lang": job.lang or "en",
        "tier": job.tier,
        "seed": str(job.seed),
        "profile": profile.name,
        "model_id": profile.model.id,
    }
    if job.arm:
        tags["arm"] = job.arm
    return tags

