"""A sweep shared by several processes through PostgreSQL (the pgserver wheel), with a real `mlflow server`:
the trial total counts every process's trials, and a trial whose process died is failed and run again."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

pytest.importorskip("pgserver")
optuna = pytest.importorskip("optuna")

from langdec.orchestration import localcluster  # noqa: E402

SPEC = """name: {name}
profile: smoke
phase: phase-{name}
job: {{condition: "1", tier: 5k, seed: 42}}
trials: 3
eval_steps: 4
pruner: {{type: none}}
heartbeat_seconds: 1
grace_seconds: 4
overrides: [training.max_steps={steps}, training.save_steps=1000]
space:
  training.lr: {{type: float, low: 1.0e-3, high: 1.0e-2, log: true}}
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, smoke_profile, langdec_home):
    from langdec.data import corpus

    corpus.build_tier(smoke_profile, "5k", 42, progress=False)
    with localcluster.local_cluster(tmp_path_factory.mktemp("sweeps")) as made:
        yield made


def _sweep(cluster, path) -> list[str]:
    return [sys.executable, "-m", "langdec.cli", "--quiet", "sweep", str(path), "--storage", cluster.optuna]


def _trials(cluster, name):
    return optuna.load_study(study_name=f"sweep-{name}", storage=cluster.optuna).get_trials(deepcopy=False)


@pytest.mark.slow
def test_two_processes_run_the_sweeps_trials_once_in_all(cluster, tmp_path):
    spec = tmp_path / "shared.yaml"
    spec.write_text(SPEC.format(name="shared", steps=8))
    procs = [
        subprocess.Popen(
            _sweep(cluster, spec),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=localcluster.client_env(cluster.tracking),
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    done = [t for t in _trials(cluster, "shared") if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(done) == 3  # not 3 per process
    assert all(t.state.name in ("COMPLETE", "PRUNED", "FAIL") for t in _trials(cluster, "shared"))
    assert all(t.user_attrs.get("not_run") for t in _trials(cluster, "shared") if t.state.name == "FAIL")


@pytest.mark.slow
def test_a_trial_whose_process_died_is_failed_after_its_grace_and_run_again(cluster, tmp_path):
    spec = tmp_path / "dies.yaml"
    spec.write_text(SPEC.format(name="dies", steps=200))
    victim = subprocess.Popen(
        _sweep(cluster, spec),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=localcluster.client_env(cluster.tracking),
    )
    deadline = time.time() + 300
    while True:  # wait until it trains a trial, then take its machine away
        try:
            running = [t for t in _trials(cluster, "dies") if t.state.name == "RUNNING"]
        except KeyError:  # the study is not created yet
            running = []
        if running:
            break
        assert time.time() < deadline and victim.poll() is None
        time.sleep(0.5)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    lost = running[0].number
    spec.write_text(SPEC.format(name="dies", steps=8))  # the rest quickly; the settings searched are the same
    out = subprocess.run(
        _sweep(cluster, spec),
        capture_output=True,
        text=True,
        env=localcluster.client_env(cluster.tracking),
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    trials = _trials(cluster, "dies")
    assert trials[lost].state.name == "FAIL"  # stale after its grace: failed, and a copy of it queued
    again = [t for t in trials if t.system_attrs.get("failed_trial") == lost]
    assert len(again) == 1 and again[0].state.name == "COMPLETE" and again[0].params == trials[lost].params
    assert len([t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]) == 3


@pytest.mark.slow
def test_machines_that_start_a_sweep_on_a_new_database_at_once_all_open_it(cluster):
    """Each creates Optuna's tables on a new database; on PostgreSQL all but one lose that race (a unique violation
    on the enum type `studydirection`) and must open the tables the winner made."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(cluster.optuna, isolation_level="AUTOCOMMIT")
    opened = []
    for round_ in range(3):  # the race is lost only sometimes: three new databases
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text(f"CREATE DATABASE fresh{round_}"))
        url = cluster.optuna.replace("/optuna?", f"/fresh{round_}?")
        code = (
            "import sys, types; from langdec.orchestration import sweep; "
            "sweep.open_storage(sys.argv[1], types.SimpleNamespace(heartbeat_seconds=1, grace_seconds=4, max_retries=1)); "
            "print('opened')"
        )
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", code, url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            for _ in range(4)
        ]
        outs = [p.communicate(timeout=120) for p in procs]
        assert all(p.returncode == 0 for p in procs), [o[1][-1500:] for o in outs]
        opened += [o[0].strip() for o in outs]
    engine.dispose()
    assert opened == ["opened"] * 12
