"""Where the project's data files are and where a run writes its outputs."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import LangdecError

_MARKER = "MLproject"


def project_root() -> Path:
    """The checkout holding experiments/, languages/, data_checks/ and registry/.

    LANGDEC_ROOT wins; otherwise the checkout this package was installed from
    (editable install), then the current directory or any parent of it.
    """
    env = os.environ.get("LANGDEC_ROOT")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parents[2])
    cwd = Path.cwd().resolve()
    candidates.extend([cwd, *cwd.parents])
    for candidate in candidates:
        if (candidate / _MARKER).is_file() and (candidate / "experiments").is_dir():
            return candidate
    raise LangdecError(
        "cannot find the langdec project files (MLproject, experiments/); run from the "
        "checkout, install it with `pip install -e .`, or set LANGDEC_ROOT"
    )


def experiments_dir() -> Path:
    return project_root() / "experiments"


def work_dir() -> Path:
    """Outputs that are not tracked artifacts (built models, corpora, caches)."""
    path = Path(os.environ.get("LANGDEC_HOME", Path.cwd() / ".langdec"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(Path.cwd() / 'mlflow.db').as_posix()}"
