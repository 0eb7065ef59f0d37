"""The `evaluate` stage and `reparse`: score a model on its matrix, keep every raw generation.

Every generation is stored as an artifact (cell, item, prompt hash, output), so
any extractor can re-score a run later without the model (`reparse`). Each
generative score is logged under its extractor's name, with the extractor's
version in a tag; log-likelihood scores need no extractor at all.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from langdec.core.config import Condition, Job, Profile
from langdec.core.errors import LangdecError
from langdec.core.urls import redact_url
from langdec.evaluation import backends, benchmarks, diagnostics, extractors, machine_translation
from langdec.evaluation import records as items_mod
from langdec.evaluation.matrix import Cell, CellScore, cells, gen_key, ll_key, score
from langdec.evaluation.prompts import prompt_hash, render
from langdec.models.loading import model_identity
from langdec.tracking import lease
from langdec.tracking import runs as tracking

EVAL_STAGE = "evaluate"
# the profile sections evaluation reads: the model, its own, training's quantization (the adapter's base on a GPU),
# the translation backend (machine-translated benchmark variants); never the corpus
SECTIONS = ("model", "evaluation", "training", "translation")
LOGLIKELIHOOD = "loglikelihood.jsonl"
CODE_RESULTS = "code_results.jsonl"


if TYPE_CHECKING:
    import pyarrow as pa


@dataclass
class EvalResult:
    run_id: str
    reused: bool
    metrics: dict[str, float]


ItemIndex = dict[tuple[str, str], dict[str, benchmarks.Item]]


def score_items(
    data: "pa.Table", extractor_names: list[str], items: ItemIndex | None = None
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Metrics and table rows for every cell and extractor from a run's labelled items (`langdec.items`):
    accuracy, then every registered diagnostic (`evaluation.diagnostics`); `items` lets those that read the
    items find them. Counts are taken per cell in bulk; no extractor runs here."""
    frame = data.select(
        [
            *items_mod.KEYS,
            "item_id",
            "gold",
            *(items_mod.pred(n) for n in extractor_names),
            *(items_mod.correct(n) for n in extractor_names),
        ]
    ).to_pandas()
    rows_of = {str(k): v for k, v in frame.groupby("cell", sort=False, observed=True).indices.items()}
    firsts = {name: frame.iloc[idx[0]] for name, idx in rows_of.items()}
    golds = _counts(frame, "gold")
    gold = frame["gold"].to_numpy(dtype=object)
    item_ids = frame["item_id"].to_numpy(dtype=object)
    metrics: dict[str, float] = {}
    rows: list[dict[str, Any]] = []
    for name in extractor_names:
        ex = extractors.get(name)
        predicted = _counts(frame, items_mod.pred(name))
        hits = frame.groupby("cell", observed=True)[items_mod.correct(name)].sum()
        preds = frame[items_mod.pred(name)].to_numpy(dtype=object)
        for cell_name in sorted(rows_of):
            idx, first = rows_of[cell_name], firsts[cell_name]
            cell = Cell(str(first["template"]), str(first["benchmark"]), str(first["data"]), str(first["instr"]))
            n = len(idx)
            counts = predicted.get(cell_name, {})
            parsed = sum(counts.values())
            s = CellScore(
                n=n,
                acc=int(hits[cell_name]) / n,
                unparsed=(n - parsed) / n,
                top_label_share=max(counts.values()) / n if counts else 0.0,
                predicted=counts,
                gold=golds.get(cell_name, {}),
            )
            found = (items or {}).get((cell.benchmark, cell.data))
            aligned = [found.get(str(i)) for i in item_ids[idx]] if found else None
            view = diagnostics.CellView(
                cell.benchmark,
                cell.data,
                preds[idx],
                gold[idx],
                aligned if aligned and all(aligned) else None,
                list(found.values()) if found else None,
                s,
            )
            metrics[gen_key(name, cell)] = s.acc
            for stat, value in diagnostics.run_all(view).items():
                metrics[gen_key(name, cell, stat)] = value
            rows.append(_table_row(name, ex.version, cell, s))
    return metrics, rows


def _table_row(extractor: str, version: str, cell: Cell, s: CellScore) -> dict[str, Any]:
    """One row of the run's score table: a cell as one extractor scored it."""
    return {
        "extractor": extractor,
        "extractor_version": version,
        **asdict(cell),
        "n": s.n,
        "acc": s.acc,
        "unparsed": s.unparsed,
        "top_label_share": s.top_label_share,
        "predicted": json.dumps(s.predicted, ensure_ascii=False),
        "gold": json.dumps(s.gold, ensure_ascii=False),
    }


def _counts(frame, column: str) -> dict[str, dict[str, int]]:
    """{cell: {value: count}} over the non-null values of one column, values sorted."""
    out: dict[str, dict[str, int]] = {}
    for (cell, value), count in frame.groupby(["cell", column], observed=True, dropna=True).size().items():
        if count:
            out.setdefault(str(cell), {})[str(value)] = int(count)
    return {cell: dict(sorted(values.items())) for cell, values in out.items()}


def item_index(bench_items: dict[tuple[str, str], list[benchmarks.Item]]) -> ItemIndex:
    return {key: {item.id: item for item in its} for key, its in bench_items.items()}


@dataclass(frozen=True)
class Scored:
    """What an evaluation run scored, for the caller to record (the pipeline tags the adapter's registered version)."""

    run_id: str
    benchmarks: list[str]
    extractor_versions: dict[str, str]
    cells: int


@dataclass(frozen=True)
class _Plan:
    """One evaluation run before it starts: its matrix, its key's params, its tags."""

    run_name: str
    benchmarks: list[str]
    source: str
    matrix: list[Cell]
    params: dict[str, Any]
    tags: dict[str, str]


def run(
    profile: Profile,
    cond: Condition,
    job: Job,
    *,
    phase: str,
    experiment: str,
    data_languages: list[str],
    adapter_uri: str | None = None,
    train_run_id: str | None = None,
    benchmarks_override: list[str] | None = None,
    source: str | None = None,
    progress: bool = True,
    extra_tags: dict[str, str] | None = None,
    adapter_digest: str | None = None,
    on_scored: Callable[[Scored], None] | None = None,
) -> EvalResult:
    """Score a model on its matrix. `adapter_uri` is an MLflow artifact URI or a local adapter folder
    (`adapter_digest` then keys the run); `extra_tags` mark, e.g., a published adapter's origin; `on_scored` is
    called with what was scored while the run is still open (not when a finished run is reused)."""
    import mlflow

    plan = _plan(
        profile,
        cond,
        job,
        phase=phase,
        data_languages=data_languages,
        train_run_id=train_run_id,
        benchmarks_override=benchmarks_override,
        source=source,
        extra_tags=extra_tags,
    )
    with lease.stage_run(
        experiment,
        EVAL_STAGE,
        plan.run_name,
        params=plan.params,
        tags=plan.tags,
        data_digest=adapter_digest or train_run_id or "base-model",
    ) as srun:
        if srun.reused:
            return EvalResult(srun.run_id, True, mlflow.get_run(srun.run_id).data.metrics)
        metrics, versions = _score(profile, job, plan, srun.run_id, adapter_uri, progress)
        if on_scored is not None:
            on_scored(Scored(srun.run_id, plan.benchmarks, versions, len(plan.matrix)))
    return EvalResult(srun.run_id, False, metrics)


def _plan(
    profile: Profile,
    cond: Condition,
    job: Job,
    *,
    phase: str,
    data_languages: list[str],
    train_run_id: str | None,
    benchmarks_override: list[str] | None,
    source: str | None,
    extra_tags: dict[str, str] | None,
) -> _Plan:
    ev = profile.evaluation
    bench_names = benchmarks_override or ev.benchmarks
    source = source or ev.source
    matrix = cells(cond, job.lang, data_languages, bench_names, ev.templates, ev.prompts)
    if not matrix and not ev.code_benchmarks:
        raise LangdecError(
            f"{job.run_name}: the evaluation matrix is empty (benchmarks {bench_names}, data languages {data_languages})"
        )
    tags = {
        "condition": job.condition,
        "lang": job.lang or "",
        "tier": job.tier,
        "seed": str(job.seed),
        "phase": phase,
        "profile": profile.name,
        "model_id": profile.model.id,
        "run_name": job.run_name,
        "adapter_run": train_run_id or "",
        **model_identity(profile.model),
    }
    if job.arm:
        tags["arm"] = job.arm
    tags.update(extra_tags or {})
    run_name = f"{job.run_name}-eval" + ("-published" if tags.get("origin") == "published" else "")
    params = _params(profile, job, bench_names, data_languages, source, train_run_id)
    return _Plan(run_name, bench_names, source, matrix, params, tags)


def _params(
    profile: Profile, job: Job, bench_names: list[str], data_languages: list[str], source: str, train_run_id: str | None
) -> dict[str, Any]:
    """The evaluation run's params: every setting that changes a score, so a changed one keys a new run."""
    ev = profile.evaluation
    params = {
        "condition": job.condition,
        "lang": job.lang or "",
        "tier": job.tier,
        "seed": job.seed,
        "profile": profile.name,
        "benchmarks": bench_names,
        "templates": ev.templates,
        "data_languages": data_languages,
        "source": source,
        "max_items": ev.max_items,
        "slice": benchmarks.describe_slice(ev.max_items, ev.slice, ev.slice_seed),
        "max_new_tokens": ev.max_new_tokens,
        "max_prompt_tokens": ev.max_prompt_tokens,
        "truncation_side": ev.truncation_side,
        "prompts": ev.prompts,
        "adapter_run": train_run_id or "none",
        "loglikelihood": ev.loglikelihood,
        **model_identity(profile.model),
    }  # a GGUF file's sha256: another file, another baseline run
    if any(benchmarks.get(b).translate for b in bench_names):
        from langdec.data.translation import stage as translation_stage

        params["machine_translation"] = translation_stage.settings_key(
            profile.translation
        )  # a new translator, a new run
    if ev.backend == "hf":  # the base model as it loads here (NF4 on a GPU, or on CPU with training.allow_cpu)
        from langdec.models.effective import scoring_quantization

        params["quantization"] = scoring_quantization(profile.training.quantization, profile.training.allow_cpu)
    if ev.backend != "hf":
        params.update(
            {
                "backend": ev.backend,
                "base_url": redact_url(ev.base_url),
                "served_model": ev.served_model,
                "adapter_model": ev.adapter_model,
            }
        )
    if ev.code_benchmarks:
        params.update(
            {
                "code_benchmarks": ev.code_benchmarks,
                "code_samples": ev.code_samples,
                "code_temperature": ev.code_temperature,
                "code_k": ev.code_k,
                "code_max_new_tokens": ev.code_max_new_tokens,
                "code_limits": f"{ev.code_timeout_seconds}s/{ev.code_memory_mb}MB",
            }
        )
    return params


def _score(
    profile: Profile, job: Job, plan: _Plan, run_id: str, adapter_uri: str | None, progress: bool
) -> tuple[dict[str, float], dict[str, str]]:
    """Generate, label and score the matrix (and log-likelihood, code) in the open run; (metrics, extractor versions)."""
    import mlflow

    ev = profile.evaluation
    start = time.perf_counter()
    items = _items(profile, plan)
    from langdec.evaluation.loading import (
        adapter_folder,  # torch: only where a model is loaded (reports and reparse never do)
    )

    scorer = backends.load(
        profile.model,
        ev,
        adapter_folder(adapter_uri),
        job.run_name,
        quantization=profile.training.quantization,
        allow_cpu=profile.training.allow_cpu,
    )
    if isinstance(scorer, backends.HFModel):  # in this process: what loaded (NF4 or not), not what was asked
        from langdec.models.effective import quantized_layers

        mlflow.set_tag("langdec.quantized_layers", quantized_layers(scorer.model))
    records = _generate(scorer, ev, job, plan, items, progress)
    gen_seconds = time.perf_counter() - start
    extractor_names = sorted(extractors.extractors())
    labelled = items_mod.table(records, extractor_names)
    metrics, rows = score_items(labelled, extractor_names, item_index(items))
    if ev.loglikelihood:
        ll_metrics, ll_records = _loglikelihood(scorer, items, ev)
        metrics.update(ll_metrics)
        mlflow.log_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ll_records), LOGLIKELIHOOD)
    if ev.code_benchmarks:
        code_metrics, code_records = _code(scorer, ev, plan.source, progress)
        metrics.update(code_metrics)
        mlflow.log_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in code_records), CODE_RESULTS)
    metrics.update(summary_metrics(metrics))
    metrics["eval.items"] = float(len(records))
    metrics["eval.items_per_s"] = len(records) / max(gen_seconds, 1e-9)
    metrics["eval.seconds"] = time.perf_counter() - start
    versions = log_scored(run_id, metrics, labelled, rows, extractor_names, [*plan.benchmarks, *ev.code_benchmarks])
    return metrics, versions


def _items(profile: Profile, plan: _Plan) -> dict[tuple[str, str], list[benchmarks.Item]]:
    """The items of every (benchmark, data language) the matrix scores, sliced as the profile says (the slice logged)."""
    import mlflow

    ev = profile.evaluation
    cut = {"limit": ev.max_items, "slice": ev.slice, "seed": ev.slice_seed}
    items = {
        (b, d): (
            machine_translation.items(b, d, profile, source=plan.source, **cut)
            if benchmarks.get(b).translate
            else benchmarks.load(b, d, source=plan.source, **cut)
        )
        for b in plan.benchmarks
        for d in plan.params["data_languages"]
        if d in benchmarks.get(b).languages
    }
    if ev.max_items:  # which items the slice took, so paired runs can be checked to share them
        record = benchmarks.slice_record(items, plan.params["slice"])
        mlflow.log_dict(record, "slice.json")
        mlflow.set_tag("langdec.slice_digest", record["digest"])
    return items


def _generate(
    scorer: backends.ScoringModel, ev, job: Job, plan: _Plan, items: dict, progress: bool
) -> list[dict[str, Any]]:
    """One record per (cell, item): its prompt's hash, the gold label and the model's stripped output."""
    records, prompts = [], []
    for cell in plan.matrix:
        for item in items[(cell.benchmark, cell.data)]:
            prompt = render(cell.template, cell.benchmark, cell.instr, item, ev.prompts)
            prompts.append(prompt)
            records.append(
                {
                    "cell": cell.name,
                    **asdict(cell),
                    "tier": job.tier,
                    "item_id": item.id,
                    "prompt_hash": prompt_hash(prompt),
                    "gold": item.label,
                }
            )
    outputs = (
        scorer.generate(
            prompts,
            max_new_tokens=ev.max_new_tokens,
            batch_size=ev.batch_size,
            max_prompt_tokens=ev.max_prompt_tokens,
            progress=progress,
            truncation_side=ev.truncation_side,
        )
        if prompts
        else []
    )
    for rec, out in zip(records, outputs):
        rec["output"] = out.strip()  # the study stored the decoded answer stripped
    return records


def log_scored(
    run_id: str,
    metrics: dict[str, float],
    labelled: "pa.Table",
    rows: list[dict[str, Any]],
    extractor_names: list[str],
    evaluated: list[str],
) -> dict[str, str]:
    """What every evaluation run carries (langdec's own, or an imported result file): its metrics, every
    generation labelled by every extractor (items.parquet), the per-cell table and the versions of the
    extractors that scored it. Returns those versions."""
    import mlflow

    tracking.MlflowMetricLogger(run_id).log(metrics)
    items_mod.log(run_id, labelled)
    if rows:
        mlflow.log_table(_table(rows), "cells.json")
    versions = {name: extractors.get(name).version for name in extractor_names}
    mlflow.set_tags({f"langdec.extractor.{k}": v for k, v in versions.items()})
    mlflow.set_tag("langdec.evaluated_benchmarks", ",".join(evaluated))
    return versions


def summary_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """The few columns a researcher sorts runs by: per benchmark and data language, the mean accuracy under
    each extractor (over templates and instruction languages) and by log-likelihood, e.g. summary.sib200.ur.refined."""
    groups: dict[str, list[float]] = {}
    for (extractor, _template, bench, data, _instr), value in _generated_accuracies(metrics):
        groups.setdefault(f"summary.{bench}.{data.removeprefix('data:')}.{extractor}", []).append(value)
    for key, value in metrics.items():
        parts = key.split(".")
        if key.startswith("ll.") and key.endswith(".acc") and len(parts) == 4:
            groups.setdefault(f"summary.{parts[1]}.{parts[2].removeprefix('data:')}.ll", []).append(value)
    return _means(groups)


def _generated_accuracies(metrics: dict[str, float]):
    """(extractor, template, benchmark, data:<lang>, instr:<lang>), accuracy of every `gen.*.acc` cell metric."""
    for key, value in metrics.items():
        parts = key.split(".")
        if key.startswith("gen.") and key.endswith(".acc") and len(parts) == 7:
            yield tuple(parts[1:6]), value


def _means(groups: dict[str, list[float]]) -> dict[str, float]:
    return {k: sum(v) / len(v) for k, v in sorted(groups.items())}


def template_scores(metrics: dict[str, float]) -> dict[str, float]:
    """Per template, benchmark and extractor, the mean accuracy over data and instruction languages, e.g.
    template1.xnli.refined: the two templates side by side, as a model's page in MLflow shows them."""
    groups: dict[str, list[float]] = {}
    for (extractor, template, bench, _data, _instr), value in _generated_accuracies(metrics):
        groups.setdefault(f"{template}.{bench}.{extractor}", []).append(value)
    return _means(groups)


def _code(
    scorer: backends.ScoringModel, ev, source: str, progress: bool
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Generate and execute the code benchmarks (pass@k); one record per executed candidate."""
    from langdec.evaluation import code
    from langdec.evaluation.sandbox import Limits, Sandbox

    settings = code.CodeSettings(
        samples=ev.code_samples,
        temperature=ev.code_temperature,
        ks=tuple(ev.code_k),
        max_new_tokens=ev.code_max_new_tokens,
        batch_size=ev.batch_size,
        max_prompt_tokens=ev.max_prompt_tokens,
        workers=ev.code_workers,
        limits=Limits(
            wall_seconds=ev.code_timeout_seconds, cpu_seconds=int(ev.code_timeout_seconds), memory_mb=ev.code_memory_mb
        ),
    )
    metrics: dict[str, float] = {}
    records: list[dict[str, Any]] = []
    with Sandbox(settings.limits, slots=settings.workers) as sandbox:
        for name in ev.code_benchmarks:
            bench = code.get(name)
            tasks = code.load(
                name,
                source="fixtures" if source == "fixtures" else "hub" if source == "hub" else source,
                limit=ev.max_items,
            )
            completions = code.complete(scorer, tasks, settings, progress=progress)
            m, recs = code.execute(bench, tasks, completions, settings, sandbox)
            metrics.update(m)
            records += [{**r, "language": bench.programming_language} for r in recs]
    return metrics, records


def _table(rows: list[dict[str, Any]]) -> dict[str, list]:
    columns = list(rows[0]) if rows else []
    return {c: [r[c] for r in rows] for c in columns}


def _loglikelihood(scorer: backends.ScoringModel, items: dict, ev) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Extractor-free accuracy: template1 in English, the option with the highest log-likelihood."""
    metrics: dict[str, float] = {}
    records: list[dict[str, Any]] = []
    for (bench_name, data), its in items.items():
        closed = [it for it in its if it.options]
        if not closed:
            continue
        prompts = [render("template1", bench_name, "en", it, ev.prompts) for it in closed]
        chosen = backends.choose_options(
            scorer,
            prompts,
            [it.options for it in closed],
            batch_size=ev.batch_size,
            max_prompt_tokens=ev.max_prompt_tokens,
            truncation_side=ev.truncation_side,
        )
        preds = [it.options[c] for it, c in zip(closed, chosen)]
        s = score(preds, [it.label for it in closed])
        metrics[ll_key(bench_name, data)] = s.acc
        metrics[ll_key(bench_name, data, "top_label_share")] = s.top_label_share
        records += [
            {"benchmark": bench_name, "data": data, "item_id": it.id, "gold": it.label, "pred": p}
            for it, p in zip(closed, preds)
        ]
    return metrics, records


def _items_of(run, data: "pa.Table") -> ItemIndex:
    """The items a finished run was scored on, from the source it names, for diagnostics that read them;
    a benchmark whose items cannot be found (an imported run, a moved file) is left out."""
    source = run.data.params.get("source")
    limit = run.data.params.get("max_items")
    how, seed = benchmarks.parse_slice(run.data.params.get("slice"))
    pairs = data.select(["benchmark", "data"]).group_by(["benchmark", "data"]).aggregate([]).to_pylist()
    wanted = {
        (p["benchmark"], p["data"])
        for p in pairs
        if any(d.needs_items for d in diagnostics.for_benchmark(p["benchmark"]))
    }
    out: dict[tuple[str, str], list[benchmarks.Item]] = {}
    for bench, data_lang in sorted(wanted):
        if run.data.tags.get("origin") == "imported" or benchmarks.get(bench).translate:
            continue  # no items to find (imported), or they need the translation backend
        try:
            out[(bench, data_lang)] = benchmarks.load(
                bench,
                data_lang,
                source=source or "fixtures",
                limit=int(limit) if limit not in (None, "None") else None,
                slice=how,
                seed=seed,
            )
        except LangdecError:
            continue
    return item_index(out)


def reparse(run_id: str, extractor_name: str, *, run=None) -> dict[str, float]:
    """Re-score a finished evaluation run's stored generations with another extractor (or a newer version).

    The labels replace the extractor's columns in the run's items.parquet (an earlier version's stay beside,
    as `pred.<name>@<version>`); scores land under `gen.<name>...`, or under `gen.<name>-<version>...` when that
    name already holds scores of a different version, so no metric is overwritten."""
    from mlflow.tracking import MlflowClient

    from langdec.core.locks import hold

    ex = extractors.get(extractor_name)
    client = MlflowClient()
    try:
        run = run or client.get_run(run_id)
    except Exception:
        raise LangdecError(
            f"no run {run_id} in the tracking store; list evaluation runs with `langdec ui`, or pass "
            "--experiment EXP to re-score all of an experiment's"
        ) from None
    if run.data.tags.get("langdec.stage") != EVAL_STAGE:
        raise LangdecError(f"run {run_id} is not an evaluation run (stage {run.data.tags.get('langdec.stage')!r})")
    with hold(f"items-{run_id}", f"re-scoring run {run_id}'s items"):
        data = items_mod.label(items_mod.read(run_id, artifact_uri=run.info.artifact_uri), [extractor_name])
        items_mod.log(run_id, data)
    recorded = run.data.tags.get(f"langdec.extractor.{extractor_name}")
    label = extractor_name if recorded in (None, ex.version) else f"{extractor_name}-{ex.version}"
    metrics, rows = score_items(data, [extractor_name], _items_of(run, data))
    renamed = {k.replace(f"gen.{extractor_name}.", f"gen.{label}.", 1): v for k, v in metrics.items()}
    tracking.MlflowMetricLogger(run_id).log(renamed)
    client.set_tag(run_id, f"langdec.extractor.{label}", ex.version)
    client.log_table(run_id, _table(rows), f"cells-{label}.json")
    return renamed


def reparse_experiment(experiment: str, extractor_name: str, *, progress: bool = True) -> dict[str, dict[str, float]]:
    """`reparse` every finished evaluation run of an experiment; {run id: its re-scored metrics}."""
    from mlflow.tracking import MlflowClient
    from tqdm import tqdm

    extractors.get(extractor_name)  # an unknown name fails before any run is touched
    found = MlflowClient().get_experiment_by_name(experiment)
    if found is None:
        raise LangdecError(
            f"--experiment {experiment}: no such experiment in the tracking store; run `langdec ui --no-serve` "
            "to list langdec's experiments"
        )
    runs = MlflowClient().search_runs(
        [found.experiment_id],
        f"tags.`langdec.stage` = '{EVAL_STAGE}' and attributes.status = 'FINISHED'",
        max_results=50000,
    )
    if not runs:
        raise LangdecError(f"experiment {experiment} has no finished evaluation run to re-score")
    return {
        run.info.run_id: reparse(run.info.run_id, extractor_name, run=run)
        for run in tqdm(runs, desc=f"reparse {extractor_name}", unit="run", disable=not progress)
    }
