"""Wall time of one smoke ladder with 1 worker vs N workers on a local cluster
(PostgreSQL queue + MLflow server on loopback).

    python benchmarks/workers_scaling.py --workers 1,3

Each row uses its own phase, so no stage run is reused between rows. On a 2-core
machine three workers share two cores; the point is that the queue hands every item
to exactly one worker, and how the wall time moves.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

from langdec import corpus, config, localcluster, workqueue

RUNS = "  - condition: baseline\n  - condition: 1\n  - condition: 2\n    langs: [zh, es, ur]\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", default="1,3")
    args = parser.parse_args()
    corpus.build_tier(config.load_profile("smoke"), "5k", 42, progress=False)
    with localcluster.local_cluster(Path(tempfile.mkdtemp(prefix="langdec-cluster-"))) as cluster:
        print(f"{'workers':>8}{'items':>7}{'complete':>10}{'attempts':>10}{'wall s':>9}")
        for n in (int(x) for x in args.workers.split(",")):
            ladder = localcluster.write_ladder(cluster.root, f"bench{n}", f"phase-w{n}", RUNS)
            name, added, _ = workqueue.enqueue(ladder, cluster.queue)
            start = time.perf_counter()
            procs = [subprocess.Popen(localcluster.worker_command(cluster.queue, name), stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL, env=localcluster.worker_env(cluster.tracking)) for _ in range(n)]
            for p in procs:
                p.wait()
            wall = time.perf_counter() - start
            status = workqueue.status(cluster.queue, name)
            attempts = sum(d["attempts"] for d in status["detail"].values())
            print(f"{n:>8}{added:>7}{status['counts'].get('COMPLETE', 0):>10}{attempts:>10}{wall:>9.1f}")


if __name__ == "__main__":
    main()
