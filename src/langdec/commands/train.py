"""The train stage: one adapter through `pipeline.run` (checks first, then the recipe)."""

from __future__ import annotations

import json

from langdec.commands.common import job_args, where_of


def cmd_train(args) -> int:
    from langdec.orchestration import pipeline
    from langdec.tracking import runs as tracking
    from langdec.training import distributed
    from langdec.training import stage as train

    where = where_of(args)
    options = train.Options(
        quantization=args.quantization,
        backend=args.backend,
        allow_unchecked=args.allow_unchecked,
        resume=not args.no_resume,
        supersede=args.supersede,
    )
    stages = ("train",) if args.no_check else ("check", "train")
    result = pipeline.run(where, stages=stages, training=options, progress=not args.quiet).train
    if not distributed.world().main:
        return 0  # under torchrun / accelerate launch, rank 0 reports
    print(
        json.dumps(
            {
                "run_id": result.run_id,
                "reused": result.reused,
                "registered_version": result.version,
                "adapter": result.adapter_uri,
                "browse": tracking.ui_command(),
            },
            indent=2,
        )
    )
    return 0


def register(command) -> None:
    s = command("train", help="train one adapter (LoRA/QLoRA) and register it")
    job_args(s)
    s.add_argument("--backend", default="auto", choices=["auto", "hf", "unsloth"])
    s.add_argument("--quantization", default=None, choices=["nf4", "none"])
    s.add_argument(
        "--allow-unchecked",
        action="store_true",
        help="train even if data checks failed or are missing (recorded as a tag)",
    )
    s.add_argument(
        "--no-resume",
        action="store_true",
        help="start afresh instead of resuming an interrupted run (resuming is the default)",
    )
    s.add_argument(
        "--no-check",
        action="store_true",
        help="do not run the data checks first (training then needs a passed check run)",
    )
    s.add_argument("--supersede", action="store_true", help="replace an existing registered version for the same cell")
    s.set_defaults(func=cmd_train)
