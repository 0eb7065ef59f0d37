"""What a ladder records, as one comparable JSON: every run's stage, name, run key, data digest,
params and metric names, and every registered version's tags and aliases; no ids, times or paths.

    python benchmarks/ladder_fingerprint.py [--ladder experiments/ladders/smoke.yaml] [--out FILE] [--diff OLD.json]

Run it before and after a refactor (each in a fresh temporary store) and diff: the same jobs must make
the same runs, params, data digests, metrics and registered versions. A run key hashes the code version
too (every commit changes every key, by design), and extractor versions hash their modules' source, so
`--diff` compares what a key is made of (stage, params, data digest) and leaves those out. Prints one
table row per run."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from pathlib import Path

VOLATILE_TAGS = re.compile(
    r"^(mlflow\.|langdec\.code_version$|langdec\.host$|langdec\.pid$|langdec\.seconds$|langdec\.resumed_from$"
    r"|langdec\.heartbeat$)"
)
VOLATILE_PARAMS = re.compile(r"(path|dir|uri|output|adapter)$")


def fingerprint(experiment: str, model: str) -> dict:
    from mlflow.tracking import MlflowClient

    from langdec.tracking import runs as tracking

    client = MlflowClient()
    runs = client.search_runs([tracking.experiment_id(experiment)], max_results=5000)
    names = {r.info.run_id: r.info.run_name for r in runs}
    out = []
    for r in runs:
        tags = {
            k: v for k, v in r.data.tags.items() if not VOLATILE_TAGS.match(k) and not re.search(r"[0-9a-f]{32}", v)
        }
        out.append(
            {
                "name": r.info.run_name,
                "stage": r.data.tags.get("langdec.stage"),
                "status": r.info.status,
                "parent": names.get(r.data.tags.get("mlflow.parentRunId", ""), None),
                "params": {k: v for k, v in r.data.params.items() if not VOLATILE_PARAMS.search(k)},
                "metrics": sorted(r.data.metrics),
                "tags": tags,
            }
        )
    versions = []
    for mv in client.search_model_versions(f"name = '{model}'"):
        versions.append(
            {
                "version": mv.version,
                "run": names.get(mv.run_id),
                "aliases": sorted(mv.aliases),
                "tags": {k: v for k, v in mv.tags.items() if not re.search(r"[0-9a-f]{32}", v)},
            }
        )
    return {
        "runs": sorted(out, key=lambda r: (r["stage"] or "", r["name"])),
        "versions": sorted(versions, key=lambda v: int(v["version"])),
    }


CODE_BOUND_TAGS = re.compile(r"^(langdec\.run_key|run_key|langdec\.extractor\..*|extractor_versions)$")


def comparable(fp: dict) -> dict:
    """The fingerprint without what changes with the commit alone (run keys, extractor source hashes, run ids)."""
    out = json.loads(json.dumps(fp, sort_keys=True))
    for r in out["runs"]:
        r["tags"] = {k: v for k, v in r["tags"].items() if not CODE_BOUND_TAGS.match(k)}
        r["params"].pop("adapter_run", None)
        # MLflow samples system metrics every few seconds: a short run may end before the first sample
        r["metrics"] = [m for m in r["metrics"] if not m.startswith("system/")]
        # a suite's digest hashes its file's absolute path: the same only for checkouts at the same place
        r["params"].pop("suite_digest", None)
    for v in out["versions"]:
        v["tags"] = {k: x for k, x in v["tags"].items() if not CODE_BOUND_TAGS.match(k)}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ladder", default="experiments/ladders/smoke.yaml")
    parser.add_argument("--out", default=None)
    parser.add_argument("--diff", default=None, help="an earlier fingerprint to compare with")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="langdec-fingerprint-") as tmp:
        os.environ.update(
            MLFLOW_TRACKING_URI=f"sqlite:///{tmp}/mlflow.db",
            LANGDEC_HOME=f"{tmp}/home",
            MLFLOW_DISABLE_TELEMETRY="true",
        )
        from langdec.core import config
        from langdec.orchestration import jobs, ladder

        result = ladder.run(args.ladder, progress=False, echo=lambda *_: None)
        spec = jobs.load_ladder(args.ladder)
        profile = config.load_profile(spec.profile, spec.overrides)
        got = fingerprint(result.experiment, profile.registered_model)
    print = sys.stdout.write
    print(f"{'stage':<10} {'run':<28} {'params':>6} {'metrics':>7} {'run key':<16}\n")
    for r in got["runs"]:
        print(
            f"{r['stage'] or '-':<10} {r['name']:<28} {len(r['params']):>6} {len(r['metrics']):>7} {r['tags'].get('langdec.run_key', '-')[:16]:<16}\n"
        )
    print(f"{len(got['runs'])} runs, {len(got['versions'])} registered versions\n")
    if args.out:
        Path(args.out).write_text(json.dumps(got, indent=1, sort_keys=True, ensure_ascii=False))
    if args.diff:
        old, new = comparable(json.loads(Path(args.diff).read_text())), comparable(got)
        same = old == new
        print("identical to " + args.diff + "\n" if same else "DIFFERS from " + args.diff + "\n")
        if not same:
            for kind in ("runs", "versions"):
                for a, b in zip(old[kind], new[kind]):
                    if a != b:
                        print(
                            f"  {kind}: {json.dumps(a, sort_keys=True)[:300]}\n  now:  {json.dumps(b, sort_keys=True)[:300]}\n"
                        )
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
