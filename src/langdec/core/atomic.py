"""Outputs appear whole or not at all, only inside their destination, never over a user's files.

Everything is written beside the target, then renamed into place. A user-named
destination that already holds something is refused unless the caller passes
`replace=True` (the CLI's `--force`); a relative path taken from input data (a row's
`file_path`) must stay inside the destination and name one file only once.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from langdec.core.errors import LangdecError

PARTIAL = ".partial"


def check_output(target: Path | str, *, replace: bool, flag: str = "--out") -> None:
    """A user-named output (`--out`, export's DEST): never where langdec keeps its own things, then `check_destination`.

    Checked before anything is read or written: `--force` on the store's artifact root once replaced every run's
    artifacts with the output, which then logged itself into itself."""
    refuse_protected(target, flag=flag)
    clean_leftovers(target)
    check_destination(target, replace=replace)


def refuse_protected(target: Path | str, *, flag: str = "--out") -> None:
    """Refuse an output that is, holds or lies inside the tracking store's files and artifact locations or langdec's
    home folder, or that is, holds or lies inside the checkout's own files (a new folder in the checkout is fine)."""
    from langdec.core.paths import project_entries, protected_places

    target = Path(target)
    if "\x00" in str(target):
        return  # check_destination says why
    # the path as named, with its folders' links followed, and wholly resolved: a link to the store is the store
    seen = {
        Path(os.path.abspath(target)),
        Path(os.path.realpath(target.absolute().parent)) / target.name,
        Path(os.path.realpath(target)),
    }
    checkout = "the langdec checkout"
    found: list[tuple[int, str, str, Path]] = []  # (rank, relation, what, place): the most telling one is named
    for what, place in protected_places():
        place = Path(os.path.realpath(place))
        for path in seen:
            if path == place:
                found.append((0, "is", what, place))
            elif place in path.parents:
                top = path.relative_to(place).parts[0]
                if what != checkout:
                    found.append((1, "lies inside", what, place))
                elif top in project_entries(place):  # a new folder of the checkout is fine, its own files are not
                    found.append((1, "lies inside", f"the checkout's own {top!r}", place / top))
            elif path in place.parents:
                found.append((2, "holds", what, place))
    if found:
        _, relation, what, place = min(found, key=lambda f: f[0])
        raise LangdecError(
            f"{flag} {target}: {relation} {what} ({place}); langdec never writes an output there, "
            "where --force would replace what it keeps; name a folder outside it"
        )


def check_destination(target: Path | str, *, replace: bool) -> None:
    """Refuse a destination that cannot be written, or that holds the user's things.

    A folder with anything in it, or an existing file, is the user's: refused unless `replace`.
    The folder it will be created in must be writable (checked before the work, not after it)."""
    target = Path(target)
    if str(target).strip() in ("", ".", "..") or target.name in ("", ".", ".."):
        raise LangdecError(f"--out {str(target)!r}: name a new folder or file (not '.', '..' or the current folder)")
    if "\x00" in str(target):
        raise LangdecError(f"{str(target)!r}: a path cannot hold a NUL character")
    here = Path.cwd().resolve()
    if target.resolve() == here or target.resolve() in here.parents:
        raise LangdecError(
            f"{target}: that is the folder you are in (or one above it); name a new folder for the output"
        )
    parent = target.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise LangdecError(f"{target}: cannot be created, {parent} is a file; choose another output path")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise LangdecError(f"{target}: cannot write in {parent} (permission denied); choose a writable output path")
    if replace or not (target.exists() or target.is_symlink()):
        return
    if target.is_dir() and not target.is_symlink():
        if not any(target.iterdir()):
            return
        raise LangdecError(
            f"{target}: the folder exists and is not empty; name a new folder, or pass --force to replace it"
        )
    raise LangdecError(f"{target}: the file exists; name a new file, or pass --force to replace it")


def relative_inside(relative: str, *, where: str) -> PurePosixPath:
    """A path from input data as a relative path that cannot leave its destination."""
    path = PurePosixPath(str(relative).replace("\\", "/"))
    if "\x00" in str(relative):
        raise LangdecError(f"{where}: file_path {relative!r} holds a NUL character; fix the row")
    if not str(relative).strip() or path.is_absolute() or ".." in path.parts:
        raise LangdecError(
            f"{where}: file_path {relative!r} must be a relative path inside the output folder (no leading /, "
            "no '..'); fix the row or write rows (.parquet/.jsonl) instead of a folder"
        )
    return path


@contextlib.contextmanager
def atomic_path(target: Path | str, *, replace: bool = True) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto the target on success.

    `replace=False` (a user-named output) refuses an existing target, before and after the work."""
    target = Path(target)
    # no clean_leftovers here: caches write many files into one folder, each would list it (a user's output file is
    # cleaned by check_output)
    check_destination(target, replace=replace)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=_partial_prefix(target), suffix=PARTIAL, dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        check_destination(target, replace=replace)  # something may have appeared there meanwhile
        if tmp_path.exists():
            os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; collaborators read outputs with the usual mode
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_dir(target: Path | str, *, replace: bool) -> Iterator[Path]:
    """Yield a temporary folder beside `target`; it takes `target`'s place only if the block succeeds.

    `replace=False` (a user-named output) refuses a non-empty target, before and after the work; langdec's
    own caches pass True."""
    target = Path(target)
    clean_leftovers(target)
    check_destination(target, replace=replace)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=_partial_prefix(target), suffix=PARTIAL, dir=target.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; an output folder gets the user's usual mode
    try:
        yield tmp
        check_destination(target, replace=replace)
        if target.exists() or target.is_symlink():
            old = _old(target)
            _remove(old)
            os.replace(target, old)  # a link is replaced, never followed: what it points at stays
            os.replace(tmp, target)
            _remove(old)
        else:
            os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _old(target: Path) -> Path:
    return target.with_name(f".{target.name}.old")


def _remove(path: Path) -> None:
    """Remove a file, a link (never what it points at) or a folder, if there."""
    if path.is_symlink() or path.is_file():
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    elif path.is_dir():
        shutil.rmtree(path, ignore_errors=True)


@functools.lru_cache(maxsize=1)
def _machine() -> str:
    """This machine, short: a leftover is judged by its writer's pid only on the machine that wrote it."""
    import hashlib
    import socket

    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot = ""
    return hashlib.sha256(f"{socket.gethostname()} {boot}".encode()).hexdigest()[:8]


def _partial_prefix(target: Path) -> str:
    """`.NAME.MACHINE-PID.`: a later run can tell a killed writer's leftover from a live one's work."""
    return f".{target.name}.{_machine()}-{os.getpid()}."


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


LEGACY_PARTIAL_AGE = 24 * 3600  # a leftover of a langdec before writers were named: surely dead after a day


def clean_leftovers(target: Path | str) -> list[Path]:
    """Remove what a killed write to `target` left beside it: its `.NAME.*.partial` (when its writer, on this
    machine, is gone) and a `.NAME.old` (a replacement killed between its two renames: put back when the target
    is missing, else removed). Returns what was removed or put back."""
    import re
    import time

    target = Path(target)
    done: list[Path] = []
    folder = target.parent
    if "\x00" in str(target) or target.name in ("", ".", "..") or not folder.is_dir():
        return done  # check_destination says what is wrong with such a name
    mine = re.compile(re.escape(f".{target.name}.") + r"([0-9a-f]{8})-(\d+)\..*" + re.escape(PARTIAL) + "$")
    legacy = re.compile(re.escape(f".{target.name}.") + r"[a-z0-9_]{8}" + re.escape(PARTIAL) + "$")
    machine = _machine()
    for path in folder.iterdir():
        stale = False
        found = mine.match(path.name)
        if found:
            stale = (
                found.group(1) == machine and int(found.group(2)) != os.getpid() and not _pid_alive(int(found.group(2)))
            )
        elif legacy.match(path.name):
            with contextlib.suppress(OSError):
                stale = time.time() - path.lstat().st_mtime > LEGACY_PARTIAL_AGE
        else:
            continue
        if stale:
            _remove(path)
            done.append(path)
    old = _old(target)
    if old.is_symlink() or old.exists():
        if target.exists() or target.is_symlink():
            _remove(old)
        else:
            with contextlib.suppress(OSError):
                os.replace(old, target)
        done.append(old)
    return done


def user_modes(folder: Path | str) -> None:
    """Give every file and folder under `folder` (langdec's own output) the user's usual mode: some writers
    (safetensors among them) create 0600 files, which collaborators sharing the store or an export cannot read."""
    mask = _umask()
    for path in [Path(folder), *Path(folder).rglob("*")]:
        if not path.is_symlink():
            os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~mask)


def write_text(target: Path | str, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def _umask() -> int:
    """The process umask, read without changing it (os.umask would, for every thread, for a moment)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022


def write_files_or_rows(
    dest: Path, files: list[tuple[str, str]], rows: list[dict], columns: list[str], *, replace: bool = False
) -> None:
    """The output forms every corpus command shares: .parquet/.jsonl rows, one .py file, or a mirrored tree.

    Text is written as bytes: newline translation would break an exact round trip."""
    import json

    refuse_protected(dest)  # callers check first, before their work; this keeps it true for every caller

    if dest.suffix in (".parquet", ".jsonl"):
        with atomic_path(dest, replace=replace) as tmp:
            if dest.suffix == ".parquet":
                import pandas as pd

                pd.DataFrame(rows, columns=columns).to_parquet(tmp, index=False)
            else:
                tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    elif dest.suffix == ".py" and len(files) <= 1:
        if files:
            with atomic_path(dest, replace=replace) as tmp:
                tmp.write_bytes(files[0][1].encode("utf-8"))
    else:
        seen: dict[str, int] = {}
        folders: dict[str, int] = {}  # every folder a path needs -> the first row needing it
        paths = []
        for number, (relative, _) in enumerate(files, start=1):
            path = relative_inside(relative, where=f"row {number}")
            key = path.as_posix().casefold()  # two names that differ only in case are one file on many systems
            if key in seen:
                raise LangdecError(
                    f"rows {seen[key]} and {number}: both have file_path {relative!r}, so one would overwrite the "
                    "other; make the paths unique or write rows (.parquet/.jsonl) instead of a folder"
                )
            clash = folders.get(key)
            if clash is None:
                clash = next(
                    (seen[p.as_posix().casefold()] for p in path.parents if p.as_posix().casefold() in seen), None
                )
            if clash is not None:
                raise LangdecError(
                    f"rows {clash} and {number}: one uses {relative!r} (or a folder above it) as a file and the other "
                    "as a folder; rename one, or write rows (.parquet/.jsonl) instead of a folder"
                )
            seen[key] = number
            for p in path.parents:
                folders.setdefault(p.as_posix().casefold(), number)
            paths.append(path)
        with atomic_dir(dest, replace=replace) as tmp:
            for path, (_, text) in zip(paths, files):
                target = tmp.joinpath(*path.parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(text.encode("utf-8"))
