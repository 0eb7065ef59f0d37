"""Screenshots of what a researcher sees in the MLflow UI after the smoke ladder, taken in headless Chromium.

    make demo                                  # or: langdec ladder experiments/ladders/smoke.yaml
    python docs/ui_screenshots.py --store mlflow.db --out docs/screenshots

Writes langdec's saved views (`langdec ui --no-serve`), starts `mlflow server` on the store (loopback only)
behind a small same-origin proxy, and photographs these pages:
  1. runs.png       - the run list in the "langdec: every run" view (flat, by name, stage and cell columns);
  2. conditions.png - the "langdec: conditions at a glance" view (evaluation runs grouped by condition and
                      language, summary columns averaged per group);
  3. compare.png    - MLflow's compare page for the conditions' evaluation runs;
  4. report.png     - the report page (report.html, plots inline; the same page is the report run's artifact);
  5. model_version.png - the registered model's version page of one promoted adapter (its aliases, tags, source);
  6. logged_model.png  - that version's logged model (MLflow 3): its evaluation runs and template scores.
The proxy serves one extra page that sets what a browser remembers between visits (the model-training
view; the assistant panel, which MLflow opens on a browser's first visit, closed) and then opens the view.
Needs Chromium (Debian: apt-get install chromium). Prints each file it wrote; exits 2 with a one-line reason
when something is missing.
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from langdec.orchestration.localcluster import free_port

# what MLflow's front end keeps in localStorage (`<key>_v<version>`, JSON values)
REMEMBERED = {
    "mlflow.workflowType_v1": "machine_learning",
    "mlflow.assistant.panelOpen_v1": False,
    "mlflow.assistant.fab.autoOpenedOnFirstLoad_v1": True,
}


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
    request = urllib.request.Request(
        f"{base}/api/2.0/mlflow/{path}", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    return json.loads(urllib.request.urlopen(request, timeout=10).read())


def _proxy(upstream: str) -> http.server.ThreadingHTTPServer:
    """Forwards every request to the MLflow server; /__prep?next=URL sets REMEMBERED and goes to URL."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def _forward(self) -> None:
            if self.path.startswith("/__prep"):
                target = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)["next"][0]
                script = "".join(
                    f"localStorage.setItem({json.dumps(k)}, {json.dumps(json.dumps(v))});"
                    for k, v in REMEMBERED.items()
                )
                body = f"<script>{script}location.replace({json.dumps(target)});</script>".encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            length = int(self.headers.get("Content-Length") or 0)
            request = urllib.request.Request(
                upstream + self.path,
                data=self.rfile.read(length) if length else None,
                method=self.command,
                headers={k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")},
            )
            try:
                response = urllib.request.urlopen(request, timeout=60)
            except urllib.error.HTTPError as exc:
                response = exc
            body = response.read()
            self.send_response(response.status)
            for key, value in response.headers.items():
                if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PATCH = do_DELETE = _forward

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _shoot(chromium: str, url: str, out: Path, size: str) -> None:
    subprocess.run(
        [
            chromium,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--window-size={size}",
            "--virtual-time-budget=20000",
            f"--screenshot={out}",
            url,
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    print(out)


def _shoot_model(chromium: str, upstream: str, prepared, out: Path, name: str) -> None:
    """The version page of the newest promoted (else newest) version of `name`, and its logged model's page."""
    query = urllib.parse.urlencode({"filter": f"name = '{name}'", "max_results": 200})
    found = json.loads(
        urllib.request.urlopen(f"{upstream}/api/2.0/mlflow/model-versions/search?{query}", timeout=10).read()
    )
    versions = sorted(found.get("model_versions", []), key=lambda v: int(v["version"]))
    if not versions:
        return
    promoted = [v for v in versions if v.get("aliases")]
    version = (promoted or versions)[-1]
    _shoot(chromium, prepared(f"/models/{name}/versions/{version['version']}"), out / "model_version.png", "1600,1100")
    source = version.get("source", "")
    if source.startswith("models:/m-"):
        model_id = source.removeprefix("models:/")
        request = urllib.request.Request(f"{upstream}/api/2.0/mlflow/logged-models/{model_id}")
        model = json.loads(urllib.request.urlopen(request, timeout=10).read())["model"]
        experiment = model["info"]["experiment_id"]
        _shoot(
            chromium, prepared(f"/experiments/{experiment}/models/{model_id}"), out / "logged_model.png", "1600,1400"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="mlflow.db", help="the SQLite tracking store the ladder wrote")
    parser.add_argument("--experiment", default="phase-3-smoke")
    parser.add_argument("--out", default="docs/screenshots")
    parser.add_argument("--model", default="langdec-smoke-adapters", help="the registered model whose pages to shoot")
    parser.add_argument(
        "--report", default=".langdec/reports/phase-3-smoke/report.html", help="the report page the report stage wrote"
    )
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
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{store}"}
    subprocess.run(
        [sys.executable, "-m", "langdec.cli", "--quiet", "ui", "--no-serve"], check=True, env=env, capture_output=True
    )
    port = free_port()
    upstream = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{store}",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    proxy = None
    try:
        _wait(f"{upstream}/health")
        proxy = _proxy(upstream)
        base = f"http://127.0.0.1:{proxy.server_address[1]}"
        found = json.loads(
            urllib.request.urlopen(
                f"{upstream}/api/2.0/mlflow/experiments/get-by-name?experiment_name={args.experiment}", timeout=10
            ).read()
        )["experiment"]
        exp_id = found["experiment_id"]
        runs = _api(upstream, "runs/search", {"experiment_ids": [exp_id], "max_results": 500})["runs"]
        tags = [{t["key"]: t["value"] for t in r["data"].get("tags", [])} | {"id": r["info"]["run_id"]} for r in runs]
        evals = [t["id"] for t in tags if t.get("langdec.stage") == "evaluate"][:9]

        def prepared(fragment: str) -> str:
            return f"{base}/__prep?next=" + urllib.parse.quote(f"{base}/#{fragment}", safe="")

        views = f"/experiments/{exp_id}/runs?workflowType=machine_learning&viewStateShareKey="
        _shoot(chromium, prepared(views + "langdec-runs"), out / "runs.png", "1600,1000")
        _shoot(chromium, prepared(views + "langdec-conditions"), out / "conditions.png", "1600,1000")
        _shoot(
            chromium,
            prepared(f"/compare-runs?runs={json.dumps(evals)}&experiments={json.dumps([exp_id])}"),
            out / "compare.png",
            "1600,1400",
        )
        _shoot_model(chromium, upstream, prepared, out, args.model)
        # the report artifact as a page (the server sends artifacts as downloads, so the file the report stage wrote)
        page = Path(args.report).resolve()
        if page.is_file():
            _shoot(chromium, page.as_uri(), out / "report.png", "1400,1800")
    finally:
        if proxy is not None:
            proxy.shutdown()
        server.terminate()
        server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
