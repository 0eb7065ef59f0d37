"""sha256 of files and of folders of files, the one way langdec names weights by their bytes (a GGUF base, an
adapter's weights in the manifest, a published adapter, a local base model in an MLmodel)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """The file's sha256, computed once per process for a file of this size and time (a load asks for it often)."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _DIGESTS[key] = digest.hexdigest()
    return _DIGESTS[key]


def files_sha256(root: Path, files: Iterable[Path]) -> str:
    """sha256 over each file's path relative to `root` and its own sha256, in path order."""
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(bytes.fromhex(file_sha256(path)))
    return digest.hexdigest()
