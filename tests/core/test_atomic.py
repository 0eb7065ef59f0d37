"""Outputs written through langdec.core.atomic, probed the way the hostile reviews probed them: a row's file_path
stays inside the output folder and never clashes with another row's, an existing folder or file is replaced only
with --force, '.' and '..' are never outputs, an unwritable destination or a full disk is one line with exit 2
before (or without) leaving anything behind."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import cli_exit, one_error_line

GOOD = "def add(a, b):\n    return a + b\n"


@pytest.fixture(autouse=True)
def store_elsewhere(module_store) -> str:
    """A tracking store outside every test's folder, as the hostile rounds ran: with the default store (mlflow.db in
    the current folder) an output of '.' is refused first for holding the store, never reaching the rule tested."""
    return module_store


_main = cli_exit


_one_error = one_error_line


_one_error_line = _one_error  # the name the first hostile round's tests call it by


def _rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


_jsonl = _rows  # the name the first hostile round's tests call it by


@pytest.mark.parametrize("bad", ["../escaped.py", "ABSOLUTE", "a/../../escaped.py"])
def test_a_row_cannot_write_outside_the_output_folder(tmp_path, capsys, bad):
    absolute = tmp_path / "absolute-escape.py"
    bad = str(absolute) if bad == "ABSOLUTE" else bad
    src = _jsonl(tmp_path / "rows.jsonl", [{"file_path": "ok.py", "code": GOOD}, {"file_path": bad, "code": GOOD}])
    out = tmp_path / "work" / "out"
    code, err = _main(capsys, "transpile", str(src), "--lang", "zh", "--out", str(out))
    assert code == 2 and "row 2" in _one_error_line(err) and repr(bad) in err
    assert (
        not out.exists() and not (tmp_path / "work" / "escaped.py").exists() and not (tmp_path / "escaped.py").exists()
    )
    assert not absolute.exists()


def test_duplicate_file_paths_are_refused_not_overwritten(tmp_path, capsys):
    src = _jsonl(
        tmp_path / "rows.jsonl", [{"file_path": "a.py", "code": GOOD}, {"file_path": "A.py", "code": "x = 1\n"}]
    )
    code, err = _main(capsys, "transpile", str(src), "--lang", "zh", "--out", str(tmp_path / "out"))
    assert code == 2 and "rows 1 and 2" in _one_error_line(err)


def test_an_existing_folder_is_refused_unless_forced(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    (src / "m.py").write_text(GOOD)
    dest = tmp_path / "dest"
    (dest / ".git").mkdir(parents=True)
    (dest / "notes.md").write_text("mine")
    code, err = _main(capsys, "transpile", str(src), "--lang", "zh", "--out", str(dest))
    assert code == 2 and "not empty" in _one_error_line(err) and "--force" in err
    assert (dest / "notes.md").read_text() == "mine" and (dest / ".git").is_dir()
    single = tmp_path / "one.py"
    single.write_text("precious = 1\n")
    code, err = _main(capsys, "transpile", str(src / "m.py"), "--lang", "zh", "--out", str(single))
    assert code == 2 and "exists" in _one_error_line(err) and single.read_text() == "precious = 1\n"
    assert _main(capsys, "transpile", str(src), "--lang", "zh", "--out", str(dest), "--force")[0] == 0
    assert not (dest / "notes.md").exists() and (dest / "m.py").exists()
    # outputs are readable by collaborators (the usual umask), not 0600/0700
    assert (dest / "m.py").stat().st_mode & 0o044 == 0o044 and dest.stat().st_mode & 0o055 == 0o055


def test_export_refuses_a_non_empty_destination_before_any_work(tmp_path, capsys, store):
    dest = tmp_path / "export"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    code, err = _main(capsys, "export", str(dest))
    assert code == 2 and "not empty" in _one_error_line(err) and (dest / "keep.txt").read_text() == "mine"


def test_an_unwritable_destination_fails_before_the_work(tmp_path, capsys):
    src = tmp_path / "m.py"
    src.write_text(GOOD)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code, err = _main(capsys, "transpile", str(src), "--lang", "zh", "--out", str(blocker / "sub" / "out"))
    assert code == 2 and "is a file" in _one_error_line(err)


@pytest.mark.parametrize(
    "rows, message",
    [
        (
            [{"file_path": "a.py", "code": "x = 1\n"}, {"file_path": "a.py/b.py", "code": "y = 2\n"}],
            "as a file and the other as a folder",
        ),
        ([{"file_path": "a\u0000b.py", "code": "x = 1\n"}], "NUL character"),
    ],
)
def test_transpile_rows_that_cannot_be_files_are_one_line(tmp_path, capsys, rows, message):
    src = _rows(tmp_path / "rows.jsonl", rows)
    code, err = _main(capsys, "transpile", str(src), "--lang", "zh", "--out", str(tmp_path / "out"))
    assert code == 2 and message in _one_error(err) and not (tmp_path / "out").exists()


@pytest.mark.parametrize("out", [".", "..", "./", "../"])
def test_the_current_folder_or_its_parent_is_never_an_output(tmp_path, capsys, monkeypatch, out):
    work = tmp_path / "work"
    work.mkdir()
    src = _rows(work / "rows.jsonl", [{"file_path": "a.py", "code": "x = 1\n"}])
    monkeypatch.chdir(work)
    code, err = _main(capsys, "transpile", str(src), "--lang", "zh", "--out", out, "--force")
    assert code == 2 and "name a new folder" in _one_error(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"] and sorted(p.name for p in work.iterdir()) == [
        "rows.jsonl"
    ]


def test_a_full_disk_is_one_line_and_leaves_nothing(tmp_path, capsys):
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root")
    full = tmp_path / "full"
    full.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=128k", "tmpfs", str(full)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        src = _rows(tmp_path / "rows.jsonl", [{"file_path": f"f{i}.py", "code": "x = 1\n" * 3000} for i in range(20)])
        code, err = _main(capsys, "transpile", str(src), "--lang", "zh", "--out", str(full / "out"))
        assert code == 2 and "no space left on the device" in _one_error(err)
        assert list(full.iterdir()) == []
    finally:
        subprocess.run(["umount", str(full)], capture_output=True)
