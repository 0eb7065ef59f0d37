"""The study's report units (paper tables, conclusion flips, significance) against a case computed by hand,
and the report's refusal to pool tiers."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from langdec.analysis import report, study_tables
from langdec.core.errors import LangdecError

# correct answers out of 10 per (seed, template) cell, strict and refined
BASE = {("-", "template1"): (5, 6), ("-", "template2"): (7, 6)}
COND = {
    ("42", "template1"): (8, 4),
    ("42", "template2"): (7, 7),
    ("123", "template1"): (5, 7),
    ("123", "template2"): (6, 9),
}


def _frame(group: str, cells: dict, tier: str = "5k") -> pd.DataFrame:
    rows = []
    for (seed, template), (strict, refined) in cells.items():
        rows += [
            {
                "group": group,
                "seed": seed,
                "tier": tier,
                "benchmark": "sib200",
                "data": "en",
                "template": template,
                "instr": "en",
                "item_id": f"i{n}",
                "correct.strict": n < strict,
                "correct.refined": n < refined,
                "pred.strict": "sports" if n < strict else None,
                "pred.refined": "sports" if n < refined else None,
            }
            for n in range(10)
        ]
    return pd.DataFrame(rows)


def _frames(*parts: pd.DataFrame) -> report.Frames:
    return report.Frames.from_gen(pd.concat(parts, ignore_index=True))


FRAMES = _frames(_frame("baseline", BASE, tier=""), _frame("cond2-zh", COND))
COUNTS = study_tables.counts(FRAMES.gen)


def test_paper_table_means_over_seed_template_and_data():
    rows = {
        (r.extractor, r.group): r
        for r in study_tables.paper_rows(COUNTS, "strict") + study_tables.paper_rows(COUNTS, "refined")
    }
    assert rows[("strict", "cond2-zh")].value == pytest.approx((0.8 + 0.7 + 0.5 + 0.6) / 4)
    assert rows[("strict", "baseline")].value == pytest.approx(0.6) and rows[("strict", "baseline")].delta is None
    # the mean of per-cell deltas against the baseline cell of the same template
    assert rows[("strict", "cond2-zh")].delta == pytest.approx((0.3 + 0.0 + 0.0 - 0.1) / 4)
    assert rows[("refined", "cond2-zh")].delta == pytest.approx((-0.2 + 0.1 + 0.1 + 0.3) / 4)
    assert rows[("refined", "cond2-zh")].n_seeds == 2 and rows[("refined", "cond2-zh")].n_cells == 4


def test_conclusion_flips_follow_the_studys_threshold_rule():
    flips, compared = study_tables.conclusion_flips(COUNTS, 0.01)
    assert compared == 4
    assert [(f.seed, f.template) for f in flips] == [("123", "template2"), ("42", "template1")]
    assert flips[1].delta_strict == pytest.approx(0.3) and flips[1].delta_refined == pytest.approx(-0.2)
    # a cell whose strict delta is 0 is noise, not a flip; a larger threshold keeps only the big flip
    assert len(study_tables.conclusion_flips(COUNTS, 0.15)[0]) == 1


def test_significance_uses_the_true_item_counts():
    (row,), bonferroni = study_tables.significance(COUNTS, "refined")
    assert (row.n_items_cond, row.n_items_base, row.n_seeds) == (40, 20, 2)
    assert bonferroni == pytest.approx(0.05)
    # one-sample t over seeds: per-seed means 0.55, 0.80 vs baseline 0.6; t = 0.075 / 0.125 = 0.6 with 1 df (Cauchy)
    assert row.one_sample_p == pytest.approx(1 - 2 * math.atan(0.6) / math.pi, rel=1e-6)
    # Welch: the baseline's two templates agree (variance 0), so df = n - 1 = 3 and t = 0.075 / sqrt(0.0425 / 4)
    t = 0.075 / math.sqrt(0.0425 / 4)
    cdf3 = 0.5 + (t / math.sqrt(3) / (1 + t * t / 3) + math.atan(t / math.sqrt(3))) / math.pi
    assert row.welch_p == pytest.approx(2 * (1 - cdf3), rel=1e-6)
    # pooled two-proportion z over items: 27/40 vs 12/20
    z = (27 / 40 - 12 / 20) / math.sqrt(0.65 * 0.35 * (1 / 40 + 1 / 20))
    assert row.prop_z == pytest.approx(z) and row.prop_z_p == pytest.approx(math.erfc(z / math.sqrt(2)))
    assert not row.bonferroni


def test_report_carries_the_study_units_and_refuses_to_pool_tiers():
    built = report.build(FRAMES, rounds=200)
    assert built.study is not None and len(built.study.flips) == 2
    text = report.markdown(built, [])
    assert (
        "## The study's units" in text and "2 of 4 condition cells" in text and "| cond2-zh | 2 | 65.0 (+5.0) |" in text
    )
    assert "cond2-zh   2      67.5 (+7.5)" in report.print_tables(built)
    twenty = _frame("cond2-zh", {("42", "template1"): (9, 9)}, tier="20k")
    pooled = _frames(_frame("baseline", BASE, tier=""), _frame("cond2-zh", COND), twenty)
    with pytest.raises(LangdecError, match=r"pool tiers \(cond2-zh: 20k, 5k\).*--by-tier"):
        report.build(pooled, rounds=50)
    split = report.build(pooled, rounds=50, by_tier=True)
    assert {c.group for c in split.cells} == {"baseline", "cond2-zh-5k", "cond2-zh-20k"}
    assert {r.group for r in split.study.paper} == {"baseline", "cond2-zh-5k", "cond2-zh-20k"}
