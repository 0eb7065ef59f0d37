"""Source rows read by langdec.data.sources: a row that is not an object or not text, a file that is not UTF-8
and a damaged parquet page are each one line naming the file (and row), exit 2; symbolic links in a source folder
are reported, never followed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import cli_exit, one_error_line

ROOT = Path(__file__).resolve().parents[2]
GOOD = "def add(a, b):\n    return a + b\n"


_main = cli_exit


_one_error_line = one_error_line


def test_bad_source_rows_are_named(tmp_path, capsys):
    cases = {
        "not-objects.jsonl": ("[1, 2]\n", "not-objects.jsonl:1: a row must be a JSON object"),
        "code-not-string.jsonl": (
            json.dumps({"file_path": "a.py", "code": 5}) + "\n",
            "code-not-string.jsonl:1: column 'code' holds a int",
        ),
        "latin1.jsonl": (None, "latin1.jsonl:2: not UTF-8"),
    }
    for name, (text, expected) in cases.items():
        path = tmp_path / name
        if text is None:
            path.write_bytes(json.dumps({"code": GOOD}).encode() + b"\n" + '{"code": "caf\xe9"}\n'.encode("latin-1"))
        else:
            path.write_text(text)
        code, err = _main(capsys, "transpile", str(path), "--lang", "zh")
        assert code == 2 and expected in _one_error_line(err), err


def test_a_corrupt_parquet_data_page_is_named(tmp_path, capsys):
    import pandas as pd
    import pyarrow.parquet as pq

    path = tmp_path / "rows.parquet"
    pd.DataFrame(
        {"file_path": [f"f{i}.py" for i in range(400)], "code": [f"x{i} = {i}\n" * 20 for i in range(400)]}
    ).to_parquet(path, compression=None, use_dictionary=False)
    column = pq.ParquetFile(path).metadata.row_group(0).column(1)
    data = bytearray(path.read_bytes())
    start = column.data_page_offset  # the code column's first data page header: the footer stays readable
    data[start : start + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))
    code, err = _main(capsys, "transpile", str(path), "--lang", "zh")
    assert code == 2 and "rows.parquet" in _one_error_line(err)


def test_symbolic_links_in_a_source_folder_are_reported_not_followed(tmp_path):
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "m.py").write_text(GOOD)
    (src / "pkg" / "loop").symlink_to(src)  # a loop
    (src / "outside.py").symlink_to(ROOT / "src" / "langdec" / "core" / "errors.py")
    done = subprocess.run(
        [sys.executable, "-m", "langdec.cli", "--quiet", "transpile", str(src), "--lang", "zh", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert (
        "skipped pkg/loop/ (a symbolic link to a folder)" in done.stderr
        and "skipped outside.py (a symbolic link)" in done.stderr
    )
    assert json.loads(done.stdout)["files"] == 1
