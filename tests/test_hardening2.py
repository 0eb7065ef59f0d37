"""The second hostile round (issue 29), each case probed the way it was broken: no credential in a name or on a
command line, no file reached through a link, the sandbox bounded in memory as a whole, promotion and
registration under one lock, and every bad input one line with exit 2 (none of them exit 0 with a wrong result)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from langdec import cli, config, registry

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = ROOT / "tests" / "data" / "published" / "experiments" / "phase3" / "conditions"
GOOD_RESULTS = json.loads((PUBLISHED / "baseline/seednone/baseline_seednone_results_template1.json").read_text())


def _main(capsys, *argv: str) -> tuple[int, str]:
    code = cli.main(["--quiet", *argv])
    return code, capsys.readouterr().err


def _one_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# ---------------------------------------------------------------------- 1. a secret in an override never names anything
def test_a_password_in_an_override_reaches_no_name_tag_file_or_lock(store, tmp_path, capsys, langdec_home, smoke_profile):
    url = "http://user:hunter2@127.0.0.1:9/v1?token=Qsecret"
    started = time.time() - 1
    code = cli.main(["--quiet", "train", "--condition", "2", "--lang", "zh", "--set", f"translation.base_url={url}"])
    out = capsys.readouterr().out
    assert code == 0, out
    name = config.variant_name([f"translation.base_url={url}"])
    assert name.startswith("base_url-") and "hunter2" not in name and "user" not in name
    assert config.variant_name(["translation.api_key=sk-live-123"]) == "api_key-set"
    # nothing anywhere under the store, its artifacts or langdec's home holds the password or the token
    found = []
    for folder in (tmp_path, langdec_home):
        for path in folder.rglob("*"):
            if "hunter2" in path.name or "Qsecret" in path.name:
                found.append(str(path))
            elif path.is_file() and path.stat().st_mtime >= started and path.stat().st_size < 50_000_000:  # what this run wrote
                data = path.read_bytes()
                if b"hunter2" in data or b"Qsecret" in data:
                    found.append(str(path))
    assert found == []
    assert "hunter2" not in out and "Qsecret" not in out


def test_a_raw_at_sign_in_a_password_is_hidden_whole():
    from langdec.urls import without_secrets

    assert without_secrets("postgresql://user:p@ss@db:5432/mlflow?sslmode=require") == "postgresql://user:***@db:5432/mlflow"
    assert without_secrets("run --storage postgresql://u:a@b@c@h/d now") == "run --storage postgresql://u:***@h/d now"


def test_the_ui_passes_the_store_through_the_environment_not_the_command_line(tmp_path, monkeypatch):
    store = tmp_path / "hunter2-store"
    store.mkdir()
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{store / 'mlflow.db'}", "MLFLOW_DISABLE_TELEMETRY": "true"}
    from langdec.localcluster import free_port

    proc = subprocess.Popen([sys.executable, "-m", "langdec.cli", "--quiet", "ui", "--port", str(free_port())], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline, seen = time.monotonic() + 120, []
        while time.monotonic() < deadline and not any(b"mlflow" in c and b"server" in c for c in seen):
            seen = []
            for entry in Path("/proc").iterdir():
                if entry.name.isdigit():
                    try:
                        seen.append((entry / "cmdline").read_bytes())
                    except OSError:
                        pass
            time.sleep(0.3)
        servers = [c for c in seen if b"mlflow" in c and b"server" in c]
        assert servers, "the MLflow server did not start"
        assert all(b"hunter2" not in c for c in seen)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# ---------------------------------------------------------------------- 2. the sandbox's whole memory is bounded
def test_a_candidate_filling_tmpfs_with_inodes_or_xattrs_hits_the_slot_bound():
    from langdec import cgroup
    from langdec.sandbox import Limits, Program, Sandbox, python_command

    if shutil.which("bwrap") is None:
        pytest.skip("no bubblewrap (make system-deps installs it)")
    if cgroup.base() is None:
        pytest.skip("no memory cgroup can be made here (needs root or a delegated cgroup)")
    inodes = "import os\nfor i in range(3_000_000):\n    os.mkdir(f'/tmp/d{i}')\nprint('done')\n"
    xattrs = "import os\nopen('/tmp/f', 'w').close()\nfor i in range(8_000_000):\n    os.setxattr('/tmp/f', f'user.k{i}', b'x' * 200)\nprint('done')\n"
    with Sandbox(Limits(host_memory_mb=256), slots=1) as sandbox:
        for body in (inodes, xattrs):
            result = sandbox.run(Program({"m.py": body}, [python_command("m.py")]))
            assert result.status == "killed" and "done" not in result.stdout
        assert sandbox.run(Program({"m.py": "print('fine')\n"}, [python_command("m.py")])).status == "passed"  # the slot is reusable
    assert not list(cgroup.base()[0].glob("langdec-sandbox-*"))  # every group removed


# ---------------------------------------------------------------------- 3. links are never followed
def test_an_adapter_folder_with_a_link_is_refused(tmp_path, capsys, module_store):
    outside = tmp_path / "outside.txt"
    outside.write_text("private")
    adapter = tmp_path / "condition-2-zh-5k"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA"}))
    (adapter / "notes.txt").symlink_to(outside)
    code, err = _main(capsys, "evaluate", "--adapter", str(adapter))
    assert code == 2 and "symbolic link" in _one_error(err)


def test_an_hf_spec_cannot_climb_out_of_its_snapshot(capsys, module_store):
    code, err = _main(capsys, "evaluate", "--adapter", "hf:owner/repo:../../../etc")
    assert code == 2 and "a path inside it" in _one_error(err)


def test_a_symlinked_results_file_is_reported_and_never_followed(tmp_path, capsys, module_store):
    folder = tmp_path / "res" / "phase3" / "conditions" / "baseline" / "seednone"
    folder.mkdir(parents=True)
    outside = tmp_path / "elsewhere.json"
    outside.write_text(json.dumps(GOOD_RESULTS))
    (folder / "baseline_seednone_results_template1.json").symlink_to(outside)
    assert cli.main(["--quiet", "import-results", str(tmp_path / "res"), "--experiment", "links"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["imported"] == 0 and "a symbolic link; links are reported, never followed" in captured.err


# ---------------------------------------------------------------------- 4. promotion and registration share one lock
def test_promotion_waits_for_the_registered_models_lock(module_store, tmp_path):
    import threading

    lines: list[str] = []
    with registry.model_lock("langdec-smoke-adapters", "a registration in another process"):
        proc = subprocess.Popen([sys.executable, "-m", "langdec.cli", "--quiet", "promote", "--alias", "paper"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
        reader.start()
        deadline = time.monotonic() + 120
        while not any("waiting for" in line for line in lines) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        time.sleep(1)
        # blocked: it would otherwise promote from a registry that a supersede is changing
        assert proc.poll() is None and any("promoting langdec-smoke-adapters to paper" in line for line in lines)
    out = proc.stdout.read()
    assert proc.wait(timeout=120) == 0 and json.loads(out)["registered_model"] == "langdec-smoke-adapters"


# ---------------------------------------------------------------------- 7. no wrong result with exit 0
def _results_folder(tmp_path: Path, seed_folder: str = "seednone", body=None, name: str = "baseline") -> Path:
    folder = tmp_path / "res" / "phase3" / "conditions" / name / seed_folder
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{name}_{seed_folder}_results_template1.json"
    (folder / stem).write_text(body if isinstance(body, str) else json.dumps(GOOD_RESULTS if body is None else body))
    return tmp_path / "res"


@pytest.mark.parametrize("seed_folder", ["seed042", "seedfoo"])
def test_a_copy_under_another_seed_folder_is_refused_before_anything_is_imported(tmp_path, capsys, module_store, seed_folder):
    root = _results_folder(tmp_path, "seed42", GOOD_RESULTS, name="condition-2-zh-5k")
    _results_folder(tmp_path, seed_folder, GOOD_RESULTS, name="condition-2-zh-5k")
    code, err = _main(capsys, "import-results", str(root), "--experiment", f"copies-{seed_folder}")
    assert code == 2 and seed_folder in _one_error(err) and "seed<N>" in err
    from mlflow.tracking import MlflowClient

    assert MlflowClient().get_experiment_by_name(f"copies-{seed_folder}") is None


@pytest.mark.parametrize("body, message", [
    ({}, "no cell with rows"),
    ({**GOOD_RESULTS, "template1_sib200_data=ur_instr=ur": {"rows": 1}}, "holds a dict, not a list of rows"),
    ({"template1_sib200_data=qq_instr=ur": GOOD_RESULTS["template1_sib200_data=ur_instr=ur"]}, "has no data language 'qq'"),
    ([], "a results file is a JSON object of cells, this one is a list"),
    (3, "this one is a int"),
    ('{"template1_sib200', "not a UTF-8 JSON results file"),
    ({"template1_sib200_data=ur_instr=ur": [{"raw_output": "x", "gold": ["a"]}]}, "gold must be a label"),
])
def test_a_malformed_results_file_is_one_line_and_nothing_is_imported(tmp_path, capsys, module_store, body, message):
    root = _results_folder(tmp_path, body=body)
    code, err = _main(capsys, "import-results", str(root), "--experiment", "malformed")
    assert code == 2 and message in _one_error(err)


@pytest.mark.parametrize("summary, message", [([], "a summary file is a JSON object"), ("x", "not a UTF-8 JSON summary file"),
                                              ({"summary": {"template1_sib200_data=ur_instr=ur_acc": "high"}}, "not a rate between 0 and 1")])
def test_a_malformed_summary_is_one_line(tmp_path, capsys, module_store, summary, message):
    root = _results_folder(tmp_path)
    folder = root / "phase3" / "conditions" / "baseline" / "seednone"
    (folder / "baseline_seednone_summary_template1.json").write_text(summary if isinstance(summary, str) else json.dumps(summary))
    code, err = _main(capsys, "import-results", str(root), "--experiment", "bad-summary")
    assert code == 2 and message in _one_error(err)


def test_a_results_folder_where_a_file_should_be_is_one_line(tmp_path, capsys, module_store):
    folder = tmp_path / "res" / "phase3" / "conditions" / "baseline" / "seednone" / "baseline_seednone_results_template1.json"
    folder.mkdir(parents=True)
    code, err = _main(capsys, "import-results", str(tmp_path / "res"), "--experiment", "dir")
    assert code == 2 and "not a file" in _one_error(err)


@pytest.mark.parametrize("setting", ["evaluation.max_items=-2", "evaluation.batch_size=0", "evaluation.max_new_tokens=-3",
                                     "evaluation.max_prompt_tokens=0"])
def test_evaluation_settings_that_would_score_something_else_are_refused(capsys, module_store, setting):
    code, err = _main(capsys, "evaluate", "--condition", "baseline", "--set", setting)
    assert code == 2 and setting.split("=")[0] in _one_error(err)


def test_a_candidate_that_exits_before_its_tests_fails():
    from langdec.evaluation import code
    from langdec.sandbox import Sandbox

    if shutil.which("bwrap") is None:
        pytest.skip("no bubblewrap (make system-deps installs it)")
    bench = code.get("mbpp")
    task = code.load("mbpp", source="fixtures", limit=1)[0]
    right = "def sum_of_squares(xs):\n    return sum(x * x for x in xs)\n"
    with Sandbox(slots=1) as sandbox:
        for cheat in ("import sys; sys.exit(0)", "import os; os._exit(0)", right + "import sys\nsys.exit(0)\n"):
            result = sandbox.run(code.program(bench, task, cheat))
            assert result.returncode == 0 and result.status == "failed"
        assert sandbox.run(code.program(bench, task, right)).status == "passed"


def test_python_vocabulary_in_compatibility_characters_is_refused_not_left_untranslated(tmp_path):
    from langdec.transpiler import packs
    from langdec.transpiler.engine import TranspileError, english_keywords_left, translate

    with pytest.raises(TranspileError, match="compatibility-form"):
        translate("ｐｒｉｎｔ(1)\n", packs.load("zh"))
    assert translate("print(1)\n", packs.load("zh")).text != "print(1)\n" and english_keywords_left("x = 1\n") == 0


# ---------------------------------------------------------------------- 8. every bad input is one line and exit 2
@pytest.mark.parametrize("content, message", [
    (b"name: x\nprofile: smoke\nphase: phase-3\ntiers: []\nseeds: [42]\nruns:\n  - condition: 1\n", "tiers is empty"),
    (b"name: x\nprofile: smoke\nphase: phase-3\ntiers: [5k]\nseeds: []\nruns:\n  - condition: 1\n", "seeds is empty"),
    (b"name: x\nprofile: smoke\nruns:\n  - condition: \xff\xfe\n", "not UTF-8 text"),
    (b"name: x\nprofile: smoke\n1: 2\n", "unknown key 1"),
    (b"a: &a [l, l, l, l, l, l, l, l, l]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n",
     "take no anchors or aliases"),
])
def test_a_bad_ladder_file_is_one_line(tmp_path, capsys, module_store, content, message):
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    code, err = _main(capsys, "ladder", str(path))
    assert code == 2 and message in _one_error(err)


def test_a_ladder_path_that_is_a_folder_is_one_line(tmp_path, capsys, module_store):
    (tmp_path / "ladder.yaml").mkdir()
    code, err = _main(capsys, "ladder", str(tmp_path / "ladder.yaml"))
    assert code == 2 and "a folder" in _one_error(err)


def _rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize("rows, message", [
    ([{"file_path": "a.py", "code": "x = 1\n"}, {"file_path": "a.py/b.py", "code": "y = 2\n"}], "as a file and the other as a folder"),
    ([{"file_path": "a\u0000b.py", "code": "x = 1\n"}], "NUL character"),
])
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
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"] and sorted(p.name for p in work.iterdir()) == ["rows.jsonl"]


def test_reparse_of_an_unknown_run_is_one_line(capsys, module_store):
    code, err = _main(capsys, "reparse", "0123456789abcdef0123456789abcdef", "--extractor", "strict")
    assert code == 2 and "no run 0123456789abcdef0123456789abcdef" in _one_error(err)


@pytest.mark.parametrize("password", ["pw1234", "p@ss4321"])
def test_a_sweep_on_an_unreachable_database_is_one_line_without_its_password(capsys, module_store, password):
    code, err = _main(capsys, "sweep", str(ROOT / "experiments/sweeps/smoke_lr.yaml"), "--storage", f"postgresql://u:{password}@127.0.0.1:1/none")
    line = _one_error(err)
    # a raw '@' makes the driver read "ss4321@127.0.0.1" as the host, and say so: no piece of the password is shown
    assert code == 2 and "cannot open the Optuna storage" in line and not any(
        piece in err for piece in (password, *password.split("@")) if len(piece) >= 2)


@pytest.mark.parametrize("problem", ["truncated", "list", "pickle", "weights"])
def test_a_broken_adapter_folder_is_one_line(tmp_path, capsys, module_store, problem):
    adapter = tmp_path / "condition-2-zh-5k"
    adapter.mkdir()
    config_text = {"truncated": '{"peft_type": "LO', "list": "[]"}.get(problem, json.dumps({"peft_type": "LORA", "r": 8}))
    (adapter / "adapter_config.json").write_text(config_text)
    if problem == "pickle":
        (adapter / "adapter_model.bin").write_bytes(b"\x80\x04K\x01.")
    if problem == "weights":
        (adapter / "adapter_model.safetensors").write_bytes(b"not safetensors at all")
    code, err = _main(capsys, "evaluate", "--adapter", str(adapter))
    line = _one_error(err)
    assert code == 2 and {"truncated": "not a JSON file", "list": "peft_type", "pickle": "pickled weights can run code",
                          "weights": "not a readable safetensors file"}[problem] in line


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
