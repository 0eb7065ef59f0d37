"""Screenshots of what a researcher sees in the MLflow UI after the smoke ladder, taken in headless Chromium.

    make demo                                  # or: langdec ladder experiments/ladders/smoke.yaml
    python docs/ui_screenshots.py --store mlflow.db --out docs/screenshots

Starts `mlflow server` on the store (loopback only), then photographs three pages:
  1. runs.png    - the phase experiment's run list (model-development view, summary.* columns);
  2. compare.png - the compare view of the conditions' evaluation runs;
  3. report.png  - the report page (report.html, plots inline; the same page is the report run's artifact).
Needs Chromium (Debian: apt-get install chromium). Prints each file it wrote; exits 2 with a one-line reason
when something is missing.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"error: the MLflow server at {url} did not answer within {seconds:.0f}s")


def _api(base: str, path: str, body: dict) -> dict:
    request = urllib.request.Request(f"{base}/api/2.0/mlflow/{path}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(request, timeout=10).read())


def _shoot(chromium: str, url: str, out: Path, size: str) -> None:
    subprocess.run([chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--window-size={size}",
                    "--virtual-time-budget=20000", f"--screenshot={out}", url], check=True, capture_output=True, timeout=120)
    print(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="mlflow.db", help="the SQLite tracking store the ladder wrote")
    parser.add_argument("--experiment", default="phase-3-smoke")
    parser.add_argument("--out", default="docs/screenshots")
    parser.add_argument("--report", default=".langdec/reports/phase-3-smoke/report.html", help="the report page the report stage wrote")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if not chromium:
        print("error: no Chromium on PATH; apt-get install chromium", file=sys.stderr)
        return 2
    store = Path(args.store).resolve()
    if not store.is_file():
        print(f"error: {store}: no tracking store; run `make demo` first", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{store}",
                               "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait(f"{base}/health")
        found = json.loads(urllib.request.urlopen(f"{base}/api/2.0/mlflow/experiments/get-by-name?experiment_name={args.experiment}",
                                                  timeout=10).read())["experiment"]
        exp_id = found["experiment_id"]
        runs = _api(base, "runs/search", {"experiment_ids": [exp_id], "max_results": 500})["runs"]
        tags = [{t["key"]: t["value"] for t in r["data"].get("tags", [])} | {"id": r["info"]["run_id"]} for r in runs]
        evals = [t["id"] for t in tags if t.get("langdec.stage") == "evaluate"][:9]
        # workflowType pins the model-training view (a fresh browser profile starts in GenAI mode)
        _shoot(chromium, f"{base}/#/experiments/{exp_id}/runs?workflowType=machine_learning", out / "runs.png", "1600,1000")
        _shoot(chromium, f"{base}/#/compare-runs?runs={json.dumps(evals)}&experiments={json.dumps([exp_id])}", out / "compare.png",
               "1600,1400")
        # the report artifact as a page (the server sends artifacts as downloads, so the file the report stage wrote)
        page = Path(args.report).resolve()
        if page.is_file():
            _shoot(chromium, page.as_uri(), out / "report.png", "1400,1800")
    finally:
        server.terminate()
        server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
