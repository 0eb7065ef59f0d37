"""Machine-translated test data: SIB-200's English sentences translated by the condition-5 backend (the local
stand-in on the smoke profile, through the real OpenAI client), scored beside the human-translated split."""

from __future__ import annotations

import mlflow
import pytest

from langdec.analysis import report
from langdec.core import config, languages
from langdec.core.errors import LangdecError
from langdec.evaluation import benchmarks, machine_translation, stage
from langdec.evaluation import records as items
from langdec.tracking import runs as tracking


def test_the_copy_is_the_english_items_translated(langdec_home):
    profile = config.load_profile("smoke")
    english = benchmarks.load("sib200", "en")
    copy = machine_translation.items("sib200_mt", "ur", profile, source="fixtures")
    assert [c.id for c in copy] == [e.id for e in english] and [c.label for c in copy] == [e.label for e in english]
    assert all(c.fields["text"] != e.fields["text"] for c, e in zip(copy, english))
    assert all(languages.target_script_share(c.fields["text"], "ur") > 0.3 for c in copy)  # Urdu script now
    human = benchmarks.load("sib200", "ur")
    assert [c.fields["text"] for c in copy] != [h.fields["text"] for h in human]  # a copy, not the Flores split
    with pytest.raises(LangdecError, match="sib200_mt is machine-translated"):
        benchmarks.load("sib200_mt", "ur")
    assert benchmarks.get("sib200_mt").languages == ["zh", "es", "ur"]


@pytest.mark.slow
def test_both_are_scored_in_one_run_and_the_report_gives_the_gap(store, smoke_profile):
    tracking.configure()
    profile = config.load_profile(
        "smoke", ["evaluation.benchmarks=[sib200, sib200_mt]", "evaluation.loglikelihood=false"]
    )
    result = stage.run(
        profile,
        config.condition("baseline"),
        config.Job("baseline", None, "5k", 42),
        phase="phase-3",
        experiment="phase-3-smoke",
        data_languages=["en", "ur"],
        progress=False,
    )
    keys = set(result.metrics)
    assert "gen.refined.template1.sib200.data:ur.instr:ur.acc" in keys
    assert "gen.refined.template1.sib200_mt.data:ur.instr:ur.acc" in keys
    assert not any(".sib200_mt.data:en." in k for k in keys)  # English is the copy's source, not a copy
    assert mlflow.get_run(result.run_id).data.params["machine_translation"]
    stored = items.read(result.run_id).to_pandas().assign(group="baseline", seed="42", tier="")
    rows = report.variant_gaps(report.build(report.Frames.from_gen(stored)))
    assert [(r["variant"], r["kind"], r["data"]) for r in rows] == [("sib200_mt", "machine-translated", "ur")]
    assert rows[0]["gap"] == pytest.approx(rows[0]["own"] - rows[0]["variant_acc"])
