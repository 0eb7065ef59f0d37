"""Wall time of one 6-item smoke ladder run three ways, then submitted again (every item found in MLflow):
in one process (`langdec ladder FILE`), as a SLURM job array on a local two-node cluster (`--slurm`), and as
Ray tasks on a local two-node cluster (`--ray`). All three use one `mlflow server` on PostgreSQL.

    python benchmarks/ladder_schedulers.py [--only local,slurm,ray]

On a 2-core machine the two "nodes" share the same two cores, so the clusters cannot be faster than one
process; the table shows what a scheduler costs per item (submission, process start, MLflow lookups) and what
a resubmission of a finished ladder costs. SLURM needs root and Debian's slurm-wlm and munge.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from langdec.core import config
from langdec.data import corpus
from langdec.models import loading as model
from langdec.orchestration import localcluster


def ladder(folder: Path, name: str) -> Path:
    return localcluster.write_ladder(
        folder, name, localcluster.SIX_ITEMS, ["evaluation.benchmarks=[xnli]", "evaluation.max_items=4"]
    )


def timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[3:6])} failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", default="local,slurm,ray")
    args = parser.parse_args()
    chosen = args.only.split(",")
    root = Path(tempfile.mkdtemp(prefix="langdec-schedulers-"))
    profile = config.load_profile("smoke")
    model.build_smoke_model(profile.model)
    corpus.build_tier(profile, "5k", 42, progress=False)
    cli = [sys.executable, "-m", "langdec.cli", "--quiet", "ladder"]
    rows = []
    with localcluster.local_cluster(root / "stack") as stack:
        env = localcluster.client_env(stack.tracking, LANGDEC_CHECKPOINTS=str(root / "checkpoints"))
        if "local" in chosen:
            path = ladder(root, "bench-local")
            rows.append(("one process", timed([*cli, str(path)], env), timed([*cli, str(path)], env)))
        if "slurm" in chosen:
            why = localcluster.slurm_missing()
            if why:
                print(f"slurm skipped: {why}")
            else:
                with localcluster.slurm_cluster(root / "slurm") as slurm:
                    path = ladder(root, "bench-slurm")
                    cmd = [*cli, str(path), "--slurm", "--time", "30", "--wait", "--poll", "1"]
                    senv = {**env, **slurm.env}
                    rows.append(("SLURM array, 2 nodes x 2 GPUs", timed(cmd, senv), timed(cmd, senv)))
        if "ray" in chosen:
            with localcluster.ray_cluster(nodes=2, gpus_per_node=2) as ray:
                path = ladder(root, "bench-ray")
                cmd = [*cli, str(path), "--ray", ray.address]
                rows.append(("Ray tasks, 2 nodes x 2 GPUs", timed(cmd, env), timed(cmd, env)))
    print("\n| how | 6 items, first run (s) | submitted again, all reused (s) |")
    print("|---|---:|---:|")
    for how, first, again in rows:
        print(f"| {how} | {first:.0f} | {again:.0f} |")


if __name__ == "__main__":
    main()
