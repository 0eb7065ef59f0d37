"""`langdec`: one command per stage of the study. Every MLproject entry point calls this.

Errors a user can fix print one line naming the file/row/key and what to do, and
exit with status 2; nothing is half-written.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
from pathlib import Path

from .errors import LangdecError

DEFAULT_LADDER = "experiments/ladders/smoke.yaml"


# --------------------------------------------------------------------------- shared arguments
def _job_args(p: argparse.ArgumentParser, *, lang_required: bool = False) -> None:
    p.add_argument("--condition", default="1", help="baseline, 1, 2, 3, 5 (experiments/conditions.yaml)")
    p.add_argument("--lang", default=None, required=lang_required, help="trained language for conditions 2/3/5 (zh, es, ur, ...)")
    p.add_argument("--tier", default="5k", help="file tier: 5k, 20k, 103k (sizes per profile)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--profile", default="smoke", help="smoke (offline default) or paper (experiments/profiles/)")
    p.add_argument("--phase", default="phase-3", help="phase-3 (paper) or phase-2 (preliminary)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a profile value for this run, e.g. --set training.lr=1e-3 (repeatable)")
    p.add_argument("--arm", default=None, help="name this variant of the cell (default: named from the --set overrides "
                   "that change the adapter, e.g. lr1e-4; none for the cell's main adapter)")
    p.add_argument("--data", dest="data_source", choices=["build", "published"], default=None,
                   help="published: train on the study's own rows (profile corpus.published, e.g. hf:legesher/language-decoded-data)")


def _job(args):
    from . import config, jobs

    overrides = [*args.overrides, *([f"corpus.data={args.data_source}"] if args.data_source else [])]
    profile = config.load_profile(args.profile, overrides)
    cond, job = jobs.resolve(args.condition, args.lang, args.tier, args.seed, profile=profile, arm=args.arm,
                             overrides=overrides, supersede=getattr(args, "supersede", False))
    return profile, cond, job


def _experiment(profile, phase: str) -> str:
    from . import tracking

    tracking.configure()
    return tracking.experiment_name(profile.name, phase)


# --------------------------------------------------------------------------- commands
def cmd_transpile(args) -> int:
    if args.src is None:
        return _transpile_stage(args)
    from .transpiler import batch, packs
    from .transpiler.output import write_outputs
    from .sources import iter_rows

    if not args.lang:
        raise LangdecError("--lang is required (one of " + ", ".join(packs.available()) + ")")
    if args.out:
        from .atomic import check_destination

        check_destination(args.out, replace=args.force)  # before the work, not after it
    direction = "reverse" if args.reverse else "forward"
    rows = iter_rows(args.src, code_column=args.code_column)
    outcomes = batch.run(rows, args.lang, direction=direction, workers=args.workers, progress=not args.quiet)
    count_tokens = None
    if args.out and Path(args.out).suffix in (".parquet", ".jsonl"):
        from . import config
        from .model import load_tokenizer

        tokenizer = load_tokenizer(config.load_profile(args.profile, args.overrides))
        count_tokens = lambda codes: [len(ids) for ids in tokenizer(codes, add_special_tokens=False)["input_ids"]]  # noqa: E731
    summary = write_outputs(outcomes, args.src, args.out, args.lang, direction, count_tokens, replace=args.force)
    print(json.dumps(summary.as_dict() if args.json else _short(summary.as_dict()), indent=2, ensure_ascii=False))
    return 0 if summary.exact or not summary.files else 1


def _short(summary: dict) -> dict:
    out = {k: v for k, v in summary.items() if k != "failures"}
    out["failures"] = summary["failures"][:20]
    return out


def _transpile_stage(args) -> int:
    from . import data

    profile, cond, job = _job(args)
    experiment = _experiment(profile, args.phase)
    cdata, run_id = data.run_stage(profile, cond, job, experiment, progress=not args.quiet)
    print(json.dumps({"data": str(cdata.path), "digest": cdata.digest, "rows": cdata.manifest["rows"],
                      "lost_files": len(cdata.manifest["lost_files"]), "run_id": run_id}, indent=2))
    return 0


def cmd_translate(args) -> int:
    """Condition 5 on any source: an LLM translates identifiers, comments and strings; keywords are transpiled."""
    from . import config, tracking
    from .sources import iter_rows
    from .translation import stage

    # the flags are profile overrides, so they are validated like any `--set translation.KEY=VALUE`
    flags = {"backend": args.backend, "model": args.model, "base_url": args.base_url, "concurrency": args.concurrency,
             "max_retries": args.max_retries, "timeout_seconds": args.timeout}
    profile = config.load_profile(args.profile, [*args.overrides, *(f"translation.{k}={v}" for k, v in flags.items() if v is not None)])
    cfg = profile.translation
    rows = list(iter_rows(args.src, code_column=args.code_column, limit=args.limit))
    out = Path(args.out) if args.out else None
    if out is not None:
        from .atomic import check_destination

        check_destination(out, replace=args.force)
    experiment = _experiment(profile, args.phase)
    import mlflow

    with stage.open_backend(cfg, profile) as backend:
        t = stage.translator(backend, args.lang, cfg)
        params = {**stage.describe(cfg), "lang": t.lang, "source": str(args.src), "files": len(rows), "concurrency": cfg.concurrency,
                  "max_retries": cfg.max_retries, "chunk_chars": cfg.chunk_chars}
        with tracking.stage_run(experiment, "translate", f"translate-{t.lang}", params=params, tags={"lang": t.lang}, reuse=False) as run:
            outcomes = t.run(rows, concurrency=cfg.concurrency, progress=not args.quiet, total=len(rows))
            if out is not None:
                kept, failed = stage.write_outputs(outcomes, out, t.lang, cfg.model, replace=args.force)
            else:
                kept, failed = [], []
                for o in outcomes:
                    (kept if o.ok else failed).append(o)
            report = stage.report_dict(t, failed)
            stage.log_metrics(report)
            mlflow.log_dict(report, "translation_report.json")
    if out is not None:
        from .atomic import write_text

        write_text(out.with_name(out.name + ".report.json"), json.dumps(report, indent=2, ensure_ascii=False))
    shown = report if args.json else {**{k: v for k, v in report.items() if k != "failures"}, "failures": report["failures"][:20]}
    print(json.dumps({**shown, "run_id": run.run_id}, indent=2, ensure_ascii=False))
    return 0 if kept or not rows else 1


def cmd_translate_server(args) -> int:
    import time

    from .translation.localserver import Faults, LocalChatServer

    faults = Faults(rate_limit=args.fault_rate_limit, server_error=args.fault_server_error, slow=args.fault_slow,
                    malformed=args.fault_malformed, malformed_always=args.fault_malformed_always)
    api_key = os.environ.get("LANGDEC_LOCAL_SERVER_KEY")
    with LocalChatServer(host=args.host, port=args.port, api_key=api_key, faults=faults) as server:
        print(f"serving {server.url}/v1/chat/completions (OpenAI) and {server.url}/v2/chat (Cohere); "
              f"{'key from LANGDEC_LOCAL_SERVER_KEY' if api_key else 'no key required'}; Ctrl-C stops", flush=True)
        while True:
            time.sleep(3600)


def cmd_corpus(args) -> int:
    from . import config, corpus

    profile = config.load_profile(args.profile, args.overrides + ([f"corpus.source={args.source}"] if args.source else []))
    tier = corpus.build_tier(profile, args.tier, args.seed, progress=not args.quiet)
    m = tier.manifest
    print(json.dumps({"path": str(tier.path), "source": m["source"], "tier": m["tier"], "size": m["size"], "requested": m["requested"],
                      "seed": m["seed"], "digest": m["digest"], "filters": m["filters"]}, indent=2))
    return 0


def cmd_roundtrip(args) -> int:
    from .sources import iter_rows
    from .transpiler import batch

    outcomes = batch.run(iter_rows(args.src, code_column=args.code_column), args.lang, workers=args.workers, progress=not args.quiet)
    summary, _ = batch.summarise(outcomes, args.lang, "forward")
    data = summary.as_dict()
    print(json.dumps(data if args.json else _short(data), indent=2, ensure_ascii=False))
    return 1 if summary.failed.get("roundtrip") else 0


def cmd_packs(args) -> int:
    from .transpiler import packs

    codes = args.langs or packs.available()
    bad = 0
    for code in codes:
        problems = packs.validate(code)
        bad += bool(problems)
        if args.action == "validate":
            print(f"{code}: " + ("ok" if not problems else f"{len(problems)} problem(s)"))
            for problem in problems:
                print(f"  - {problem}")
        else:
            pack = packs.load(code)
            print(json.dumps({"code": code, "digest": pack.digest, "digits": pack.digits,
                              "words": {c: len(t) for c, t in pack.categories.items()}}, ensure_ascii=False))
    return 1 if bad else 0


def cmd_check(args) -> int:
    from . import checks, data

    profile, cond, job = _job(args)
    experiment = _experiment(profile, args.phase)
    if args.data:
        frame_dir = Path(args.data)
        frame = checks.load_data_frame(frame_dir)
        digest = data.data_digest(frame[frame.split == "train"], frame[frame.split == "validation"])
        cdata = data.ConditionData(frame_dir, digest, {})
        tags = {**data.job_tags(profile, job), "phase": args.phase, "run_name": job.run_name}
        result, run_id = checks.run_stage(cdata, cond, experiment, tags, tier_idx=None)
    else:
        (cdata, _), (result, run_id) = checks.prepare_and_check(profile, cond, job, experiment, args.phase, progress=not args.quiet)
    if result is None:
        status, _, failed = checks.latest_status(experiment, cdata.digest)
        print(json.dumps({"status": status, "reused_run": run_id, "failed": failed}, indent=2))
        return 0 if status == "passed" else 1
    print(checks.markdown_report(result, str(cdata.path)))
    print(f"check run: {run_id}")
    return 0 if result.success else 1


def _where(args):
    from . import pipeline

    profile, cond, job = _job(args)
    return pipeline.Where(profile, cond, job, args.phase, _experiment(profile, args.phase))


def cmd_train(args) -> int:
    from . import pipeline, tracking, train

    where = _where(args)
    options = train.Options(quantization=args.quantization, backend=args.backend, allow_unchecked=args.allow_unchecked,
                            resume=not args.no_resume, supersede=args.supersede)
    stages = ("train",) if args.no_check else ("check", "train")
    result = pipeline.run(where, stages=stages, training=options, progress=not args.quiet).train
    print(json.dumps({"run_id": result.run_id, "reused": result.reused, "registered_version": result.version,
                      "adapter": result.adapter_uri, "browse": tracking.ui_command()}, indent=2))
    return 0


def cmd_evaluate(args) -> int:
    from . import pipeline, tracking

    if args.adapter:
        return _evaluate_published(args)
    where = _where(args)
    adapter = _adapter_of(args, where)
    ev = pipeline.Evaluate(data_languages=args.data_languages.split(",") if args.data_languages else ["en", "zh", "es", "ur"],
                           benchmarks=args.benchmarks.split(",") if args.benchmarks else None, source=args.source)
    result = pipeline.run(where, stages=("evaluate",), evaluate=ev, adapter=adapter, progress=not args.quiet).evaluation
    refined = [v for k, v in result.metrics.items() if k.startswith("gen.refined") and k.endswith(".acc")]
    print(json.dumps({"run_id": result.run_id, "reused": result.reused, "scored": where.job.run_name,
                      "adapter_run": adapter.run_id if adapter else None, "registered_version": adapter.version if adapter else None,
                      "cells": len(refined), "mean_refined_acc": round(sum(refined) / max(1, len(refined)), 4),
                      "browse": tracking.ui_command()}, indent=2))
    return 0


def _adapter_of(args, where):
    """Exactly the adapter the arguments name: --adapter-run, else the version that holds the cell (or its
    arm) in the registry, else the finished training run of the same settings (whichever backend and
    quantisation it ran with). None for the baseline."""
    from . import data, pipeline, registry, tracking, train

    profile, job = where.profile, where.job
    if not job.trains:
        return None
    if args.adapter_run:
        return pipeline.Adapter(args.adapter_run, registry.version_for_run(profile.registered_model, args.adapter_run))
    held = registry.live_version(profile.registered_model, args.phase, job)
    if held is not None:
        return pipeline.Adapter(held.run_id, str(held.version))
    digest = data.prepare(profile, where.cond, job, progress=False).digest
    for key in train.candidate_keys(profile, job, digest):
        found = tracking.latest_run(where.experiment, train.TRAIN_STAGE, {"langdec.run_key": key})
        if found is not None:
            return pipeline.Adapter(found.info.run_id, registry.version_for_run(profile.registered_model, found.info.run_id))
    raise LangdecError(f"no adapter for {job.run_name} in {where.experiment}: no registered version holds it and no finished "
                       "training run has these settings; run `langdec train` with the same arguments first, or pass "
                       "--adapter-run RUN_ID")


def _evaluate_published(args) -> int:
    """The study's own adapter, evaluated like any run and registered with its origin."""
    import mlflow

    from . import config, published, registry, tracking
    from .evaluation import extractors, stage

    adapter = published.resolve_adapter(args.adapter)
    study = adapter.study
    cond = config.condition(study.condition)
    profile = config.load_profile(args.profile, args.overrides)
    job = config.Job(cond.name, None if cond.name == "1" else study.lang, study.tier, int(study.seed or args.seed))
    phase = adapter.phase if args.phase == "phase-3" else args.phase
    experiment = _experiment(profile, phase)
    langs = args.data_languages.split(",") if args.data_languages else ["en", "zh", "es", "ur"]
    benches = args.benchmarks.split(",") if args.benchmarks else None
    result = stage.run(profile, cond, job, phase=phase, experiment=experiment, data_languages=langs, adapter_uri=str(adapter.path),
                       benchmarks_override=benches, source=args.source, progress=not args.quiet, extra_tags=adapter.tags(),
                       adapter_digest=adapter.digest)
    run = mlflow.get_run(result.run_id)
    if "adapter/adapter_config.json" not in {a.path for a in mlflow.MlflowClient().list_artifacts(result.run_id, "adapter")}:
        mlflow.MlflowClient().log_artifacts(result.run_id, str(adapter.path), "adapter")
    evaluated = run.data.tags.get("langdec.evaluated_benchmarks", "").split(",")
    version = registry.register_published(profile.registered_model, result.run_id, adapter, job=job, profile=profile,
                                          benchmarks=[b for b in evaluated if b],
                                          extractor_versions={n: extractors.get(n).version for n in extractors.extractors()},
                                          cells=sum(k.startswith("gen.refined.") and k.endswith(".acc") for k in result.metrics))
    print(json.dumps({"run_id": result.run_id, "reused": result.reused, "adapter": adapter.folder, "origin": "published",
                      "registered_model": profile.registered_model, "registered_version": version,
                      "condition": job.run_name, "browse": tracking.ui_command()}, indent=2))
    return 0


def cmd_extract(args) -> int:
    from .evaluation import extractors

    ex = extractors.get(args.extractor)
    for number, line in enumerate(sys.stdin, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            output = record["output"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise LangdecError(f"stdin line {number}: expected a JSON object with an \"output\" string") from None
        print(json.dumps({"label": ex(args.benchmark, str(output))}, ensure_ascii=False), flush=True)
    return 0


def cmd_reparse(args) -> int:
    from . import tracking
    from .evaluation import stage

    tracking.configure()
    metrics = stage.reparse(args.run, args.extractor)
    accs = [v for k, v in metrics.items() if k.endswith(".acc")]
    print(json.dumps({"run_id": args.run, "extractor": args.extractor, "cells": len(accs),
                      "mean_acc": round(sum(accs) / max(len(accs), 1), 4)}, indent=2))
    return 0


def cmd_benchmarks(args) -> int:
    from .evaluation import benchmarks

    if args.action == "list":
        for name in benchmarks.benchmark_names():
            b = benchmarks.get(name)
            print(f"{name}: {b.task}, languages {', '.join(b.languages)}, hub {b.hub.id}")
        return 0
    if args.action == "prompts":
        return _print_prompts(args)
    if not args.name or not args.lang:
        raise LangdecError("usage: langdec benchmarks show BENCH --lang L [--source PATH]")
    items = benchmarks.load(args.name, args.lang, source=args.source)
    print(json.dumps({"benchmark": args.name, "lang": args.lang, "source": args.source, "rows": len(items),
                      "labels": benchmarks.label_distribution(items)}, indent=2, ensure_ascii=False))
    return 0


def _print_prompts(args) -> int:
    """One JSON line per item: the exact prompt the evaluation sends, so anyone can diff it."""
    from .evaluation import benchmarks, prompts

    data = args.data_lang or args.lang
    if not args.name or not data or not args.instr:
        raise LangdecError("usage: langdec benchmarks prompts BENCH --data-lang D --instr I [--template T] "
                           "[--prompts SET] [--source PATH] [--limit N]")
    _, supplied_by = prompts.resolve(args.prompts, args.template, args.name, args.instr)
    for item in benchmarks.load(args.name, data, source=args.source, limit=args.limit):
        print(json.dumps({"id": item.id, "benchmark": args.name, "data": data, "instr": args.instr, "template": args.template,
                          "prompt_set": supplied_by, "prompt": prompts.render(args.template, args.name, args.instr, item, args.prompts),
                          "gold": item.label}, ensure_ascii=False))
    return 0


def cmd_promote(args) -> int:
    from . import config, registry, tracking

    tracking.configure()
    profile = config.load_profile(args.profile)
    result = registry.promote(profile.registered_model, args.alias, versions=args.version)
    print(json.dumps({"registered_model": profile.registered_model, "alias": args.alias,
                      "promoted": result.promoted, "refused": result.refused, "withdrawn": result.withdrawn,
                      "load": f"mlflow.artifacts.download_artifacts('models:/{profile.registered_model}@<alias>') -> the adapter "
                              "folder for PeftModel.from_pretrained(base, folder)"}, indent=2, ensure_ascii=False))
    return 0


def cmd_manifest(args) -> int:
    import tempfile

    from . import config, registry, tracking
    from .atomic import write_text

    tracking.configure()
    profile = config.load_profile(args.profile)
    alias = args.alias or None
    with tempfile.TemporaryDirectory() as tmp:
        # adapter digests need the files; the export path downloads them once
        manifest = registry.export(profile.registered_model, alias, Path(tmp) / "export")
    from .paths import work_dir

    out = Path(args.out) if args.out else work_dir() / "manifest"  # never the repository root
    write_text(out / "manifest.json", json.dumps(manifest, indent=2))
    write_text(out / "MANIFEST.md", registry.manifest_markdown(manifest, profile.registered_model, alias))
    print(f"{len(manifest)} adapters -> {out / 'MANIFEST.md'}, {out / 'manifest.json'}")
    return 0


def cmd_export(args) -> int:
    from . import config, registry, tracking

    tracking.configure()
    profile = config.load_profile(args.profile)
    manifest = registry.export(profile.registered_model, args.alias or None, Path(args.dest), replace=args.force)
    for path in sorted(manifest):
        print(f"{args.dest}/{path}")
    print(f"load one with: PeftModel.from_pretrained(base, {args.dest!r}, subfolder={sorted(manifest)[0].rstrip('/')!r})")
    return 0


def cmd_ladder(args) -> int:
    from . import ladder, tracking, workqueue

    if args.file == "status":
        if not (args.storage and args.study):
            raise LangdecError("usage: langdec ladder status --storage URL --study NAME")
        print(json.dumps(workqueue.status(args.storage, args.study), indent=2))
        return 0
    if args.storage:
        name, added, present = workqueue.enqueue(args.file, args.storage)
        print(f"study {name}: {added} items enqueued, {present} already there")
        print(f"run on each machine:  langdec worker --storage '{workqueue._redact(args.storage)}' --study {name}")
        print(f"progress:             langdec ladder status --storage '{workqueue._redact(args.storage)}' --study {name}")
        return 0

    result = ladder.run(args.file, supersede=True if args.supersede else None, progress=not args.quiet)
    print()
    print(result.table)
    print()
    print(f"report: {result.report_path}")
    print(f"{len(result.outcomes) - len(result.failed)} of {len(result.outcomes)} jobs ok in {result.seconds:.0f}s")
    for failed in result.failed:
        print(f"FAILED {failed.job.run_name}: {failed.detail.splitlines()[0]}")
    print(f"browse the runs: {tracking.ui_command()}")
    return 1 if result.failed else 0


def cmd_worker(args) -> int:
    from . import tracking, workqueue

    result = workqueue.work(args.storage, args.study, heartbeat=args.heartbeat, grace=args.grace, max_items=args.max_items,
                            progress=not args.quiet)
    print(json.dumps({"done": result.done, "failed": result.failed, "browse": tracking.ui_command()}, indent=2))
    return 1 if result.failed else 0


def cmd_sweep(args) -> int:
    from . import sweep, tracking

    study, run_id = sweep.run(args.file, storage=args.storage, progress=not args.quiet)
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    print(json.dumps({"study": study.study_name, "trials": len(study.trials), "complete": len(complete),
                      "pruned": sum(t.state.name == "PRUNED" for t in study.trials),
                      "best": {"eval_loss": study.best_value, "params": study.best_params} if complete else None,
                      "sweep_run": run_id, "browse": tracking.ui_command()}, indent=2))
    return 0


def cmd_tracking_server(args) -> int:
    """Start an MLflow tracking server for several machines: PostgreSQL backend, shared artifacts."""
    import subprocess

    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", args.backend_store_uri,
               "--artifacts-destination", args.artifacts, "--serve-artifacts", "--host", args.host, "--port", str(args.port),
               "--workers", str(args.workers)]
    print(f"MLflow server on http://{args.host}:{args.port}; on every worker: export MLFLOW_TRACKING_URI=http://{args.host}:{args.port}",
          flush=True)
    return subprocess.call(command)


def cmd_import_results(args) -> int:
    from . import published, tracking

    tracking.configure()
    imported, skipped = published.import_results(args.src, args.experiment)
    for line in skipped:
        print(f"skipped {line}", file=sys.stderr)
    print(json.dumps({"experiment": args.experiment, "imported": sum(not i.reused for i in imported),
                      "already_imported": sum(i.reused for i in imported), "skipped": len(skipped),
                      "files": [vars(i) for i in imported],
                      "next": f"langdec report --experiment {args.experiment}  (and langdec reparse RUN_ID --extractor NAME)"},
                     indent=2))
    return 0


def cmd_report(args) -> int:
    from . import config, report, tracking
    from .paths import work_dir

    tracking.configure()
    profile = config.load_profile(args.profile)
    experiment = args.experiment or tracking.experiment_name(profile.name, args.phase)
    out = Path(args.out) if args.out else work_dir() / "reports" / experiment
    rep, path = report.run_stage(experiment, out, extractor=args.extractor, tier=args.tier, by_tier=args.by_tier,
                                 flip_threshold=args.flip_threshold)
    print(report.print_tables(rep))
    print(f"\nreport: {path}\nbrowse the runs: {tracking.ui_command()}")
    return 0


# --------------------------------------------------------------------------- parser
def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="langdec", description="The Language Decoded study, stage by stage.")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a subcommand without --quiet must not reset `langdec --quiet CMD`
    common.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress bars")
    sub = p.add_subparsers(dest="command", required=True)

    def command(name: str, **kwargs) -> argparse.ArgumentParser:
        return sub.add_parser(name, parents=[common], **kwargs)  # every command takes --quiet

    s = command("transpile", help="translate Python's reserved vocabulary (a file/folder/table), or build a condition's data")
    s.add_argument("src", nargs="?", help="a .py file, a folder, a .parquet/.jsonl with a code column, or hf:ID[:config]; omit to build the stage data")
    s.add_argument("--out", help="output: a folder (mirrors the input tree), or .parquet / .jsonl rows")
    s.add_argument("--force", action="store_true", help="replace --out even if it exists and is not empty")
    s.add_argument("--reverse", action="store_true", help="translate back to English")
    s.add_argument("--workers", type=int, default=None)
    s.add_argument("--code-column", default=None)
    s.add_argument("--json", action="store_true", help="print the full summary, every failure included")
    _job_args(s)
    s.set_defaults(func=cmd_transpile)

    s = command("translate", help="condition 5: an LLM translates identifiers, comments and strings (cohere, openai, hf)")
    s.add_argument("src", help="a .py file, a folder, a .parquet/.jsonl with a code column, or hf:ID[:config]")
    s.add_argument("--lang", required=True, help="target language (zh, es, ur, ...)")
    s.add_argument("--out", help="output: a folder (mirrors the input tree), a .py file, or .parquet / .jsonl rows")
    s.add_argument("--force", action="store_true", help="replace --out even if it exists and is not empty")
    s.add_argument("--backend", default=None, help="cohere | openai | hf (default: the profile's translation.backend)")
    s.add_argument("--model", default=None, help="model name (e.g. c4ai-aya-expanse-32b), or a local path for hf")
    s.add_argument("--base-url", default=None, help="an OpenAI-compatible server (vLLM ...), or 'local' for the bundled stand-in")
    s.add_argument("--concurrency", type=int, default=None, help="requests in flight")
    s.add_argument("--max-retries", type=int, default=None, help="retries per request on 429/5xx/timeouts")
    s.add_argument("--timeout", type=float, default=None, help="seconds per request")
    s.add_argument("--code-column", default=None)
    s.add_argument("--limit", type=int, default=None, help="translate only the first N files")
    s.add_argument("--json", action="store_true", help="print every failure")
    s.add_argument("--profile", default="smoke")
    s.add_argument("--phase", default="phase-3")
    s.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    s.set_defaults(func=cmd_translate)

    s = command("translate-server", help="serve the local OpenAI/Cohere-compatible stand-in (offline runs, fault drills)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8011)
    for fault in ("rate-limit", "server-error", "slow", "malformed", "malformed-always"):
        s.add_argument(f"--fault-{fault}", type=float, default=0.0, metavar="SHARE", help=f"share of requests that get {fault.replace('-', ' ')}")
    s.set_defaults(func=cmd_translate_server)

    s = command("corpus", help="build an English source tier through the study's filters (seeded sample + manifest)")
    s.add_argument("--source", default=None, help="override the profile's corpus source (folder, .parquet/.jsonl, hf:ID, stdlib)")
    _job_args(s)
    s.set_defaults(func=cmd_corpus)

    s = command("roundtrip", help="prove reverse(forward(file)) == file for every file; exit 1 otherwise")
    s.add_argument("src")
    s.add_argument("--lang", required=True)
    s.add_argument("--workers", type=int, default=None)
    s.add_argument("--code-column", default=None)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_roundtrip)

    s = command("packs", help="list or validate the language packs in languages/")
    s.add_argument("action", choices=["list", "validate"])
    s.add_argument("langs", nargs="*")
    s.set_defaults(func=cmd_packs)

    s = command("check", help="run the great_expectations data checks on a condition's data")
    s.add_argument("data", nargs="?", help="a folder with train.parquet and validation.parquet; omit for the stage's own data")
    _job_args(s)
    s.set_defaults(func=cmd_check)

    s = command("train", help="train one adapter (LoRA/QLoRA) and register it")
    _job_args(s)
    s.add_argument("--backend", default="auto", choices=["auto", "hf", "unsloth"])
    s.add_argument("--quantization", default=None, choices=["nf4", "none"])
    s.add_argument("--allow-unchecked", action="store_true", help="train even if data checks failed or are missing (recorded as a tag)")
    s.add_argument("--no-resume", action="store_true", help="start afresh instead of resuming an interrupted run (resuming is the default)")
    s.add_argument("--no-check", action="store_true", help="do not run the data checks first (training then needs a passed check run)")
    s.add_argument("--supersede", action="store_true", help="replace an existing registered version for the same cell")
    s.set_defaults(func=cmd_train)

    s = command("evaluate", help="score the base model or an adapter on its evaluation matrix")
    _job_args(s)
    s.add_argument("--adapter-run", default=None, help="MLflow run id of the training run (default: the matching finished one)")
    s.add_argument("--adapter", default=None, help="the study's published adapter: hf:legesher/language-decoded-lora:"
                   "tiny-aya-base/condition-2-zh-5k-seed42, or a local folder in that layout (its name gives the condition)")
    s.add_argument("--benchmarks", default=None, help="comma-separated subset of the profile's benchmarks")
    s.add_argument("--data-languages", default=None, help="comma-separated, default en,zh,es,ur")
    s.add_argument("--source", default=None, help="fixtures, hub, or a folder laid out like the original files")
    s.set_defaults(func=cmd_evaluate)

    s = command("extract", help='read {"output": ...} JSON lines on stdin, write {"label": ...} lines')
    s.add_argument("--benchmark", required=True)
    s.add_argument("--extractor", default="refined")
    s.set_defaults(func=cmd_extract)

    s = command("reparse", help="re-score an evaluation run's stored generations with another extractor")
    s.add_argument("run")
    s.add_argument("--extractor", required=True)
    s.set_defaults(func=cmd_reparse)

    s = command("benchmarks", help="list benchmarks, show one language's rows and label distribution, or print its prompts")
    s.add_argument("action", choices=["list", "show", "prompts"])
    s.add_argument("name", nargs="?")
    s.add_argument("--lang")
    s.add_argument("--source", default="fixtures", help="fixtures, hub, or a file/folder in the original format")
    s.add_argument("--data-lang", help="prompts: the items' language (defaults to --lang)")
    s.add_argument("--instr", help="prompts: the instruction language")
    s.add_argument("--template", default="template1", help="prompts: template1 or template2")
    s.add_argument("--prompts", default="study", help="prompts: the template set (experiments/prompts/), default the study's")
    s.add_argument("--limit", type=int, default=None, help="prompts: at most N items")
    s.set_defaults(func=cmd_benchmarks)

    s = command("promote", help="set an alias (e.g. paper) on the versions that pass registry/<policy>.yaml")
    s.add_argument("--alias", default="paper")
    s.add_argument("--profile", default="smoke")
    s.add_argument("--version", action="append", default=None, help="only these versions (repeatable)")
    s.set_defaults(func=cmd_promote)

    s = command("manifest", help="write MANIFEST.md and manifest.json from the registry (never by hand)")
    s.add_argument("--alias", default="paper", help="only versions carrying this alias tag; '' for every live version")
    s.add_argument("--profile", default="smoke")
    s.add_argument("--out", default=None, help="folder for MANIFEST.md and manifest.json (default: $LANGDEC_HOME/manifest)")
    s.set_defaults(func=cmd_manifest)

    s = command("export", help="write the promoted adapters in the published folder layout")
    s.add_argument("dest")
    s.add_argument("--force", action="store_true", help="replace DEST even if it is not empty")
    s.add_argument("--alias", default="paper")
    s.add_argument("--profile", default="smoke")
    s.set_defaults(func=cmd_export)

    s = command("ladder", help="run a whole ladder: transpile, check, train, evaluate, report")
    s.add_argument("file", nargs="?", default=DEFAULT_LADDER, help="a ladder YAML, or 'status' with --storage and --study")
    s.add_argument("--supersede", action="store_true", help="re-registered cells replace their old versions")
    s.add_argument("--storage", default=None, help="postgresql://... : enqueue the items for `langdec worker` instead of running them")
    s.add_argument("--study", default=None, help="with 'status': the queue's study name")
    s.set_defaults(func=cmd_ladder)

    s = command("worker", help="pull ladder items from the PostgreSQL queue and run them until none remain")
    s.add_argument("--storage", required=True)
    s.add_argument("--study", required=True)
    s.add_argument("--heartbeat", type=int, default=30, help="seconds between heartbeats")
    s.add_argument("--grace", type=int, default=120, help="seconds without heartbeat before an item is retried elsewhere")
    s.add_argument("--max-items", type=int, default=None)
    s.set_defaults(func=cmd_worker)

    s = command("sweep", help="Optuna search over training settings (nested MLflow runs, pruning on validation loss)")
    s.add_argument("file", help="experiments/sweeps/NAME.yaml")
    s.add_argument("--storage", default=None, help="Optuna storage URL to share or resume the search (default: in memory)")
    s.set_defaults(func=cmd_sweep)

    s = command("tracking-server", help="start an MLflow tracking server (PostgreSQL backend, shared artifact store)")
    s.add_argument("--backend-store-uri", required=True, help="postgresql://user:pass@host/db")
    s.add_argument("--artifacts", required=True, help="shared path or s3://bucket/prefix")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=5000)
    s.add_argument("--workers", type=int, default=2)
    s.set_defaults(func=cmd_tracking_server)

    s = command("import-results", help="import the study's published result files as evaluation runs (reparse and report them)")
    s.add_argument("src", help="hf:legesher/language-decoded-experiments, or a local folder in its layout")
    s.add_argument("--experiment", default="imported-phase-3", help="the MLflow experiment the imported runs go to")
    s.set_defaults(func=cmd_import_results)

    s = command("report", help="compare every condition with the baseline; writes Markdown, JSON and a heat-map")
    s.add_argument("--profile", default="smoke")
    s.add_argument("--phase", default="phase-3")
    s.add_argument("--experiment", default=None, help="report this experiment instead (e.g. imported-phase-3)")
    s.add_argument("--tier", default=None, help="only this tier (a report never pools tiers)")
    s.add_argument("--by-tier", action="store_true", help="report each tier of a condition as its own row")
    s.add_argument("--flip-threshold", type=float, default=0.01,
                   help="a conclusion flips when |delta| exceeds this under both extractors with opposite signs (the study: 0.01)")
    s.add_argument("--extractor", default="refined")
    s.add_argument("--out", default=None)
    s.set_defaults(func=cmd_report)
    return p


@contextlib.contextmanager
def _mlflow_project_parent(argv: list[str]):
    """Under `mlflow run`, MLFLOW_RUN_ID names the run MLflow made for the entry point, in whatever experiment
    `mlflow run` was given (Default unless --experiment-name). langdec's runs go to their phase experiment and
    are never parented across experiments; the entry point's run is named for what it launched and says where
    the runs went, instead of staying an empty, randomly named run."""
    run_id = os.environ.pop("MLFLOW_RUN_ID", None)
    if not run_id:
        yield
        return
    from mlflow.tracking import MlflowClient

    from . import tracking

    tracking.configure()
    client = MlflowClient()
    # a URL argument can carry credentials (--base-url, --storage): never into MLflow
    shown = [re.sub(r"(\w+://)[^/@\s]*@", r"\1", a).split("?", 1)[0] if "://" in a else a for a in argv if a != "--quiet"]
    client.set_tag(run_id, "mlflow.runName", "mlflow run: langdec " + " ".join(shown[:4])[:80])
    client.set_tag(run_id, "mlflow.note.content", "This run only records that `mlflow run` launched `langdec "
                   + " ".join(shown) + "`. langdec's own runs are in the phase experiment (phase-3, phase-3-smoke, ...), "
                   "under their ladder run; filter there by tags.`langdec.stage`.")
    client.set_tag(run_id, "langdec.stage", "mlflow-run")
    yield


def _quiet_libraries() -> None:
    """Library progress bars (dataset maps, artifact downloads, weight loading) drown the
    stage output; langdec shows its own progress per job instead."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    import logging

    logging.getLogger("mlflow.system_metrics").setLevel(logging.WARNING)
    # bitsandbytes looks for an optional CPU kernel package on import and warns on every command
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)


def main(argv: list[str] | None = None) -> int:
    _quiet_libraries()
    args = parser().parse_args(argv)
    try:
        with _mlflow_project_parent(list(sys.argv[1:] if argv is None else argv)):
            return args.func(args)
    except LangdecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; re-run the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
