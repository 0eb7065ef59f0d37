"""Sweeps: an Optuna search whose trials are nested MLflow training runs, pruned on validation loss."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
from conftest import cli_exit, one_error_line
from mlflow.tracking import MlflowClient

pytest.importorskip("optuna")

from langdec.core.errors import LangdecError  # noqa: E402
from langdec.orchestration import sweep
from langdec.tracking import runs as tracking  # noqa: E402

SPEC = """name: {name}
profile: smoke
job: {{condition: "2", lang: es, tier: 5k, seed: 42}}
trials: 2
eval_steps: 2
pruner: {pruner}
overrides: [training.max_steps=4, training.save_steps=1000]
space:
  training.lr: {{type: float, low: 1.0e-3, high: 1.0e-2, log: true}}
"""


def _spec(tmp_path, name, pruner):
    path = tmp_path / f"{name}.yaml"
    path.write_text(SPEC.format(name=name, pruner=pruner))
    return path


@pytest.mark.slow
def test_trials_are_nested_runs_and_not_registered(store, smoke_profile, tmp_path):
    study, parent = sweep.run(_spec(tmp_path, "ok", "{type: none}"), echo=lambda *_: None)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE"]
    client = MlflowClient()
    children = client.search_runs([tracking.experiment_id("phase-3-smoke")], f"tags.`mlflow.parentRunId` = '{parent}'")
    trains = [r for r in children if r.data.tags.get("langdec.stage") == "train"]
    assert sorted(r.data.tags["optuna.trial"] for r in trains) == ["0", "1"]
    assert {float(r.data.params["train.lr"]) for r in trains} == {t.params["training.lr"] for t in study.trials}
    assert all("eval_loss" in r.data.metrics for r in trains)
    assert mlflow.get_run(parent).data.metrics["best_eval_loss"] == pytest.approx(study.best_value)
    assert client.search_model_versions("name = 'langdec-smoke-adapters'") == []


@pytest.mark.slow
def test_pruning_happens_inside_training(store, smoke_profile, tmp_path):
    study, _ = sweep.run(_spec(tmp_path, "prune", "{type: threshold, upper: 0.5}"), echo=lambda *_: None)
    assert [t.state.name for t in study.trials] == ["PRUNED", "PRUNED"]  # eval_loss ~8 > 0.5 at the first report
    runs = MlflowClient().search_runs([tracking.experiment_id("phase-3-smoke")], "tags.`langdec.pruned_at_step` = '2'")
    assert len(runs) == 2


def test_bad_sweep_files_fail_before_training(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(SPEC.format(name="bad", pruner="{type: none}").replace("training.lr", "training.learning_rate"))
    with pytest.raises(LangdecError, match="unknown key 'learning_rate'"):
        sweep.load(path)
    path.write_text(SPEC.format(name="bad", pruner="{type: genetic}"))
    with pytest.raises(LangdecError, match="unknown pruner 'genetic'"):
        sweep.make_pruner(sweep.load(path))


# ---------------------------------------------------------------------- hostile cases: an unreachable database
ROOT = Path(__file__).resolve().parents[2]


_main = cli_exit


_one_error = one_error_line


@pytest.mark.parametrize("password", ["pw1234", "p@ss4321"])
def test_a_sweep_on_an_unreachable_database_is_one_line_without_its_password(capsys, module_store, password):
    code, err = _main(
        capsys,
        "sweep",
        str(ROOT / "experiments/sweeps/smoke_lr.yaml"),
        "--storage",
        f"postgresql://u:{password}@127.0.0.1:1/none",
    )
    line = _one_error(err)
    # a raw '@' makes the driver read "ss4321@127.0.0.1" as the host, and say so: no piece of the password is shown
    assert (
        code == 2
        and "cannot open the Optuna storage" in line
        and not any(piece in err for piece in (password, *password.split("@")) if len(piece) >= 2)
    )
