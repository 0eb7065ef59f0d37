"""The sandbox stops hostile candidates, scores them as failures, and changes nothing outside.

Each test runs a real candidate in bubblewrap with the real limits; the host side
checks what the candidate tried to touch.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from langdec.core.errors import LangdecError
from langdec.evaluation import code
from langdec.evaluation.sandbox import BASE_UID, Limits, Program, Sandbox, bwrap, python_command


def _sandbox_problem() -> str | None:
    try:
        bwrap()
    except LangdecError as exc:
        return str(exc)
    return None


# `make test` installs bubblewrap and a JDK (make system-deps); elsewhere these tests say what is missing
pytestmark = pytest.mark.skipif(_sandbox_problem() is not None, reason=f"no sandbox: {_sandbox_problem()}")
needs_java = pytest.mark.skipif(
    not __import__("shutil").which("javac"), reason="no javac (apt-get install default-jdk-headless)"
)


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture()
def canary(tmp_path):
    folder = tmp_path / "users-files"
    (folder / "sub").mkdir(parents=True)
    (folder / "notes.txt").write_text("precious")
    (folder / "sub" / "data.csv").write_text("a,b\n1,2\n")
    return folder


@pytest.fixture()
def sandbox():
    with Sandbox(Limits(wall_seconds=5, cpu_seconds=3, memory_mb=256, processes=32), slots=2) as box:
        yield box


def _run(box: Sandbox, source: str):
    return box.run(Program({"main.py": source}, [python_command("main.py")]))


def test_a_correct_candidate_passes_and_sees_only_its_directory(sandbox, canary):
    result = _run(
        sandbox,
        f"import os\nprint(sorted(os.listdir('/')))\nprint(os.path.exists({str(canary)!r}))\n"
        "print(os.path.exists(os.path.expanduser('~/.bashrc')))\n",
    )
    assert result.passed, result.stderr
    listing, sees_canary, sees_home = result.stdout.splitlines()
    assert "sandbox" in listing and "root" not in listing and "home" not in listing and "work" not in listing
    assert sees_canary == "False" and sees_home == "False"


def test_deleting_files_fails_and_nothing_outside_changes(sandbox, canary, tmp_path):
    before = _snapshot(canary)
    project_file = Path(__file__)
    result = _run(
        sandbox,
        f"""
import os, shutil
shutil.rmtree({str(canary)!r}, ignore_errors=True)
for path in ({str(project_file)!r}, '/etc/hostname', '/usr/bin/env'):
    try:
        os.remove(path)
    except OSError:
        pass
open('/etc/langdec-was-here', 'w').write('x')
""",
    )
    assert not result.passed and result.status == "failed"
    assert "Read-only file system" in result.stderr or "Permission denied" in result.stderr
    assert _snapshot(canary) == before and project_file.exists()
    assert Path("/usr/bin/env").exists() and not Path("/etc/langdec-was-here").exists()
    assert list(sandbox.root.iterdir()) == []  # its own directory is gone too


@pytest.mark.slow
def test_opening_a_socket_fails(sandbox):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.settimeout(0.1)
    port = listener.getsockname()[1]
    accepted = []

    def accept():
        deadline = time.time() + 4
        while time.time() < deadline:
            try:
                accepted.append(listener.accept())
            except OSError:
                continue

    thread = threading.Thread(target=accept)
    thread.start()
    result = _run(
        sandbox,
        f"""
import socket
s = socket.create_connection(('127.0.0.1', {port}), timeout=2)
s.sendall(b'leak')
""",
    )
    thread.join()
    listener.close()
    assert not result.passed and ("Network is unreachable" in result.stderr or "refused" in result.stderr.lower())
    assert accepted == []  # nothing reached the host
    dns = _run(sandbox, "import socket\nsocket.getaddrinfo('pypi.org', 443)\n")
    assert not dns.passed


@pytest.mark.slow
def test_a_fork_bomb_is_stopped_and_leaves_no_process(sandbox):
    start = time.perf_counter()
    result = _run(sandbox, "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n")
    assert not result.passed and result.status in ("timeout", "killed", "failed")
    assert time.perf_counter() - start < 15
    if os.geteuid() == 0:
        from langdec.evaluation.sandbox import _pids_of

        # live processes only: this container's init never reaps orphaned zombies, which are dead anyway
        assert not [u for u in range(BASE_UID, BASE_UID + 16) if _pids_of(u)]


def test_unbounded_allocation_is_stopped(sandbox):
    result = _run(sandbox, "blocks = []\nwhile True:\n    blocks.append(bytearray(50 * 2**20))\n")
    assert not result.passed and "MemoryError" in result.stderr


@pytest.mark.slow
def test_endless_loops_and_output_floods_are_cut(sandbox):
    loop = _run(sandbox, "while True:\n    pass\n")
    assert loop.status in ("timeout", "killed") and not loop.passed
    flood = _run(sandbox, "while True:\n    print('x' * 1000)\n")
    assert not flood.passed and len(flood.stdout) <= sandbox.limits.output_chars + 100
    assert "truncated" in flood.stdout


def test_pass_at_k_estimator():
    assert code.pass_at_k(10, 0, 1) == 0.0 and code.pass_at_k(10, 10, 1) == 1.0
    assert code.pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert code.pass_at_k(5, 1, 2) == pytest.approx(1 - (4 * 3) / (5 * 4))
    assert code.pass_at_k(3, 2, 2) == 1.0  # n - c < k: every k-subset holds a correct one


def test_benchmark_references_pass_and_wrong_answers_fail():
    bench = code.get("mbpp")
    tasks = code.load("mbpp", source="fixtures")
    assert [t.id for t in tasks] == ["11", "12", "13", "14"]  # the test split, by MBPP's task-id ranges
    assert len(code.load("mbpp", source="fixtures", split="train")) == 10
    settings = code.CodeSettings(samples=2, ks=(1, 2))
    metrics, records = code.execute(
        bench, tasks, [[t.reference, "def unrelated():\n    return 1"] for t in tasks], settings
    )
    assert metrics["code.mbpp.pass_at_1"] == pytest.approx(0.5) and metrics["code.mbpp.pass_at_2"] == 1.0
    assert {r["status"] for r in records if not r["passed"]} == {"failed"} and "NameError" in records[1]["stderr"]
    assert code.truncate("    return x\n[DONE]\nmore", bench.stop) == "    return x"


@needs_java
def test_java_candidates_compile_and_run_with_assertions_enabled():
    bench = code.get("mbpp_java")
    tasks = code.load("mbpp_java", source="fixtures")
    body = "        long s = 0;\n        for (long n : nums) s += n * n;\n        return s;"
    metrics, records = code.execute(
        bench, tasks[:1], [[body, "        return 0;", "        return s"]], code.CodeSettings(samples=3, ks=(1,))
    )
    assert [r["status"] for r in records] == ["passed", "failed", "failed"]
    assert (
        "AssertionError" in records[1]["stderr"] and "error" in records[2]["stderr"]
    )  # a failed assert; a compile error
    assert metrics["code.mbpp_java.pass_at_1"] == pytest.approx(1 / 3)


def test_no_secret_of_the_caller_reaches_the_candidate(sandbox, monkeypatch):
    canary = "sk-langdec-canary-4f1e9b"
    monkeypatch.setenv("OPENAI_API_KEY", canary)
    monkeypatch.setenv("CO_API_KEY", canary)
    result = _run(
        sandbox,
        "import os\n"
        "print(dict(os.environ))\n"
        "for pid in os.listdir('/proc'):\n"
        "    if pid.isdigit():\n"
        "        try: print(pid, open(f'/proc/{pid}/environ', 'rb').read())\n"
        "        except OSError as e: print(pid, e)\n",
    )
    assert result.passed, result.stderr
    assert "/proc/1" not in result.stdout and "1 b'" in result.stdout  # PID 1 (bubblewrap) was read...
    assert canary not in result.stdout + result.stderr  # ...and holds no key


def test_every_writable_filesystem_is_capped(tmp_path):
    cap_mb = 4
    fill = (
        "import os, sys\n"
        "total = {}\n"
        "for where in ('/dev/shm', '/tmp', '.'):\n"
        "    total[where] = 0\n"
        "    for n in range(64):\n"
        "        try:\n"
        "            with open(os.path.join(where, f'f{n}'), 'wb') as f: f.write(b'x' * 1024 * 1024)\n"
        "            total[where] += 1024 * 1024\n"
        "        except OSError:\n"
        "            break\n"
        "try:\n"
        "    open('/dev/extra', 'wb').write(b'x')\n"
        "    total['/dev'] = 1\n"
        "except OSError:\n"
        "    total['/dev'] = 0\n"
        "print(total)\n"
    )
    with Sandbox(Limits(wall_seconds=10, disk_mb=cap_mb), slots=1) as box:
        result = box.run(Program({"main.py": fill}, [python_command("main.py")]))
    assert result.passed, result.stderr
    written = eval(result.stdout)  # a dict literal the candidate printed
    assert all(0 < written[w] <= cap_mb * 1024 * 1024 for w in ("/dev/shm", "/tmp", "."))
    assert written["/dev"] == 0


# ---------------------------------------------------------------------- hostile cases: the slot's whole memory, a candidate exiting early
@pytest.mark.slow
def test_a_candidate_filling_tmpfs_with_inodes_or_xattrs_hits_the_slot_bound():
    from langdec.evaluation import cgroup
    from langdec.evaluation.sandbox import Limits, Program, Sandbox, python_command

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
        assert (
            sandbox.run(Program({"m.py": "print('fine')\n"}, [python_command("m.py")])).status == "passed"
        )  # the slot is reusable
    assert not list(cgroup.base()[0].glob("langdec-sandbox-*"))  # every group removed


def test_a_candidate_that_exits_before_its_tests_fails():
    from langdec.evaluation import code
    from langdec.evaluation.sandbox import Sandbox

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
