"""Evaluation diagnostics: the registry, and each statistic against a hand computation."""

from __future__ import annotations

import pytest

from langdec.core.errors import LangdecError
from langdec.evaluation import diagnostics as d
from langdec.evaluation import records as item_store
from langdec.evaluation.benchmarks import Item
from langdec.evaluation.stage import item_index, score_items


def _pair(i: int, premise: str, hypothesis: str, gold: str) -> Item:
    return Item(
        str(i), {"premise": premise, "hypothesis": hypothesis}, gold, ["entailment", "neutral", "contradiction"]
    )


def test_tokens_and_overlap_by_hand():
    assert d.tokens("The cat, the CAT sat.", "en") == {"the", "cat", "sat"}
    # hypothesis {a, cat, sat}: "cat" and "sat" are in the premise -> 2/3
    assert d.overlap("The cat sat on the mat", "A cat sat", "en") == pytest.approx(2 / 3)
    # Chinese by character: hypothesis {猫, 坐, 了, ok}; premise has 猫, 坐, 了 -> 3/4
    assert d.tokens("猫坐了 OK", "zh") == {"猫", "坐", "了", "ok"}
    assert d.overlap("猫坐在垫子上了", "猫坐了 OK", "zh") == pytest.approx(3 / 4)
    assert d.overlap("anything", "", "en") == 0.0


def test_tertile_edges_and_buckets_by_hand():
    # nearest-rank 1/3 and 2/3 quantiles of 7 values: ranks 2 and 4 (0-based) -> 0.2 and 0.4
    assert d.tertile_edges([0.6, 0.0, 0.1, 0.2, 0.3, 0.4, 0.5]) == (0.2, 0.4)
    assert [d.bucket(v, (0.2, 0.4)) for v in (0.0, 0.2, 0.3, 0.4, 0.9)] == ["low", "low", "mid", "mid", "high"]


def test_xnli_overlap_and_reverse_bias_by_hand():
    items = [
        _pair(0, "a b c d", "x y z", "entailment"),  # overlap 0
        _pair(1, "a b c d", "a x y", "entailment"),  # 1/3
        _pair(2, "a b c d", "a b x", "entailment"),  # 2/3
        _pair(3, "a b c d", "a b c", "entailment"),  # 1
        _pair(4, "a b c d", "x w v", "neutral"),  # 0
        _pair(5, "a b c d", "a b c d", "contradiction"),  # 1
    ]
    # overlaps 0, 1/3, 2/3, 1, 0, 1 -> sorted 0, 0, 1/3, 2/3, 1, 1; ranks 1 and 3 -> edges (0, 2/3)
    # low = {0, 4} (overlap 0), mid = {1, 2}, high = {3, 5}
    preds = ["neutral", "entailment", "entailment", "entailment", "neutral", "entailment"]
    got = d.xnli_overlap(d.CellView("xnli", "en", preds, [it.label for it in items], items, items))
    # low: item 0 wrong (neutral vs entailment), item 4 right -> 1/2; mid: items 1, 2 right -> 1; high: item 3 right,
    # item 5 wrong -> 1/2. Predicted labels: low {neutral, neutral}, mid {entailment, entailment}, high {entailment, entailment}
    # low-overlap entailment items: only item 0, predicted neutral (non-entailment) -> bias 1.0
    assert got == {
        "overlap_low_acc": 0.5,
        "overlap_low_pred_entailment": 0.0,
        "overlap_low_pred_neutral": 1.0,
        "overlap_low_pred_contradiction": 0.0,
        "overlap_mid_acc": 1.0,
        "overlap_mid_pred_entailment": 1.0,
        "overlap_mid_pred_neutral": 0.0,
        "overlap_mid_pred_contradiction": 0.0,
        "overlap_high_acc": 0.5,
        "overlap_high_pred_entailment": 1.0,
        "overlap_high_pred_neutral": 0.0,
        "overlap_high_pred_contradiction": 0.0,
        "reverse_overlap_bias": 1.0,
    }
    # an unparsed answer counts in its bucket's denominator: low = {contradiction, None} -> 1/2 contradiction, 0 neutral
    mixed = d.xnli_overlap(
        d.CellView(
            "xnli", "en", ["contradiction", *preds[1:4], None, preds[5]], [it.label for it in items], items, items
        )
    )
    assert (mixed["overlap_low_pred_contradiction"], mixed["overlap_low_pred_neutral"], mixed["overlap_low_acc"]) == (
        0.5,
        0.0,
        0.0,
    )
    # buckets come from all_items: scored on items 0-2 only, the edges are still (0, 2/3), so item 2 stays mid
    part = d.xnli_overlap(d.CellView("xnli", "en", preds[:3], [it.label for it in items[:3]], items[:3], items))
    assert part["overlap_mid_acc"] == 1.0 and "overlap_high_acc" not in part and part["overlap_low_pred_neutral"] == 1.0
    assert d.xnli_overlap(d.CellView("xnli", "en", preds, [it.label for it in items], None)) == {}


def test_unparsed_and_top_label_share_by_hand():
    view = d.CellView("sib200", "en", ["a", None, "a", "b"], ["a", "b", "c", "d"])
    assert d.run_all(view) == {"unparsed": 0.25, "top_label_share": 0.5}  # xnli_overlap does not apply to sib200


def test_registry_lists_its_names():
    assert [x.name for x in d.for_benchmark("xnli")] == ["unparsed", "top_label_share", "xnli_overlap"]
    with pytest.raises(
        LangdecError, match="unknown diagnostic 'overlap'; valid diagnostics: top_label_share, unparsed, xnli_overlap"
    ):
        d.get("overlap")


def test_stored_records_get_the_diagnostics_when_their_items_are_found():
    items = [
        _pair(0, "a b", "a b", "entailment"),
        _pair(1, "a b", "x y", "entailment"),
        _pair(2, "a b", "a y", "neutral"),
    ]
    outputs = ["entailment", "contradiction", "neutral"]
    records = [
        {
            "cell": "template1.xnli.data:en.instr:en",
            "template": "template1",
            "benchmark": "xnli",
            "data": "en",
            "instr": "en",
            "item_id": it.id,
            "gold": it.label,
            "output": out,
        }
        for it, out in zip(items, outputs)
    ]
    labelled = item_store.table(records, ["strict"])
    metrics, _ = score_items(labelled, ["strict"], item_index({("xnli", "en"): items}))
    key = "gen.strict.template1.xnli.data:en.instr:en."
    assert metrics[key + "acc"] == pytest.approx(2 / 3)
    assert metrics[key + "reverse_overlap_bias"] == 1.0  # item 1: overlap 0, gold entailment, predicted contradiction
    bare, _ = score_items(labelled, ["strict"])
    assert key + "reverse_overlap_bias" not in bare and bare[key + "unparsed"] == 0.0
