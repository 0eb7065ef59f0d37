"""The isotropy probe: both measures against hand computations, then `langdec probe isotropy` on the smoke
model, for the base model and for an adapter, into a real MLflow store."""

from __future__ import annotations

import io
import json
import math
from contextlib import redirect_stdout

import mlflow
import pytest
import torch

from langdec import cli
from langdec.evaluation import isotropy


def test_isoscore_by_hand():
    n = 4
    assert isotropy.isoscore(torch.cat([torch.eye(n), -torch.eye(n)])) == pytest.approx(1.0)  # every direction alike
    line = torch.zeros(10, n)
    line[:, 0] = torch.arange(10.0)
    assert isotropy.isoscore(line) == pytest.approx(0.0)  # one dimension carries everything
    # variances 8/3 and 2/3 (points (+-2, 0), (0, +-1)): the paper's steps written out for n = 2
    points = torch.tensor([[2.0, 0], [-2, 0], [0, 1], [0, -1]])
    scaled = [math.sqrt(2) * v / math.hypot(8 / 3, 2 / 3) for v in (8 / 3, 2 / 3)]
    delta = math.hypot(scaled[0] - 1, scaled[1] - 1) / math.sqrt(2 * (2 - math.sqrt(2)))
    phi = (2 - delta**2 * (2 - math.sqrt(2))) ** 2 / 4
    assert isotropy.isoscore(points) == pytest.approx((2 * phi - 1) / (2 - 1)) == pytest.approx(0.4706, abs=1e-4)


def test_average_cosine_by_hand():
    assert isotropy.average_cosine(torch.eye(2), pairs=50) == pytest.approx(0.0)  # every pair is orthogonal
    assert isotropy.average_cosine(torch.tensor([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]), pairs=50) == pytest.approx(1.0)
    assert math.isnan(isotropy.average_cosine(torch.ones(1, 3)))


def _probe(*args: str) -> dict:
    out = io.StringIO()
    with redirect_stdout(out):
        assert cli.main(["--quiet", "probe", "isotropy", "--languages", "en,ur", "--tokens", "200", *args]) == 0
    return json.loads(out.getvalue())


@pytest.mark.slow
def test_the_probe_stage_for_the_base_model_and_an_adapter(store, smoke_profile):
    base = _probe("--condition", "baseline")
    assert base["adapter_run"] is None and set(base["last_layer"]) == {"en", "ur"}
    run = mlflow.get_run(base["run_id"])
    keys = {k for k in run.data.metrics if k.startswith("isotropy.")}
    layers = smoke_profile.model.smoke["num_hidden_layers"] + 1  # the embeddings, then every layer
    assert len(keys) == 2 * layers * 2
    assert all(-1 <= run.data.metrics[k] <= 1 for k in keys)
    assert "isotropy.png" in {a.path for a in mlflow.MlflowClient().list_artifacts(base["run_id"])}
    assert _probe("--condition", "baseline")["reused"] is True
    out = io.StringIO()
    with redirect_stdout(out):
        assert cli.main(["--quiet", "train", "--condition", "2", "--lang", "es", "--set", "training.max_steps=1"]) == 0
    trained = json.loads(out.getvalue())["run_id"]
    adapted = _probe("--condition", "2", "--lang", "es", "--set", "training.max_steps=1")
    assert adapted["adapter_run"] == trained and adapted["run_id"] != base["run_id"]


def test_a_ladder_with_probes_runs_them_after_each_evaluation(store, smoke_profile, tmp_path):
    from langdec.orchestration import ladder
    from langdec.tracking import runs as tracking

    path = tmp_path / "probed.yaml"
    path.write_text(
        "name: probed\nprofile: smoke\nphase: probed\ntiers: [5k]\nseeds: [42]\ndata_languages: [en, ur]\n"
        "probes: [isotropy]\noverrides: ['evaluation.benchmarks=[sib200]', evaluation.loglikelihood=false]\n"
        "runs:\n  - condition: baseline\n"
    )
    result = ladder.run(path, progress=False, echo=lambda *_: None)
    assert not result.failed
    runs = mlflow.MlflowClient().search_runs([tracking.experiment_id("probed-smoke")], "tags.`langdec.stage` = 'probe'")
    assert [r.info.run_name for r in runs] == ["baseline-isotropy"]
    assert any(k.startswith("isotropy.ur.layer") for k in runs[0].data.metrics)
