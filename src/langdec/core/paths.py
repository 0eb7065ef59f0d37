"""Where the project's data files are and where a run writes its outputs."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlparse

from langdec.core.errors import LangdecError

_MARKER = "MLproject"


def project_root() -> Path:
    """The checkout holding experiments/, languages/, data_checks/ and registry/.

    LANGDEC_ROOT wins; otherwise the checkout this package was installed from
    (editable install), then the current directory or any parent of it.
    """
    env = os.environ.get("LANGDEC_ROOT")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parents[3])
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


def home_path() -> Path:
    """Where `work_dir` is, without creating it."""
    return Path(os.environ.get("LANGDEC_HOME", Path.cwd() / ".langdec"))


def work_dir() -> Path:
    """Outputs that are not tracked artifacts (built models, corpora, caches)."""
    path = home_path()
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(Path.cwd() / 'mlflow.db').as_posix()}"


def store_places(uri: str | None = None) -> list[tuple[str, Path]]:
    """(what, path) of the tracking store's own files on this machine: a SQLite store's database file and a
    file store's folder, the store's default artifact root and every experiment's artifact location that is a
    local folder. A server or a database elsewhere keeps its artifacts where this machine cannot judge: none."""
    uri = uri or default_tracking_uri()
    scheme = urlparse(uri).scheme
    places: list[tuple[str, Path]] = []
    if scheme == "sqlite":
        db = Path(uri.removeprefix("sqlite:///").split("?", 1)[0])
        places.append(("the tracking store's database", db))
        if not db.is_file():  # no store yet: MLflow would put its artifacts in ./mlruns; asking would create it
            return [*places, ("the tracking store's artifact root", Path.cwd() / "mlruns")]
    elif scheme in ("", "file"):
        root = _local(uri)
        places.append(("the tracking store (a folder of runs and their artifacts)", root))
        if not root.is_dir():
            return places
    else:
        return []
    try:
        from mlflow.entities import ViewType
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=uri)
        root_uri = getattr(client._tracking_client.store, "artifact_root_uri", None)
        found = [("the tracking store's artifact root", root_uri)]
        token = None
        while True:
            page = client.search_experiments(view_type=ViewType.ALL, max_results=1000, page_token=token)
            found += [(f"experiment {e.name!r}'s artifact location", e.artifact_location) for e in page]
            token = page.token
            if not token:
                break
    except Exception:  # an unreadable store: what its URI alone says, and MLflow's default artifact root
        found = [("the tracking store's artifact root", str(Path.cwd() / "mlruns"))]
    places += [(what, path) for what, path in ((w, _local(u)) for w, u in found if u) if path is not None]
    return places


def _local(uri: str) -> Path | None:
    """The local path of a plain path or file: URI; None for anything elsewhere (s3:, mlflow-artifacts:, ...)."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    return None if parsed.scheme else Path(uri).absolute()


def protected_places() -> list[tuple[str, Path]]:
    """(what, path) of every place a user-named output must never be, hold or lie inside (`atomic.check_output`):
    the tracking store's files and artifacts, langdec's home folder and the checkout."""
    places = [*store_places(), ("langdec's home folder", home_path())]
    try:
        places.append(("the langdec checkout", project_root()))
    except LangdecError:
        pass  # an installed langdec without its checkout: nothing of it to protect
    return places


PROJECT_ENTRIES = (
    "src",
    "tests",
    "experiments",
    "languages",
    "data_checks",
    "registry",
    "docs",
    "benchmarks",
    "MLproject",
    "pyproject.toml",
    "README.md",
    "Makefile",
)


def project_entries(root: Path) -> set[str]:
    """The checkout's own top-level names (what git tracks there, its .git and the .venv beside it): an output
    may be a new folder of the checkout (`--out study/`), never one of these or inside them."""
    import subprocess

    names = {".git", ".venv", *PROJECT_ENTRIES}
    try:
        listed = subprocess.run(["git", "ls-files", "-z"], cwd=root, capture_output=True, timeout=30, check=True).stdout
        names |= {f.split(b"/", 1)[0].decode("utf-8", "replace") for f in listed.split(b"\0") if f}
    except (OSError, subprocess.SubprocessError):
        pass
    return names
