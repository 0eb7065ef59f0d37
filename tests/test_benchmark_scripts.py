"""The performance scripts keep working on CPU (small shapes); their figures are read, never asserted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(script: str, *args: str, tmp_path: Path) -> str:
    env = {**os.environ, "LANGDEC_BENCH_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.slow
def test_train_throughput_prints_a_row_per_path(tmp_path):
    import json

    out = _run(
        "train_throughput.py",
        "--shape",
        "smoke",
        "--quant",
        "none",
        "--seq",
        "64",
        "--batch",
        "4",
        "--steps",
        "1",
        "--lengths",
        "lognormal",
        "--json",
        str(tmp_path / "rows.json"),
        tmp_path=tmp_path,
    )
    rows = [line for line in out.splitlines() if line.startswith("| ") and "x 64" in line]
    assert [r.split("|")[1].strip() for r in rows] == ["plain", "fused", "liger", "langdec", "unsloth"]
    assert "langdec path here: plain loss on packed rows, attention sdpa" in out
    assert "1.00x" in rows[0] and all(("CUDA only" in rows[i] or "not installed" in rows[i]) for i in (2, 4))
    padding = [line for line in out.splitlines() if line.startswith("seq 64, batch 4: padding")]
    assert padding and padding[0].endswith("packed")
    saved = {r["backend"]: r for r in json.loads((tmp_path / "rows.json").read_text())}
    # the same token stream for every path: packing trains it in fewer steps, never fewer tokens
    assert saved["langdec"]["status"] == saved["plain"]["status"] == "ok"
    assert saved["langdec"]["steps"] <= saved["plain"]["steps"] and saved["langdec"]["tokens_per_s"] > 0


@pytest.mark.slow
def test_eval_throughput_prints_generative_and_loglikelihood_rows(tmp_path):
    out = _run("eval_throughput.py", "--shape", "smoke", "--items", "16", "--batch", "8", tmp_path=tmp_path)
    assert "| generative (10 new tokens) | 8 |" in out
    assert "| log-likelihood, prompt once" in out and "| log-likelihood, every option" in out


def test_extract_scaling_prints_a_row_per_extractor_and_length(tmp_path):
    out = _run("extract_scaling.py", "--lengths", "1000", "4000", tmp_path=tmp_path)
    rows = [line.split() for line in out.splitlines()[1:]]
    assert {(r[0], r[1]) for r in rows} == {(n, l) for n in ("strict", "refined", "langdec") for l in ("1000", "4000")}


@pytest.mark.slow
def test_study_scale_prints_a_row_per_step(tmp_path):
    out = _run(
        "study_scale.py",
        "--scale",
        "0.001",
        "--out",
        str(tmp_path / "scale"),
        "--steps",
        "import",
        "study-tables",
        tmp_path=tmp_path,
    )
    rows = {
        line.split("|")[1].strip(): line for line in out.splitlines() if line.startswith("| ") and "step" not in line
    }
    assert set(rows) == {"import", "study-tables"} and all("| ok |" in r for r in rows.values())
    assert "<= 60 s / <= 1.5 GB" in rows["import"] and "42 result files" in out
    assert (tmp_path / "scale" / "work" / "study-tables" / "phase-3" / "tables.tex").is_file()
