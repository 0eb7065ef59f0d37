"""`evaluation.max_items` slices: a seeded sample stratified by gold label, the same items in every run of an
experiment, recorded in the run; `head` (the first N rows) only when asked. The study's full sets stay the
default. Real SIB-200 (sorted by category) where /work/shared/benchmarks is present, fixtures everywhere."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
from conftest import SHARED_BENCHMARKS

from langdec.core import config
from langdec.core.errors import LangdecError
from langdec.evaluation import benchmarks, machine_translation, stage
from langdec.evaluation import records as items_mod
from langdec.tracking import runs as tracking

REAL_SIB = SHARED_BENCHMARKS / "sib200" / "eng_Latn" / "test.tsv"
needs_real = pytest.mark.skipif(not REAL_SIB.is_file(), reason="no /work/shared/benchmarks (the real SIB-200 files)")


def ids(items: list[benchmarks.Item]) -> list[str]:
    return [item.id for item in items]


# --------------------------------------------------------------------------- allocation
def test_allocation_is_proportional_by_largest_remainder():
    # SIB-200's English test split: 14 of 204 -> quotas 3.50, 2.75, 2.06, 1.72, 1.51, 1.30, 1.17
    counts = {
        "science/technology": 51,
        "travel": 40,
        "politics": 30,
        "sports": 25,
        "health": 22,
        "entertainment": 19,
        "geography": 17,
    }
    assert benchmarks.allocate(counts, 14) == {
        "science/technology": 3,
        "travel": 3,
        "politics": 2,
        "sports": 2,
        "health": 2,
        "entertainment": 1,
        "geography": 1,
    }
    assert benchmarks.allocate(counts, 7) == dict.fromkeys(counts, 1)
    assert benchmarks.allocate(counts, 500) == counts  # more than there are: all of them
    for n in range(1, 205):
        out = benchmarks.allocate(counts, n)
        assert sum(out.values()) == n and all(0 <= out[l] <= counts[l] for l in counts)
        if n >= len(counts):
            assert min(out.values()) >= 1


def test_every_label_gets_one_when_n_allows_it():
    assert benchmarks.allocate({"a": 97, "b": 1, "c": 1, "d": 1}, 4) == {"a": 1, "b": 1, "c": 1, "d": 1}
    assert benchmarks.allocate({"a": 97, "b": 1, "c": 1, "d": 1}, 6) == {"a": 3, "b": 1, "c": 1, "d": 1}
    assert benchmarks.allocate({"a": 100, "b": 1, "c": 1}, 2) == {
        "a": 2,
        "b": 0,
        "c": 0,
    }  # fewer than the labels: by share


# --------------------------------------------------------------------------- fixtures (no shared/ needed)
FIXTURE_COUNTS = {
    "science/technology": 16,
    "travel": 12,
    "politics": 9,
    "sports": 8,
    "health": 7,
    "entertainment": 6,
    "geography": 5,
}


def _sorted_by_label(folder: Path) -> Path:
    """A SIB-200-layout file sorted by category, as the real one is: 7 labels, 16 down to 5 rows each."""
    rows = ["index_id\tcategory\ttext"] + [
        f"{100 * k + i}\t{label}\tsentence {i} about {label}"
        for k, (label, n) in enumerate(FIXTURE_COUNTS.items())
        for i in range(n)
    ]
    path = folder / "sib200" / "eng_Latn" / "test.tsv"
    path.parent.mkdir(parents=True)
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder


def test_a_slice_of_a_file_sorted_by_label_covers_every_label(tmp_path):
    source = str(_sorted_by_label(tmp_path))
    head = benchmarks.load("sib200", "en", source=source, limit=14, slice="head")
    assert len(benchmarks.label_distribution(head)) == 1  # what max_items did before: one label of seven
    sliced = benchmarks.load("sib200", "en", source=source, limit=14)
    # 14 of 63: quotas 3.56, 2.67, 2.00, 1.78, 1.56, 1.33, 1.11; the tie at .56 goes to the larger label
    assert benchmarks.label_distribution(sliced) == {
        "entertainment": 1,
        "geography": 1,
        "health": 1,
        "politics": 2,
        "science/technology": 4,
        "sports": 2,
        "travel": 3,
    }
    every = benchmarks.load("sib200", "en", source=source)
    assert ids(sliced) == [i for i in ids(every) if i in set(ids(sliced))]  # kept in file order
    assert ids(benchmarks.load("sib200", "en", source=source, limit=14)) == ids(sliced)  # deterministic
    assert ids(benchmarks.load("sib200", "en", source=source, limit=14, seed=7)) != ids(sliced)  # the seed decides
    assert benchmarks.load("sib200", "en", source=source, limit=None) == every  # no max_items: the full set


def test_fixture_slices_are_paired_across_languages_and_variants(langdec_home):
    for lang in ("zh", "es", "ur"):  # parallel rows: the same items in every data language
        assert ids(benchmarks.load("xnli", lang, limit=6)) == ids(benchmarks.load("xnli", "en", limit=6))
        assert ids(benchmarks.load("sib200", lang, limit=8)) == ids(benchmarks.load("sib200", "en", limit=8))
    xnli = benchmarks.load("xnli", "en", limit=6)
    assert benchmarks.label_distribution(xnli) == {"contradiction": 2, "entailment": 2, "neutral": 2}
    assert ids(xnli) != ids(benchmarks.load("xnli", "en", limit=6, slice="head"))
    assert ids(benchmarks.load("xnli_mixed", "zh", limit=6)) == ids(xnli)  # a paired variant: its pairs, sliced alike
    mgsm = benchmarks.load("mgsm", "en", limit=5)  # numeric answers are one stratum: a seeded sample of all
    assert len(mgsm) == 5 and ids(mgsm) == ids(benchmarks.load("mgsm", "es", limit=5))
    # a machine-translated copy is its source language's slice, translated: paired with the human split
    profile = config.load_profile("smoke")
    copy = machine_translation.items("sib200_mt", "ur", profile, source="fixtures", limit=8)
    assert ids(copy) == ids(benchmarks.load("sib200", "ur", limit=8))


def test_slice_settings_are_checked_and_recorded_by_name():
    with pytest.raises(LangdecError, match="evaluation.slice = 'random'; valid values: stratified, head"):
        config.load_profile("smoke", ["evaluation.slice=random"])
    assert benchmarks.describe_slice(None, "stratified", 42) == "full"
    assert benchmarks.describe_slice(8, "stratified", 42) == "stratified:seed=42"
    assert benchmarks.describe_slice(8, "head", 42) == "head"
    assert benchmarks.parse_slice("stratified:seed=7") == ("stratified", 7)
    assert benchmarks.parse_slice(None) == ("head", benchmarks.SLICE_SEED)  # a run from before slices were sampled


# --------------------------------------------------------------------------- the real SIB-200 file
@needs_real
def test_real_sib200_slice_of_14_covers_all_seven_labels():
    source = str(SHARED_BENCHMARKS)
    full = benchmarks.load("sib200", "en", source=source)
    assert len(full) == 204
    head = benchmarks.load("sib200", "en", source=source, limit=14, slice="head")
    assert benchmarks.label_distribution(head) == {"science/technology": 14}  # the case
    sliced = benchmarks.load("sib200", "en", source=source, limit=14)
    counts = benchmarks.label_distribution(sliced)
    assert set(counts) == set(benchmarks.get("sib200").labels) and sum(counts.values()) == 14
    assert counts == benchmarks.allocate(benchmarks.label_distribution(full), 14)  # proportional: 3,3,2,2,2,1,1
    assert ids(benchmarks.load("sib200", "en", source=source, limit=14)) == ids(sliced)  # two loads, one sample
    for lang in ("zh", "es", "ur"):
        assert ids(benchmarks.load("sib200", lang, source=source, limit=14)) == ids(sliced)
    other = benchmarks.load("sib200", "en", source=source, limit=14, seed=123)
    assert ids(other) != ids(sliced) and benchmarks.label_distribution(other) == counts


# --------------------------------------------------------------------------- recorded in the run
@pytest.mark.slow
def test_an_evaluation_run_records_its_slice_and_reuses_only_the_same_one(store, smoke_profile):
    tracking.configure()
    settings = [
        "evaluation.benchmarks=[sib200]",
        "evaluation.max_items=7",
        "evaluation.loglikelihood=false",
        "evaluation.templates=[template1, template2]",
    ]
    profile = config.load_profile("smoke", settings)
    cond, job = config.condition("baseline"), config.Job("baseline", None, "5k", 42)

    def evaluate(p):
        return stage.run(
            p, cond, job, phase="phase-3", experiment="phase-3-smoke", data_languages=["en", "ur"], progress=False
        )

    first = evaluate(profile)
    run = mlflow.get_run(first.run_id)
    assert run.data.params["slice"] == "stratified:seed=42" and run.data.params["max_items"] == "7"
    record = json.loads(
        Path(mlflow.artifacts.download_artifacts(run_id=first.run_id, artifact_path="slice.json")).read_text()
    )
    assert record["digest"] == run.data.tags["langdec.slice_digest"]
    expected = ids(benchmarks.load("sib200", "en", limit=7))
    assert record["cells"]["sib200/en"]["ids"] == expected == record["cells"]["sib200/ur"]["ids"]
    assert record["cells"]["sib200/en"]["labels"] == dict.fromkeys(sorted(benchmarks.get("sib200").labels), 1)
    scored = items_mod.read(first.run_id).to_pandas()
    per_cell = scored.groupby("cell")["item_id"].apply(list)
    assert len(per_cell) == 8 and all(list(v) == expected for v in per_cell)  # every template and instruction language

    assert evaluate(profile).reused  # the same slice: the same run
    head = evaluate(config.load_profile("smoke", [*settings, "evaluation.slice=head"]))
    assert not head.reused and head.run_id != first.run_id  # another slice never reuses it
    head_run = mlflow.get_run(head.run_id)
    assert head_run.data.params["slice"] == "head" and head_run.data.tags["langdec.slice_digest"] != record["digest"]
    reseeded = evaluate(config.load_profile("smoke", [*settings, "evaluation.slice_seed=7"]))
    assert not reseeded.reused and mlflow.get_run(reseeded.run_id).data.params["slice"] == "stratified:seed=7"
