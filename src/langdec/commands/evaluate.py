"""The evaluate stage and what reads its records: extraction, re-scoring, benchmarks, the study's results."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from langdec.commands.common import experiment_of, job_args, where_of
from langdec.core.errors import LangdecError


def _languages(given: str | None) -> list[str]:
    from langdec.core.config import DATA_LANGUAGES

    return given.split(",") if given else list(DATA_LANGUAGES)


def cmd_evaluate(args) -> int:
    from langdec.orchestration import pipeline
    from langdec.tracking import runs as tracking

    if args.adapter:
        return _evaluate_published(args)
    where = where_of(args)
    adapter = _adapter_of(args, where)
    ev = pipeline.Evaluate(
        data_languages=_languages(args.data_languages),
        benchmarks=args.benchmarks.split(",") if args.benchmarks else None,
        source=args.source,
    )
    result = pipeline.run(where, stages=("evaluate",), evaluate=ev, adapter=adapter, progress=not args.quiet).evaluation
    refined = [v for k, v in result.metrics.items() if k.startswith("gen.refined") and k.endswith(".acc")]
    print(
        json.dumps(
            {
                "run_id": result.run_id,
                "reused": result.reused,
                "scored": where.job.run_name,
                "adapter_run": adapter.run_id if adapter else None,
                "registered_version": adapter.version if adapter else None,
                "cells": len(refined),
                "mean_refined_acc": round(sum(refined) / max(1, len(refined)), 4),
                "browse": tracking.ui_command(),
            },
            indent=2,
        )
    )
    return 0


def _adapter_of(args, where):
    """Exactly the adapter the arguments name: --adapter-run, else the version that holds the cell (or its
    arm) in the registry, else the finished training run of the same settings (whichever backend and
    quantisation it ran with). None for the baseline."""
    from langdec.data import stage as data
    from langdec.orchestration import pipeline
    from langdec.tracking import registry
    from langdec.tracking import runs as tracking
    from langdec.training import keys
    from langdec.training import stage as train

    profile, job = where.profile, where.job
    if not job.trains:
        return None
    if args.adapter_run:
        return pipeline.Adapter(args.adapter_run, registry.version_for_run(profile.registered_model, args.adapter_run))
    held = registry.live_version(profile.registered_model, args.phase, job)
    if held is not None:
        return pipeline.Adapter(held.run_id, str(held.version))
    digest = data.prepare(profile, where.cond, job, progress=False).digest
    for key in keys.candidate_keys(profile, job, digest):
        found = tracking.latest_run(where.experiment, train.TRAIN_STAGE, {"langdec.run_key": key})
        if found is not None:
            return pipeline.Adapter(
                found.info.run_id, registry.version_for_run(profile.registered_model, found.info.run_id)
            )
    raise LangdecError(
        f"no adapter for {job.run_name} in {where.experiment}: no registered version holds it and no finished "
        "training run has these settings; run `langdec train` with the same arguments first, or pass "
        "--adapter-run RUN_ID"
    )


def _evaluate_published(args) -> int:
    """The study's own adapter, evaluated like any run and registered with its origin."""
    from langdec.core import config
    from langdec.evaluation import stage
    from langdec.tracking import published
    from langdec.tracking import runs as tracking

    adapter = published.resolve_adapter(args.adapter)
    study = adapter.study
    cond = config.condition(study.condition)
    profile = config.load_profile(args.profile, args.overrides)
    job = config.Job(cond.name, None if cond.name == "1" else study.lang, study.tier, int(study.seed or args.seed))
    phase = adapter.phase if args.phase == "phase-3" else args.phase
    experiment = experiment_of(profile, phase)
    benches = args.benchmarks.split(",") if args.benchmarks else None
    result = stage.run(
        profile.only(stage.EVAL_STAGE, stage.SECTIONS),
        cond,
        job,
        phase=phase,
        experiment=experiment,
        data_languages=_languages(args.data_languages),
        adapter_uri=str(adapter.path),
        benchmarks_override=benches,
        source=args.source,
        progress=not args.quiet,
        extra_tags=adapter.tags(),
        adapter_digest=adapter.digest,
    )
    version = _register_published_run(result, adapter, job, profile)
    print(
        json.dumps(
            {
                "run_id": result.run_id,
                "reused": result.reused,
                "adapter": adapter.folder,
                "origin": "published",
                "registered_model": profile.registered_model,
                "registered_version": version,
                "condition": job.run_name,
                "browse": tracking.ui_command(),
            },
            indent=2,
        )
    )
    return 0


def _register_published_run(result, adapter, job, profile) -> str:
    """Store the published adapter beside its evaluation run (once) and register it with its origin; the version."""
    import mlflow

    from langdec.evaluation import extractors
    from langdec.tracking import registry

    run = mlflow.get_run(result.run_id)
    if "adapter/adapter_config.json" not in {
        a.path for a in mlflow.MlflowClient().list_artifacts(result.run_id, "adapter")
    }:
        import shutil
        import tempfile
        from pathlib import Path

        from langdec.models import mlflow_model

        with tempfile.TemporaryDirectory(prefix="published-") as tmp:
            # a copy: the user's folder is never written to; the stored copy is an MLflow Model like every version
            folder = Path(shutil.copytree(adapter.path, Path(tmp) / "adapter"))
            mlflow_model.describe(folder, profile)
            mlflow.MlflowClient().log_artifacts(result.run_id, str(folder), "adapter")
    evaluated = run.data.tags.get("langdec.evaluated_benchmarks", "").split(",")
    return registry.register_published(
        profile.registered_model,
        result.run_id,
        adapter,
        job=job,
        profile=profile,
        benchmarks=[b for b in evaluated if b],
        extractor_versions={n: extractors.get(n).version for n in extractors.extractors()},
        cells=sum(k.startswith("gen.refined.") and k.endswith(".acc") for k in result.metrics),
    )


def cmd_extract(args) -> int:
    from langdec.evaluation import extractors

    ex = extractors.get(args.extractor)
    for number, line in enumerate(sys.stdin, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            output = record["output"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise LangdecError(f'stdin line {number}: expected a JSON object with an "output" string') from None
        print(json.dumps({"label": ex(args.benchmark, str(output))}, ensure_ascii=False), flush=True)
    return 0


def cmd_reparse(args) -> int:
    from langdec.evaluation import stage
    from langdec.tracking import runs as tracking

    if bool(args.run) == bool(args.experiment):
        raise LangdecError(
            "usage: langdec reparse RUN_ID --extractor NAME, or langdec reparse --experiment EXP --extractor NAME"
        )
    tracking.configure()
    scored = (
        stage.reparse_experiment(args.experiment, args.extractor, progress=not args.quiet)
        if args.experiment
        else {args.run: stage.reparse(args.run, args.extractor)}
    )

    def summary(run_id: str, metrics: dict[str, float]) -> dict:
        accs = [v for k, v in metrics.items() if k.endswith(".acc")]
        return {"run_id": run_id, "cells": len(accs), "mean_acc": round(sum(accs) / max(len(accs), 1), 4)}

    out = {"extractor": args.extractor, "runs": [summary(r, m) for r, m in scored.items()]}
    if args.run:
        out = {**out, **out.pop("runs")[0]}
    print(json.dumps(out, indent=2))
    return 0


def cmd_benchmarks(args) -> int:
    from langdec.evaluation import benchmarks

    if args.action == "list":
        for name in benchmarks.benchmark_names():
            b = benchmarks.get(name)
            print(f"{name}: {b.task}, languages {', '.join(b.languages)}, hub {b.hub.id}")
        return 0
    if args.action == "prompts":
        return _print_prompts(args)
    if not args.name or not args.lang:
        raise LangdecError(
            "usage: langdec benchmarks show BENCH --lang L [--source PATH] [--limit N [--slice S] [--slice-seed K]]"
        )
    items = benchmarks.load(args.name, args.lang, source=args.source)
    shown = {
        "benchmark": args.name,
        "lang": args.lang,
        "source": args.source,
        "rows": len(items),
        "labels": benchmarks.label_distribution(items),
    }
    if args.limit:  # the items evaluation.max_items=N takes with the same slice and seed
        cut = benchmarks.load(
            args.name, args.lang, source=args.source, limit=args.limit, slice=args.slice, seed=args.slice_seed
        )
        shown["slice"] = {
            "method": benchmarks.describe_slice(args.limit, args.slice, args.slice_seed),
            "rows": len(cut),
            "labels": benchmarks.label_distribution(cut),
            "ids": [item.id for item in cut],
        }
    print(json.dumps(shown, indent=2, ensure_ascii=False))
    return 0


def _print_prompts(args) -> int:
    """One JSON line per item: the exact prompt the evaluation sends, so anyone can diff it."""
    from langdec.evaluation import benchmarks, prompts

    data = args.data_lang or args.lang
    if not args.name or not data or not args.instr:
        raise LangdecError(
            "usage: langdec benchmarks prompts BENCH --data-lang D --instr I [--template T] "
            "[--prompts SET] [--source PATH] [--limit N]"
        )
    _, supplied_by = prompts.resolve(args.prompts, args.template, args.name, args.instr)
    for item in benchmarks.load(
        args.name, data, source=args.source, limit=args.limit, slice=args.slice, seed=args.slice_seed
    ):
        print(
            json.dumps(
                {
                    "id": item.id,
                    "benchmark": args.name,
                    "data": data,
                    "instr": args.instr,
                    "template": args.template,
                    "prompt_set": supplied_by,
                    "prompt": prompts.render(args.template, args.name, args.instr, item, args.prompts),
                    "gold": item.label,
                },
                ensure_ascii=False,
            )
        )
    return 0


def cmd_import_results(args) -> int:
    from langdec.tracking import published
    from langdec.tracking import runs as tracking

    tracking.configure()
    imported, skipped = published.import_results(args.src, args.experiment)
    for line in skipped:
        print(f"skipped {line}", file=sys.stderr)
    for stray in (i for i in imported if i.stray):
        print(f"stray {stray.note}", file=sys.stderr)
    print(
        json.dumps(
            {
                "experiment": args.experiment,
                "imported": sum(not i.reused for i in imported),
                "already_imported": sum(i.reused for i in imported),
                "strays": sum(i.stray for i in imported),
                "skipped": len(skipped),
                "files": [vars(i) for i in imported],
                "next": f"langdec report --experiment {args.experiment} --by-tier; langdec study-tables --experiment "
                f"{args.experiment} --out DIR",
            },
            indent=2,
        )
    )
    return 0


def cmd_study_tables(args) -> int:
    from langdec.analysis.study import command
    from langdec.tracking import runs as tracking

    tracking.configure()
    done = command.run(
        args.experiment, Path(args.out), origin=args.origin, replace=args.force, top=args.top_n, progress=not args.quiet
    )
    for line in done.skipped:
        print(f"skipped run {line}", file=sys.stderr)
    read = done.recoverable
    print(
        json.dumps(
            {
                "out": str(done.out),
                "files": len(done.files),
                "sessions": len(done.sources),
                "cells": done.cells,
                "conclusion_flips": done.flips,
                "study_tables_run": done.run_id,
                "langdec_reads_of_refined_unread": f"{read['langdec_reads']} of {read['refined_unread']}",
                "manifest": str(done.out / "MANIFEST.json"),
                "browse": tracking.ui_command(),
            },
            indent=2,
        )
    )
    return 0


def cmd_probe(args) -> int:
    from langdec.evaluation import probe
    from langdec.tracking import runs as tracking

    where = where_of(args)
    adapter = _adapter_of(args, where)
    langs = _languages(args.languages)
    run_id, reused, metrics = probe.run(
        where.profile.only(probe.PROBE_STAGE, probe.SECTIONS),
        where.cond,
        where.job,
        phase=args.phase,
        experiment=where.experiment,
        adapter_uri=adapter.uri if adapter else None,
        adapter_run=adapter.run_id if adapter else None,
        languages=langs,
        benchmark=args.benchmark,
        max_tokens=args.tokens,
        source=args.source,
    )
    last = max(int(k.split(".")[2][5:]) for k in metrics if k.startswith("isotropy."))
    print(
        json.dumps(
            {
                "run_id": run_id,
                "reused": reused,
                "probed": where.job.run_name,
                "adapter_run": adapter.run_id if adapter else None,
                "last_layer": {
                    lang: {
                        stat: round(metrics[f"isotropy.{lang}.layer{last}.{stat}"], 4)
                        for stat in ("avg_cos", "isoscore")
                    }
                    for lang in langs
                },
                "browse": tracking.ui_command(),
            },
            indent=2,
        )
    )
    return 0


def register(command) -> None:
    _register_scoring(command)
    _register_study(command)


def _register_scoring(command) -> None:
    """Scoring a model, re-scoring its stored generations, and the benchmarks it is scored on."""
    s = command("evaluate", help="score the base model or an adapter on its evaluation matrix")
    job_args(s)
    s.add_argument(
        "--adapter-run", default=None, help="MLflow run id of the training run (default: the matching finished one)"
    )
    s.add_argument(
        "--adapter",
        default=None,
        help="the study's published adapter: hf:legesher/language-decoded-lora:"
        "tiny-aya-base/condition-2-zh-5k-seed42, or a local folder in that layout (its name gives the condition)",
    )
    s.add_argument("--benchmarks", default=None, help="comma-separated subset of the profile's benchmarks")
    s.add_argument("--data-languages", default=None, help="comma-separated, default en,zh,es,ur")
    s.add_argument("--source", default=None, help="fixtures, hub, or a folder laid out like the original files")
    s.set_defaults(func=cmd_evaluate)

    s = command("extract", help='read {"output": ...} JSON lines on stdin, write {"label": ...} lines')
    s.add_argument("--benchmark", required=True)
    s.add_argument("--extractor", default="refined")
    s.set_defaults(func=cmd_extract)

    s = command(
        "reparse",
        help="re-score an evaluation run's stored generations with another extractor (or every run of an experiment)",
    )
    s.add_argument("run", nargs="?", help="the evaluation run's id (or give --experiment)")
    s.add_argument("--experiment", default=None, help="re-score every finished evaluation run of this experiment")
    s.add_argument("--extractor", required=True)
    s.set_defaults(func=cmd_reparse)

    s = command(
        "benchmarks", help="list benchmarks, show one language's rows and label distribution, or print its prompts"
    )
    s.add_argument("action", choices=["list", "show", "prompts"])
    s.add_argument("name", nargs="?")
    s.add_argument("--lang")
    s.add_argument("--source", default="fixtures", help="fixtures, hub, or a file/folder in the original format")
    s.add_argument("--data-lang", help="prompts: the items' language (defaults to --lang)")
    s.add_argument("--instr", help="prompts: the instruction language")
    s.add_argument("--template", default="template1", help="prompts: template1 or template2")
    s.add_argument(
        "--prompts", default="study", help="prompts: the template set (experiments/prompts/), default the study's"
    )
    s.add_argument(
        "--limit", type=int, default=None, help="at most N items, sliced as evaluation.max_items=N slices them"
    )
    from langdec.evaluation.benchmarks import SLICE_SEED, SLICES

    s.add_argument(
        "--slice",
        choices=SLICES,
        default=SLICES[0],
        help="with --limit: a seeded sample stratified by gold label (evaluation.slice's default), or the first N",
    )
    s.add_argument(
        "--slice-seed", type=int, default=SLICE_SEED, help="with --limit: the sample's seed (evaluation.slice_seed)"
    )
    s.set_defaults(func=cmd_benchmarks)


def _register_study(command) -> None:
    """The study's published results, its analysis files, and the probes of a model's hidden states."""
    s = command(
        "import-results", help="import the study's published result files as evaluation runs (reparse and report them)"
    )
    s.add_argument("src", help="hf:legesher/language-decoded-experiments, or a local folder in its layout")
    s.add_argument("--experiment", default="imported-phase-3", help="the MLflow experiment the imported runs go to")
    s.set_defaults(func=cmd_import_results)

    s = command(
        "study-tables",
        help="write the study's analysis files (refined tables, significance, tables.tex, breakdowns, "
        "figures) from an experiment's evaluation runs, as its own scripts write them",
    )
    s.add_argument(
        "--experiment", required=True, help="e.g. imported-phase-3 (import-results), or phase-3 (langdec's own runs)"
    )
    s.add_argument(
        "--out",
        required=True,
        help="a new folder (refined-tables/, phase-3/, figures-phase3/, langdec/, MANIFEST.json)",
    )
    s.add_argument(
        "--origin",
        choices=["imported", "published", "trained"],
        default=None,
        help="only runs of this origin (needed when one session has runs of several)",
    )
    s.add_argument(
        "--top-n", type=int, default=15, help="rows in fig04's main slopegraph per benchmark (the study's default 15)"
    )
    s.add_argument("--force", action="store_true", help="replace --out if it exists")
    s.set_defaults(func=cmd_study_tables)

    s = command(
        "probe", help="measure a model's hidden states: isotropy per language and layer (base model or adapter)"
    )
    s.add_argument("kind", choices=["isotropy"])
    job_args(s)
    s.add_argument(
        "--adapter-run", default=None, help="MLflow run id of the training run (default: the cell's adapter)"
    )
    s.add_argument("--languages", default=None, help="comma-separated, default en,zh,es,ur")
    s.add_argument(
        "--benchmark", default="sib200", help="whose text is probed (its text, premise, passage or question)"
    )
    s.add_argument("--tokens", type=int, default=2000, help="token representations per language and layer")
    s.add_argument("--source", default=None, help="fixtures, hub, or a folder laid out like the original files")
    s.set_defaults(func=cmd_probe)
