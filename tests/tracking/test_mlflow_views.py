"""The MLflow UI's saved views: declared in experiments/views.yaml, written as the experiment tags MLflow's
front end reads, rebuilt from the runs in a real SQLite store."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from langdec import cli
from langdec.core.errors import LangdecError
from langdec.tracking import runs as tracking
from langdec.tracking import views as mlflow_views


def _fill(experiment: str) -> dict[str, str]:
    """A ladder run with a training run and two evaluation runs beneath it, as a ladder leaves them."""
    tracking.configure()
    exp = tracking.experiment_id(experiment)
    ids = {}
    with mlflow.start_run(experiment_id=exp, run_name="ladder-smoke", tags={"langdec.stage": "ladder"}) as ladder:
        ids["ladder"] = ladder.info.run_id
        with mlflow.start_run(
            experiment_id=exp,
            run_name="cond2-zh-5k-s42",
            nested=True,
            tags={"langdec.stage": "train", "condition": "2", "lang": "zh"},
        ) as train:
            mlflow.log_metrics({"train_loss": 3.2, "tokens_per_s_overall": 900.0})
            ids["train"] = train.info.run_id
        for cond, lang, value in (("baseline", "", 0.25), ("2", "zh", 0.5)):
            with mlflow.start_run(
                experiment_id=exp,
                run_name=f"cond{cond}-{lang}-eval",
                nested=True,
                tags={"langdec.stage": "evaluate", "condition": cond, "lang": lang, "tier": "5k"},
            ) as ev:
                mlflow.log_metrics(
                    {"summary.xnli.zh.refined": value, "summary.sib200.en.ll": value, "gen.strict.x.acc": value}
                )
                ids[f"eval-{cond}"] = ev.info.run_id
    return {"experiment_id": exp, **ids}


def _saved(experiment_id: str, view_id: str) -> tuple[dict, dict]:
    envelope = json.loads(MlflowClient().get_experiment(experiment_id).tags[mlflow_views.TAG_PREFIX + view_id])
    return envelope, json.loads(envelope["state"])


def test_the_shipped_views_load():
    views = {v.id: v for v in mlflow_views.load()}
    assert set(views) == {"langdec-conditions", "langdec-runs", "langdec-training"}
    assert views["langdec-conditions"].group_by == ["condition", "lang"]


def test_views_are_written_as_the_ui_reads_them(store):
    made = _fill("phase-3-smoke")
    exp = made["experiment_id"]
    assert mlflow_views.publish(exp)["langdec-conditions"] == "langdec: conditions at a glance"
    envelope, state = _saved(exp, "langdec-conditions")
    # the saved-view envelope: a name for the Views menu, times in ms, the state as a JSON string
    assert envelope["name"] == "langdec: conditions at a glance" and isinstance(envelope["createdAt"], int)
    # metric:summary.* expands to the names the runs carry, sorted; per-cell metrics stay out
    assert state["selectedColumns"] == [
        "tags.`tier`",
        "tags.`arm`",
        "metrics.`summary.sib200.en.ll`",
        "metrics.`summary.xnli.zh.refined`",
    ]
    assert state["columnOrder"] == ["attributes.`Run Name`", "runDateAndNestInfo", *state["selectedColumns"]]
    # each header readable: 24 px + 7 px per character of its name, from 80 to 260
    assert state["columnWidths"]["attributes.`Run Name`"] == 340 and state["columnWidths"]["runDateAndNestInfo"] == 130
    assert state["columnWidths"]["metrics.`summary.xnli.zh.refined`"] == 24 + 7 * len("summary.xnli.zh.refined")
    assert state["columnWidths"]["tags.`arm`"] == 80
    assert state["groupBy"] == {
        "aggregateFunction": "average",
        "groupByKeys": [{"mode": "tag", "groupByData": "condition"}, {"mode": "tag", "groupByData": "lang"}],
    }
    # sorted by run name, the UI lists runs flat (it folds them under their ladder run only when sorting by date)
    assert state["orderByKey"] == "tags.`mlflow.runName`" and state["orderByAsc"] is True
    # the view's filter is valid MLflow search syntax and finds exactly the evaluation runs
    found = MlflowClient().search_runs([exp], filter_string=state["searchFilter"])
    assert {r.info.run_id for r in found} == {made["eval-baseline"], made["eval-2"]}

    _, every = _saved(exp, "langdec-runs")
    assert every["groupBy"] is None and every["searchFilter"] == "" and "runsExpanded" not in every
    _, training = _saved(exp, "langdec-training")
    assert "metrics.`train_loss`" in training["selectedColumns"] and "params.`train.lr`" in training["selectedColumns"]


def test_publishing_again_keeps_the_creation_time_and_sees_new_runs(store):
    made = _fill("phase-3-smoke")
    exp = made["experiment_id"]
    mlflow_views.publish(exp)
    first, _ = _saved(exp, "langdec-conditions")
    with mlflow.start_run(experiment_id=exp, tags={"langdec.stage": "evaluate", "condition": "1"}):
        mlflow.log_metric("summary.belebele.en.strict", 0.5)
    mlflow_views.publish(exp)
    again, state = _saved(exp, "langdec-conditions")
    assert again["createdAt"] == first["createdAt"] and again["updatedAt"] >= first["updatedAt"]
    assert "metrics.`summary.belebele.en.strict`" in state["selectedColumns"]


def test_a_bad_views_file_is_one_clear_error(tmp_path):
    path = tmp_path / "views.yaml"
    path.write_text("views:\n  mine:\n    name: mine\n    colums: [tag:x]\n")
    with pytest.raises(LangdecError, match=r"views.yaml: views.mine: unknown key 'colums'; valid keys: .*columns"):
        mlflow_views.load(path)
    path.write_text("views:\n  mine:\n    name: mine\n    columns: [label:x]\n")
    with pytest.raises(
        LangdecError, match=r"views.mine: 'label:x' is not KIND:NAME with KIND one of tag, param, metric, attribute"
    ):
        mlflow_views.load(path)
    path.write_text("views:\n  'my view':\n    name: mine\n")
    with pytest.raises(LangdecError, match="a view id is letters, digits, - and _"):
        mlflow_views.load(path)


def test_langdec_ui_prints_a_link_per_view_for_langdecs_experiments_only(store, capsys):
    made = _fill("phase-3-smoke")
    MlflowClient().create_experiment("someone-elses")
    assert cli.main(["ui", "--no-serve", "--port", "5123"]) == 0
    out = capsys.readouterr().out
    base = f"http://127.0.0.1:5123/#/experiments/{made['experiment_id']}/runs?workflowType=machine_learning"
    assert f"  langdec-conditions     {base}&viewStateShareKey=langdec-conditions" in out
    assert f"  runs                   {base}\n" in out
    assert "someone-elses" not in out and "Default" not in out
    with pytest.raises(SystemExit):
        cli.parser().parse_args(["ui", "--port", "x"])
    assert cli.main(["ui", "--no-serve", "--experiment", "nope"]) == 2
    assert "--experiment nope: no such experiment" in capsys.readouterr().err


def test_a_report_refreshes_the_views(store, tmp_path):
    from langdec.analysis import report

    made = _fill("phase-3-smoke")
    report.run_stage("phase-3-smoke", tmp_path / "r")
    _, state = _saved(made["experiment_id"], "langdec-conditions")
    assert "metrics.`summary.xnli.zh.refined`" in state["selectedColumns"]


def test_a_mistake_in_views_yaml_never_fails_a_report(store, tmp_path, monkeypatch, capsys):
    from langdec.analysis import report

    bad = tmp_path / "views.yaml"
    bad.write_text("views:\n  mine:\n    name: mine\n    colums: [tag:x]\n")
    monkeypatch.setattr(mlflow_views, "views_file", lambda: bad)
    _fill("phase-3-smoke")
    report.run_stage("phase-3-smoke", tmp_path / "r")  # the report is written and logged; the views are not
    assert (tmp_path / "r" / "report.md").is_file()
    out = capsys.readouterr().out
    assert "the MLflow UI views of phase-3-smoke were not refreshed (" in out and "unknown key 'colums'" in out
    assert cli.main(["ui", "--no-serve"]) == 2  # where the views are the point, the mistake is an error
    assert "unknown key 'colums'" in capsys.readouterr().err


# ---------------------------------------------------------------------- hostile cases: no secret on a command line
def test_the_ui_passes_the_store_through_the_environment_not_the_command_line(tmp_path, monkeypatch):
    store = tmp_path / "hunter2-store"
    store.mkdir()
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{store / 'mlflow.db'}", "MLFLOW_DISABLE_TELEMETRY": "true"}
    from langdec.orchestration.localcluster import free_port

    proc = subprocess.Popen(
        [sys.executable, "-m", "langdec.cli", "--quiet", "ui", "--port", str(free_port())],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
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
