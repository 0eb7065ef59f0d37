"""The `check` stage: great_expectations suites from data_checks/*.yaml gate training.

Suites are data: each entry names a great_expectations expectation in snake case
and its arguments. Checks that need Python (does the row reverse to code that
parses?) become derived columns first, so every rule is still an expectation
with a threshold in the suite file.
"""

from __future__ import annotations

import functools
import hashlib
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from langdec.core.config import Condition
from langdec.core.errors import LangdecError
from langdec.core.paths import project_root
from langdec.data import kinds
from langdec.tracking import lease
from langdec.tracking import runs as tracking

CHECK_STAGE = "check"
# the profile sections the data and check stages read (pipeline.run withholds the others): the tokenizer, the corpus
# and tiers, the translation backend (condition 5, published rows), the code benchmarks (their data kind)
SECTIONS = ("model", "corpus", "translation", "evaluation")


@dataclass
class CheckResult:
    success: bool
    results: list[dict[str, Any]]
    suite: str

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.results if not r["success"]]


def suites_dir() -> Path:
    return project_root() / "data_checks"


@functools.lru_cache(maxsize=None)
def _suites() -> dict[str, dict]:
    out = {}
    for path in sorted(suites_dir().glob("*.yaml")):
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(spec, dict) or not isinstance(spec.get("expectations"), list):
            raise LangdecError(f"{path}: a suite needs 'applies_to' and an 'expectations' list")
        spec["path"] = str(path)
        out[path.stem] = spec
    return out


def suite_for(cond: Condition) -> tuple[str, dict]:
    for name, spec in _suites().items():
        if cond.data in spec.get("applies_to", []):
            return name, spec
    raise LangdecError(
        f"no data-check suite in {suites_dir()} applies to condition {cond.name} (data kind {cond.data!r}); add one with applies_to: [{cond.data}]"
    )


def derive(frame: pd.DataFrame, cond: Condition, tier_idx: set[int] | None) -> pd.DataFrame:
    """Columns the suites check that need code: hashes and tier membership for every kind, then the
    kind's own (reversibility, keywords left, script share; `langdec.kinds`)."""
    kind = kinds.get(cond.data)
    out = frame.copy()
    out["code_sha256"] = [hashlib.sha256(str(c).encode()).hexdigest() for c in out["code"]]
    kind.derive(out)
    out["idx_in_tier"] = out["idx"].isin(tier_idx) if tier_idx is not None else True
    if "origin" in out:  # native files and benchmark tasks are not from the English tier by design
        out["idx_in_tier"] = out["idx_in_tier"] | out["origin"].isin(kinds.outside_tier())
    return out


def _expectation(spec: dict, where: str):
    import great_expectations as gx

    kind = spec.get("type")
    class_name = "".join(part.capitalize() for part in str(kind).split("_"))
    cls = getattr(gx.expectations, class_name, None)
    if cls is None:
        valid = sorted(n for n in dir(gx.expectations) if n.startswith("Expect"))
        raise LangdecError(f"{where}: unknown expectation {kind!r}; e.g. {', '.join(valid[:8])} ...")
    kwargs = {k: v for k, v in spec.items() if k != "type"}
    try:
        return cls(**kwargs)
    except Exception as exc:
        raise LangdecError(f"{where}: invalid arguments for {kind}: {exc}") from None


def validate(frame: pd.DataFrame, suite_name: str, spec: dict) -> CheckResult:
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    source = context.data_sources.add_pandas("langdec")
    asset = source.add_dataframe_asset(name="corpus")
    batch = asset.add_batch_definition_whole_dataframe("all")
    suite = context.suites.add(gx.ExpectationSuite(name=suite_name))
    for number, entry in enumerate(spec["expectations"]):
        suite.add_expectation(_expectation(entry, f"{spec['path']}: expectations[{number}]"))
    definition = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{suite_name}-check", data=batch, suite=suite)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = definition.run(batch_parameters={"dataframe": frame})
    rows = []
    for item in result.results:
        config = item.expectation_config
        kwargs = {k: v for k, v in config.kwargs.items() if k not in ("batch_id",)}
        detail = item.result or {}
        rows.append(
            {
                "expectation": config.type,
                "column": kwargs.get("column", ""),
                "kwargs": kwargs,
                "success": bool(item.success),
                "unexpected_count": detail.get("unexpected_count"),
                "unexpected_examples": [str(v)[:80] for v in (detail.get("partial_unexpected_list") or [])[:3]],
                "observed_value": detail.get("observed_value")
                if not isinstance(detail.get("observed_value"), (list, dict))
                else None,
            }
        )
    return CheckResult(bool(result.success), rows, suite_name)


def markdown_report(result: CheckResult, data_path: str) -> str:
    lines = [
        f"# Data checks: {result.suite}",
        "",
        f"Data: `{data_path}`",
        "",
        f"**{'PASSED' if result.success else 'FAILED'}**: {len(result.results) - len(result.failed)} of {len(result.results)} expectations met.",
        "",
        "| # | expectation | column | result | unexpected | examples |",
        "|---|---|---|---|---|---|",
    ]
    for number, row in enumerate(result.results):
        lines.append(
            f"| {number} | {row['expectation']} | {row['column']} | {'pass' if row['success'] else '**FAIL**'} | "
            f"{row['unexpected_count'] if row['unexpected_count'] is not None else ''} | {'; '.join(row['unexpected_examples'])} |"
        )
    return "\n".join(lines) + "\n"


def run_checks(frame: pd.DataFrame, cond: Condition, tier_idx: set[int] | None) -> CheckResult:
    name, spec = suite_for(cond)
    return validate(derive(frame, cond, tier_idx), name, spec)


def load_data_frame(data_dir: Path) -> pd.DataFrame:
    frames = []
    for split in ("train", "validation"):
        path = data_dir / f"{split}.parquet"
        try:
            frame = pd.read_parquet(path)
        except FileNotFoundError:
            raise LangdecError(
                f"{path}: missing; expected train.parquet and validation.parquet (run `langdec transpile` first)"
            ) from None
        except Exception as exc:
            raise LangdecError(
                f"{path}: not a readable Parquet file ({type(exc).__name__}: {exc}); rebuild it with `langdec transpile`"
            ) from None
        frames.append(frame.assign(split=split))
    frame = pd.concat(frames, ignore_index=True)
    if frame.empty:
        raise LangdecError(f"{data_dir}: the corpus is empty (0 rows); rebuild it or check the source")
    return frame


def run_stage(
    data, cond: Condition, experiment: str, tags: dict[str, str], *, tier_idx: set[int] | None = None
) -> tuple[CheckResult | None, str]:
    """Tracked check run; reused when the same suite already checked the same data digest."""
    import mlflow

    name, spec = suite_for(cond)
    suite_digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
    params = {"suite": name, "suite_digest": suite_digest, "condition": cond.name, "data_path": str(data.path)}
    result = None
    with lease.stage_run(
        experiment,
        CHECK_STAGE,
        f"{tags.get('run_name', cond.name)}-check",
        params=params,
        tags=tags,
        data_digest=data.digest,
    ) as run:
        if run.reused:
            return None, run.run_id
        frame = load_data_frame(data.path)
        result = run_checks(frame, cond, tier_idx)
        metrics = {
            f"check.{i:02d}.{r['expectation']}{'.' + r['column'] if r['column'] else ''}": float(r["success"])
            for i, r in enumerate(result.results)
        }
        metrics["check.passed"] = float(result.success)
        metrics["check.failed_count"] = float(len(result.failed))
        mlflow.log_metrics(metrics)
        mlflow.set_tag("langdec.check_status", "passed" if result.success else "failed")
        mlflow.log_dict({"suite": name, "success": result.success, "results": result.results}, "validation_result.json")
        mlflow.log_text(markdown_report(result, str(data.path)), "data_checks.md")
    return result, run.run_id


def prepare_and_check(profile, cond: Condition, job, experiment: str, phase: str, *, progress: bool = True):
    """The steps before training: the transpile stage builds the condition's data, then the suite checks it.
    Returns ((ConditionData, data run id), (CheckResult or None if reused, check run id))."""
    from langdec.data import stage as data

    data_run = data.run_stage(profile, cond, job, experiment, progress=progress)
    tags = {**data.job_tags(profile, job), "phase": phase, "run_name": job.run_name}
    # the study's published rows are checked as they are; langdec's tier says nothing about them
    tier_idx = None if profile.corpus.data == "published" else set(data.build_tier_idx(profile, job))
    checked = run_stage(data_run[0], cond, experiment, tags, tier_idx=tier_idx)
    return data_run, checked


def check_folder(folder: Path, profile, cond: Condition, job, experiment: str, phase: str):
    """The checks on a folder someone else built (train.parquet and validation.parquet), keyed by its rows'
    digest; tier membership is not checked (the folder says nothing about a tier)."""
    from langdec.data import stage as data

    frame = load_data_frame(folder)
    digest = data.data_digest(frame[frame.split == "train"], frame[frame.split == "validation"])
    cdata = data.ConditionData(folder, digest, {})
    tags = {**data.job_tags(profile, job), "phase": phase, "run_name": job.run_name}
    return cdata, run_stage(cdata, cond, experiment, tags, tier_idx=None)


def latest_status(experiment: str, digest: str) -> tuple[str, str | None, list[str]]:
    """('passed' | 'failed' | 'missing', run id, failed expectation names) for a data digest."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    runs = client.search_runs(
        [tracking.experiment_id(experiment)],
        filter_string=f"tags.`langdec.stage` = '{CHECK_STAGE}' and tags.`langdec.data_digest` = '{digest}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not runs:
        return "missing", None, []
    run = runs[0]
    status = run.data.tags.get("langdec.check_status", "missing")
    failed: list[str] = []
    if status == "failed":
        path = tracking.artifact_dir(run.info.run_id, "validation_result.json")
        payload = json.loads(Path(path).read_text())
        failed = [f"{r['expectation']}({r['column']})" for r in payload["results"] if not r["success"]]
    return status, run.info.run_id, failed
