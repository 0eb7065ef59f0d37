"""What a hostile tester broke, each probed the way they probed it: bad input gets one line and exit 2,
outputs stay inside their destination and never over a user's files, concurrent processes never share a
run, a checkpoint or a registered version, and no secret is echoed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from langdec import cli, registry
from langdec.errors import LangdecError

ROOT = Path(__file__).resolve().parents[1]
GOOD = "def add(a, b):\n    return a + b\n"


def _main(capsys, *argv: str) -> tuple[int, str]:
    code = cli.main(["--quiet", *argv])
    err = capsys.readouterr().err
    return code, err


def _one_error_line(err: str) -> str:
    lines = [l for l in err.splitlines() if l.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# ---------------------------------------------------------------------- outputs stay inside, never over a user's files
@pytest.mark.parametrize("bad", ["../escaped.py", "ABSOLUTE", "a/../../escaped.py"])
def test_a_row_cannot_write_outside_the_output_folder(tmp_path, capsys, bad):
    absolute = tmp_path / "absolute-escape.py"
    bad = str(absolute) if bad == "ABSOLUTE" else bad
    src = _jsonl(tmp_path / "rows.jsonl", [{"file_path": "ok.py", "code": GOOD}, {"file_path": bad, "code": GOOD}])
    out = tmp_path / "work" / "out"
    code, err = _main(capsys, "transpile", str(src), "--lang", "zh", "--out", str(out))
    assert code == 2 and "row 2" in _one_error_line(err) and repr(bad) in err
    assert not out.exists() and not (tmp_path / "work" / "escaped.py").exists() and not (tmp_path / "escaped.py").exists()
    assert not absolute.exists()


def test_duplicate_file_paths_are_refused_not_overwritten(tmp_path, capsys):
    src = _jsonl(tmp_path / "rows.jsonl", [{"file_path": "a.py", "code": GOOD}, {"file_path": "A.py", "code": "x = 1\n"}])
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


# ---------------------------------------------------------------------- bad input: one line, exit 2
def test_bad_source_rows_are_named(tmp_path, capsys):
    cases = {
        "not-objects.jsonl": ("[1, 2]\n", "not-objects.jsonl:1: a row must be a JSON object"),
        "code-not-string.jsonl": (json.dumps({"file_path": "a.py", "code": 5}) + "\n", "code-not-string.jsonl:1: column 'code' holds a int"),
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
    pd.DataFrame({"file_path": [f"f{i}.py" for i in range(400)], "code": [f"x{i} = {i}\n" * 20 for i in range(400)]}).to_parquet(
        path, compression=None, use_dictionary=False)
    column = pq.ParquetFile(path).metadata.row_group(0).column(1)
    data = bytearray(path.read_bytes())
    start = column.data_page_offset  # the code column's first data page header: the footer stays readable
    data[start:start + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))
    code, err = _main(capsys, "transpile", str(path), "--lang", "zh")
    assert code == 2 and "rows.parquet" in _one_error_line(err)


@pytest.mark.parametrize("override,expected", [("training.lr=nan", "training.lr = nan"), ("training.lr=inf", "training.lr = inf"),
                                              ("corpus.tiers.5k=0", "corpus.tiers.5k = 0")])
def test_impossible_numbers_are_refused_before_any_work(capsys, override, expected):
    code, err = _main(capsys, "check", "--condition", "2", "--lang", "zh", "--set", override)
    assert code == 2 and expected in _one_error_line(err)


def test_a_secret_in_the_base_url_is_never_echoed(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    src = tmp_path / "m.py"
    src.write_text(GOOD)
    code, err = _main(capsys, "translate", str(src), "--lang", "zh", "--backend", "openai", "--model", "m",
                      "--base-url", "http://user:hunter2@127.0.0.1:99999/v1?token=SUPERSECRET")
    line = _one_error_line(err)
    assert code == 2 and "base_url" in line and "SUPERSECRET" not in err and "hunter2" not in err


def test_symbolic_links_in_a_source_folder_are_reported_not_followed(tmp_path):
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "m.py").write_text(GOOD)
    (src / "pkg" / "loop").symlink_to(src)  # a loop
    (src / "outside.py").symlink_to(ROOT / "src" / "langdec" / "errors.py")
    done = subprocess.run([sys.executable, "-m", "langdec.cli", "--quiet", "transpile", str(src), "--lang", "zh", "--json"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "skipped pkg/loop/ (a symbolic link to a folder)" in done.stderr and "skipped outside.py (a symbolic link)" in done.stderr
    assert json.loads(done.stdout)["files"] == 1


# ---------------------------------------------------------------------- promotion policies
def _policy(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("text,expected", [
    ("alias: paper\nrules:\n  benchmarkz: [xnli]\n", "unknown rule 'benchmarkz'; valid rules: phase, data_checks_passed"),
    ("", "empty or not a mapping"),
    ("alias: paper\nrules: [phase]\n", "`rules` must be a non-empty mapping"),
    ("alias: paper\nrules:\n  min_seeds: three\n", "rules.min_seeds must be a int"),
    ("alias: paper\nrules:\n  benchmarks: [xnli, sib201]\n", "unknown benchmark 'sib201'"),
    ("alias: paper\nrules:\n  current_extractor: strictest\n", "'strictest' is not an extractor"),
    ("alias: [paper\n", "not valid YAML"),
])
def test_a_policy_is_validated_against_its_schema(tmp_path, text, expected):
    with pytest.raises(LangdecError, match="policy.yaml: .*" if text else "policy.yaml"):
        registry._read_policy(_policy(tmp_path, text))
    with pytest.raises(LangdecError) as info:
        registry._read_policy(_policy(tmp_path, text))
    assert expected in str(info.value)


def test_the_shipped_policies_are_valid():
    for path in (ROOT / "registry").glob("*.yaml"):
        assert registry._read_policy(path)["rules"]


def test_promoting_a_version_that_does_not_exist_is_an_error(capsys, store):
    code, err = _main(capsys, "promote", "--version", "99")
    assert code == 2 and "has no version 99" in _one_error_line(err)


# ---------------------------------------------------------------------- concurrency
def test_commands_started_together_on_a_fresh_store_all_succeed(tmp_path):
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'fresh.db'}", "LANGDEC_HOME": str(tmp_path / "home")}
    script = "from langdec import tracking; tracking.configure(); tracking.experiment_id('race')"
    procs = [subprocess.Popen([sys.executable, "-c", script], env=env, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    assert all(code == 0 for code, _ in results), [err[-800:] for _, err in results]


@pytest.mark.slow
def test_two_processes_training_the_same_job_share_nothing(tmp_path, smoke_profile):
    """The hostile tester's two ladders, at the size of one job: one trains, the other waits and reuses."""
    from mlflow.tracking import MlflowClient

    home = Path(os.environ["LANGDEC_HOME"])  # the shared smoke model lives there
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "LANGDEC_HOME": str(home)}
    argv = [sys.executable, "-m", "langdec.cli", "--quiet", "train", "--condition", "2", "--lang", "es", "--phase", "race"]
    procs = [subprocess.Popen(argv, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-1500:] for _, err in outs]
    reused = [json.loads(out)["reused"] for out, _ in outs]
    assert sorted(reused) == [False, True]
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = client.get_experiment_by_name("race-smoke")
    train_runs = client.search_runs([exp.experiment_id], "tags.`langdec.stage` = 'train'")
    assert [r.info.status for r in train_runs] == ["FINISHED"]
    versions = client.search_model_versions("name = 'langdec-smoke-adapters'")
    assert len(versions) == 1 and versions[0].run_id == train_runs[0].info.run_id
    checkpoints = home / "checkpoints" / "race-smoke"
    assert not checkpoints.exists() or not any(checkpoints.iterdir())  # kept only while a run can resume
