"""The model registry: promotion by policy, the manifest, the published export."""

from __future__ import annotations

import json
from pathlib import Path


def cmd_promote(args) -> int:
    from langdec.core import config
    from langdec.tracking import registry
    from langdec.tracking import runs as tracking

    tracking.configure()
    profile = config.load_profile(args.profile)
    result = registry.promote(profile.registered_model, args.alias, versions=args.version)
    print(
        json.dumps(
            {
                "registered_model": profile.registered_model,
                "alias": args.alias,
                "promoted": result.promoted,
                "refused": result.refused,
                "withdrawn": result.withdrawn,
                "load": f"mlflow.pyfunc.load_model('models:/{profile.registered_model}@<alias>') (prompts in, text out), "
                f"or mlflow.artifacts.download_artifacts('models:/{profile.registered_model}@<alias>') -> the adapter "
                "folder for PeftModel.from_pretrained(base, folder)",
            },
            indent=2,
            ensure_ascii=False,
        )
    )
    return 0


def cmd_manifest(args) -> int:
    import tempfile

    from langdec.core import config
    from langdec.core.atomic import write_text
    from langdec.tracking import registry
    from langdec.tracking import runs as tracking

    tracking.configure()
    profile = config.load_profile(args.profile)
    alias = args.alias or None
    with tempfile.TemporaryDirectory() as tmp:
        # adapter digests need the files; the export path downloads them once
        manifest = registry.export(profile.registered_model, alias, Path(tmp) / "export")
    from langdec.core.paths import work_dir

    out = Path(args.out) if args.out else work_dir() / "manifest"  # never the repository root
    write_text(out / "manifest.json", json.dumps(manifest, indent=2))
    write_text(out / "MANIFEST.md", registry.manifest_markdown(manifest, profile.registered_model, alias))
    print(f"{len(manifest)} adapters -> {out / 'MANIFEST.md'}, {out / 'manifest.json'}")
    return 0


def cmd_export(args) -> int:
    from langdec.core import config
    from langdec.tracking import registry
    from langdec.tracking import runs as tracking

    tracking.configure()
    profile = config.load_profile(args.profile)
    from langdec.analysis.model_card import write_cards

    manifest = registry.export(
        profile.registered_model, args.alias or None, Path(args.dest), replace=args.force, extras=write_cards
    )
    for path in sorted(manifest):
        print(f"{args.dest}/{path}")
    print(
        f"load one with: PeftModel.from_pretrained(base, {args.dest!r}, subfolder={sorted(manifest)[0].rstrip('/')!r})"
    )
    return 0


def cmd_registry(args) -> int:
    from langdec.core import config
    from langdec.tracking import runs as tracking
    from langdec.tracking.upgrade import upgrade

    tracking.configure()
    name = config.load_profile(args.profile).registered_model
    result = upgrade(name, dry_run=args.dry_run)
    verb = "would upgrade" if args.dry_run else "upgraded"
    for number, where in result.upgraded.items():
        print(
            f"version {number}: {verb} (MLmodel {'to be ' if args.dry_run else ''}written beside the adapter, {where})"
        )
    for number, why in result.skipped.items():
        print(f"version {number}: left as it is: {why}")
    print(
        f"{name}: {len(result.upgraded)} {verb}, {len(result.already)} already MLflow Models"
        + (f", {len(result.skipped)} left as they are" if result.skipped else "")
    )
    return 0


def register(command) -> None:
    r = command("registry", help="the registered model's versions as MLflow Models (upgrade)")
    sub = r.add_subparsers(dest="action", required=True)
    s = sub.add_parser(
        "upgrade",
        help="write the MLmodel of every version registered as a bare adapter folder (idempotent; says which)",
    )
    s.add_argument("--profile", default="smoke")
    s.add_argument("--dry-run", action="store_true", help="say which versions would change; change nothing")
    s.set_defaults(func=cmd_registry)

    s = command("promote", help="set an alias (e.g. paper) on the versions that pass registry/<policy>.yaml")
    s.add_argument("--alias", default="paper")
    s.add_argument("--profile", default="smoke")
    s.add_argument("--version", action="append", default=None, help="only these versions (repeatable)")
    s.set_defaults(func=cmd_promote)

    s = command("manifest", help="write MANIFEST.md and manifest.json from the registry (never by hand)")
    s.add_argument("--alias", default="paper", help="only versions carrying this alias tag; '' for every live version")
    s.add_argument("--profile", default="smoke")
    s.add_argument(
        "--out", default=None, help="folder for MANIFEST.md and manifest.json (default: $LANGDEC_HOME/manifest)"
    )
    s.set_defaults(func=cmd_manifest)

    s = command("export", help="write the promoted adapters in the published folder layout")
    s.add_argument("dest")
    s.add_argument("--force", action="store_true", help="replace DEST even if it is not empty")
    s.add_argument("--alias", default="paper")
    s.add_argument("--profile", default="smoke")
    s.set_defaults(func=cmd_export)
