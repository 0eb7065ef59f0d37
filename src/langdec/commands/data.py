"""The data stages: build or translate a condition's data, check it, and the tools around them."""

from __future__ import annotations

import json
import os
from pathlib import Path

from langdec.commands.common import experiment_of, job_args, job_of
from langdec.core.errors import LangdecError


def cmd_transpile(args) -> int:
    if args.src is None:
        return _transpile_stage(args)
    from langdec.data.sources import iter_rows
    from langdec.data.transpiler import batch, packs
    from langdec.data.transpiler.output import write_outputs

    if not args.lang:
        raise LangdecError("--lang is required (one of " + ", ".join(packs.available()) + ")")
    if args.out:
        from langdec.core.atomic import check_output

        check_output(args.out, replace=args.force)  # before the work, not after it
    direction = "reverse" if args.reverse else "forward"
    rows = iter_rows(args.src, code_column=args.code_column)
    outcomes = batch.run(rows, args.lang, direction=direction, workers=args.workers, progress=not args.quiet)
    count_tokens = None
    if args.out and Path(args.out).suffix in (".parquet", ".jsonl"):
        from langdec.core import config
        from langdec.models.loading import load_tokenizer

        tokenizer = load_tokenizer(config.load_profile(args.profile, args.overrides).model)
        count_tokens = lambda codes: [len(ids) for ids in tokenizer(codes, add_special_tokens=False)["input_ids"]]  # noqa: E731
    summary = write_outputs(outcomes, args.src, args.out, args.lang, direction, count_tokens, replace=args.force)
    print(json.dumps(summary.as_dict() if args.json else _short(summary.as_dict()), indent=2, ensure_ascii=False))
    return 0 if summary.exact or not summary.files else 1


def _short(summary: dict) -> dict:
    out = {k: v for k, v in summary.items() if k != "failures"}
    out["failures"] = summary["failures"][:20]
    return out


def _transpile_stage(args) -> int:
    from langdec.data import stage as data

    profile, cond, job = job_of(args)
    experiment = experiment_of(profile, args.phase)
    cdata, run_id = data.run_stage(profile, cond, job, experiment, progress=not args.quiet)
    print(
        json.dumps(
            {
                "data": str(cdata.path),
                "digest": cdata.digest,
                "rows": cdata.manifest["rows"],
                "lost_files": len(cdata.manifest["lost_files"]),
                "run_id": run_id,
            },
            indent=2,
        )
    )
    return 0


def cmd_translate(args) -> int:
    """Condition 5 on any source: an LLM translates identifiers, comments and strings; keywords are transpiled."""
    from langdec.core import config
    from langdec.data.translation import stage

    # the flags are profile overrides, so they are validated like any `--set translation.KEY=VALUE`
    flags = {
        "backend": args.backend,
        "model": args.model,
        "base_url": args.base_url,
        "concurrency": args.concurrency,
        "max_retries": args.max_retries,
        "timeout_seconds": args.timeout,
    }
    profile = config.load_profile(
        args.profile, [*args.overrides, *(f"translation.{k}={v}" for k, v in flags.items() if v is not None)]
    )
    result = stage.translate_source(
        profile,
        args.src,
        args.lang,
        Path(args.out) if args.out else None,
        experiment_of(profile, args.phase),
        replace=args.force,
        code_column=args.code_column,
        limit=args.limit,
        progress=not args.quiet,
    )
    report = result.report
    shown = (
        report
        if args.json
        else {**{k: v for k, v in report.items() if k != "failures"}, "failures": report["failures"][:20]}
    )
    print(json.dumps({**shown, "run_id": result.run_id}, indent=2, ensure_ascii=False))
    return 0 if result.kept or not result.files else 1


def cmd_translate_server(args) -> int:
    import time

    from langdec.data.translation.localserver import Faults, LocalChatServer

    faults = Faults(
        rate_limit=args.fault_rate_limit,
        server_error=args.fault_server_error,
        slow=args.fault_slow,
        malformed=args.fault_malformed,
        malformed_always=args.fault_malformed_always,
    )
    api_key = os.environ.get("LANGDEC_LOCAL_SERVER_KEY")
    with LocalChatServer(host=args.host, port=args.port, api_key=api_key, faults=faults) as server:
        print(
            f"serving {server.url}/v1/chat/completions (OpenAI) and {server.url}/v2/chat (Cohere); "
            f"{'key from LANGDEC_LOCAL_SERVER_KEY' if api_key else 'no key required'}; Ctrl-C stops",
            flush=True,
        )
        while True:
            time.sleep(3600)


def cmd_corpus(args) -> int:
    from langdec.core import config
    from langdec.data import corpus

    profile = config.load_profile(
        args.profile, args.overrides + ([f"corpus.source={args.source}"] if args.source else [])
    )
    tier = corpus.build_tier(profile, args.tier, args.seed, progress=not args.quiet)
    m = tier.manifest
    print(
        json.dumps(
            {
                "path": str(tier.path),
                "source": m["source"],
                "tier": m["tier"],
                "size": m["size"],
                "requested": m["requested"],
                "seed": m["seed"],
                "digest": m["digest"],
                "filters": m["filters"],
            },
            indent=2,
        )
    )
    return 0


def cmd_roundtrip(args) -> int:
    from langdec.data.sources import iter_rows
    from langdec.data.transpiler import batch

    outcomes = batch.run(
        iter_rows(args.src, code_column=args.code_column), args.lang, workers=args.workers, progress=not args.quiet
    )
    summary, _ = batch.summarise(outcomes, args.lang, "forward")
    data = summary.as_dict()
    print(json.dumps(data if args.json else _short(data), indent=2, ensure_ascii=False))
    return 1 if summary.failed.get("roundtrip") else 0


def cmd_packs(args) -> int:
    from langdec.data.transpiler import packs

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
            print(
                json.dumps(
                    {
                        "code": code,
                        "digest": pack.digest,
                        "digits": pack.digits,
                        "words": {c: len(t) for c, t in pack.categories.items()},
                    },
                    ensure_ascii=False,
                )
            )
    return 1 if bad else 0


def cmd_check(args) -> int:
    from langdec.data import checks

    profile, cond, job = job_of(args)
    experiment = experiment_of(profile, args.phase)
    if args.data:
        cdata, (result, run_id) = checks.check_folder(
            Path(args.data), profile.only(checks.CHECK_STAGE, checks.SECTIONS), cond, job, experiment, args.phase
        )
    else:
        (cdata, _), (result, run_id) = checks.prepare_and_check(
            profile.only(checks.CHECK_STAGE, checks.SECTIONS),
            cond,
            job,
            experiment,
            args.phase,
            progress=not args.quiet,
        )
    if result is None:
        status, _, failed = checks.latest_status(experiment, cdata.digest)
        print(json.dumps({"status": status, "reused_run": run_id, "failed": failed}, indent=2))
        return 0 if status == "passed" else 1
    print(checks.markdown_report(result, str(cdata.path)))
    print(f"check run: {run_id}")
    return 0 if result.success else 1


def register(command) -> None:
    _register_transpile(command)
    _register_translate(command)
    _register_translate_server(command)
    _register_corpus(command)
    _register_roundtrip(command)
    _register_packs(command)
    _register_check(command)


def _register_transpile(command) -> None:
    s = command(
        "transpile", help="translate Python's reserved vocabulary (a file/folder/table), or build a condition's data"
    )
    s.add_argument(
        "src",
        nargs="?",
        help="a .py file, a folder, a .parquet/.jsonl with a code column, or hf:ID[:config]; omit to build the stage data",
    )
    s.add_argument("--out", help="output: a folder (mirrors the input tree), or .parquet / .jsonl rows")
    s.add_argument("--force", action="store_true", help="replace --out even if it exists and is not empty")
    s.add_argument("--reverse", action="store_true", help="translate back to English")
    s.add_argument("--workers", type=int, default=None)
    s.add_argument("--code-column", default=None)
    s.add_argument("--json", action="store_true", help="print the full summary, every failure included")
    job_args(s)
    s.set_defaults(func=cmd_transpile)


def _register_translate(command) -> None:
    s = command(
        "translate", help="condition 5: an LLM translates identifiers, comments and strings (cohere, openai, hf)"
    )
    s.add_argument("src", help="a .py file, a folder, a .parquet/.jsonl with a code column, or hf:ID[:config]")
    s.add_argument("--lang", required=True, help="target language (zh, es, ur, ...)")
    s.add_argument("--out", help="output: a folder (mirrors the input tree), a .py file, or .parquet / .jsonl rows")
    s.add_argument("--force", action="store_true", help="replace --out even if it exists and is not empty")
    s.add_argument("--backend", default=None, help="cohere | openai | hf (default: the profile's translation.backend)")
    s.add_argument("--model", default=None, help="model name (e.g. c4ai-aya-expanse-32b), or a local path for hf")
    s.add_argument(
        "--base-url", default=None, help="an OpenAI-compatible server (vLLM ...), or 'local' for the bundled stand-in"
    )
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


def _register_translate_server(command) -> None:
    s = command(
        "translate-server", help="serve the local OpenAI/Cohere-compatible stand-in (offline runs, fault drills)"
    )
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8011)
    for fault in ("rate-limit", "server-error", "slow", "malformed", "malformed-always"):
        s.add_argument(
            f"--fault-{fault}",
            type=float,
            default=0.0,
            metavar="SHARE",
            help=f"share of requests that get {fault.replace('-', ' ')}",
        )
    s.set_defaults(func=cmd_translate_server)


def _register_corpus(command) -> None:
    s = command("corpus", help="build an English source tier through the study's filters (seeded sample + manifest)")
    s.add_argument(
        "--source", default=None, help="override the profile's corpus source (folder, .parquet/.jsonl, hf:ID, stdlib)"
    )
    job_args(s)
    s.set_defaults(func=cmd_corpus)


def _register_roundtrip(command) -> None:
    s = command("roundtrip", help="prove reverse(forward(file)) == file for every file; exit 1 otherwise")
    s.add_argument("src")
    s.add_argument("--lang", required=True)
    s.add_argument("--workers", type=int, default=None)
    s.add_argument("--code-column", default=None)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_roundtrip)


def _register_packs(command) -> None:
    s = command("packs", help="list or validate the language packs in languages/")
    s.add_argument("action", choices=["list", "validate"])
    s.add_argument("langs", nargs="*")
    s.set_defaults(func=cmd_packs)


def _register_check(command) -> None:
    s = command("check", help="run the great_expectations data checks on a condition's data")
    s.add_argument(
        "data", nargs="?", help="a folder with train.parquet and validation.parquet; omit for the stage's own data"
    )
    job_args(s)
    s.set_defaults(func=cmd_check)
