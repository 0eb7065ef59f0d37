"""The study's per-item breakdowns: correct-via-constant rates (SIB-200), XNLI predicted-vs-gold distributions with
the refined rule (tier) that read each answer, SIB-200 per-category accuracy; as build_correct_via_constant.py,
build_xnli_label_bias.py and build_sib200_category_breakdown.py write them.

They read the refined extractor's labels and rules stored per item (`langdec.items`); only the text test the
study makes on the answer itself (its first line, whitespace collapsed; a CJK character in a glued answer) is
taken from the stored output. The XNLI and SIB-200 files cover the study's default condition sets.

The three scripts take every `_results_template*.json` under a condition's folder, and the seed from the folder
it lies in, so a stray file (another seed's file in a seed folder, which import-results keeps flagged) is counted
under its folder's seed, its cells beside that seed's own; sorted by the same keys, the two cells' rows come in
the order of the files' paths (`file`). `without_strays` gives langdec's versions (README: named improvements).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING

from langdec.analysis.study.refined_tables import tsv

if TYPE_CHECKING:
    import pandas as pd

XNLI_LABELS = ("entailment", "contradiction", "neutral")  # reparse_results.py's order
SIB200_CATEGORIES = ("science/technology", "travel", "politics", "sports", "health", "entertainment", "geography")
TIERS = ("tier1a_english", "tier1b_native", "tier2_glued", "tier3_paraphrase")
# the scripts' default condition sets (CORE-1383)
XNLI_CONDITIONS = (
    "baseline",
    "condition-1-en-5k",
    "condition-2-ur-5k",
    "condition-2-es-5k",
    "condition-2-zh-5k",
    "condition-5-ur-5k",
    "condition-5-es-5k",
    "condition-5-zh-5k",
)
SIB200_CONDITIONS = ("baseline", "condition-2-ur-5k", "condition-5-ur-5k", "condition-5-es-5k")
_SPACES = re.compile(r"\s+")


def _value(v: object) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def without_strays(rows: "pd.DataFrame") -> "pd.DataFrame":
    """The rows of the study's sessions alone: a stray file's are not another run of its folder's seed."""
    return rows[~rows["stray"].astype(bool)]


def _cells(rows: "pd.DataFrame", conditions: Iterable[str] | None = None):
    """((condition, seed, template, data, instr), rows in the file's order) per cell, cells in the walk's order: the
    study's sorted paths (condition, seed folder, file name), then a file's cells in its order."""
    if conditions is not None:
        rows = rows[rows["condition"].isin(list(conditions))]
    rows = rows.sort_values(
        ["condition", "seed", "file", "t", "cell_order", "position"], key=_seed_folder, kind="stable"
    )
    keys = ["condition", "seed", "file", "t", "cell_order", "data", "instr"]
    for (cond, seed, _file, t, _order, data, instr), cell in rows.groupby(keys, sort=False):
        yield (cond, seed, int(t), data, instr), cell


def _seed_folder(column: "pd.Series") -> "pd.Series":
    return "seed" + column if column.name == "seed" else column


def correct_via_constant(sib200: "pd.DataFrame") -> str:
    out = []
    for (cond, seed, t, data, instr), cell in _cells(sib200):
        preds, counted, raws = cell["pred"].tolist(), Counter(), Counter()
        hits = []
        for raw, pred, gold in zip(cell["output"], preds, cell["gold"]):
            first = _SPACES.sub(" ", raw.split("\n", 1)[0]).strip()
            if pred is not None:
                counted[pred] += 1
            if first:
                raws[first] += 1
            if pred is not None and pred == gold:
                hits.append((pred, first))
        n = len(preds)
        top_pred, top_pred_n = counted.most_common(1)[0] if counted else (None, 0)
        top_raw, top_raw_n = raws.most_common(1)[0] if raws else ("", 0)
        via_pred = sum(p == top_pred for p, _ in hits) if top_pred is not None else 0
        via_raw = sum(r == top_raw for _, r in hits) if top_raw else 0
        out.append(
            {
                "condition": cond,
                "seed": seed,
                "template": t,
                "data_lang": data,
                "instr_lang": instr,
                "n": n,
                "accuracy": len(hits) / n,
                "top_pred": top_pred or "",
                "top_pred_count": top_pred_n,
                "top_pred_share": top_pred_n / n,
                "top_raw": top_raw,
                "top_raw_count": top_raw_n,
                "top_raw_share": top_raw_n / n,
                "correct_count": len(hits),
                "correct_via_constant_pred_count": via_pred,
                "correct_via_constant_pred_pct": via_pred / len(hits) if hits else 0.0,
                "correct_via_constant_raw_count": via_raw,
                "correct_via_constant_raw_pct": via_raw / len(hits) if hits else 0.0,
            }
        )
    out.sort(key=lambda r: (r["condition"], r["seed"], r["template"], r["data_lang"], r["instr_lang"]))
    header = list(out[0]) if out else ["condition", "seed", "template", "data_lang", "instr_lang", "n", "accuracy"]
    return tsv(header, ([_value(r[c]) for c in header] for r in out))


XNLI_HEADER = (
    "condition",
    "seed",
    "template",
    "benchmark",
    "data_lang",
    "instr_lang",
    "extractor",
    "gold",
    "n_gold",
    "pred_entailment",
    "pred_neutral",
    "pred_contradiction",
    "pred_none",
    "acc_on_gold",
    *(f"via_{t}" for t in TIERS),
    "tier2_pred_entailment",
    "tier2_cjk_frame",
)


def xnli_label_distributions(xnli: "pd.DataFrame", conditions: Iterable[str] = XNLI_CONDITIONS) -> str:
    out = []
    for (cond, seed, t, data, instr), cell in _cells(xnli, conditions):
        counts = _XnliCounts(cell)
        for gold in XNLI_LABELS:
            out.append(
                {
                    "condition": cond,
                    "seed": seed,
                    "template": t,
                    "benchmark": "xnli",
                    "data_lang": data,
                    "instr_lang": instr,
                    "extractor": "refined",
                    **counts.row(gold),
                }
            )
    out.sort(
        key=lambda r: (
            r["condition"],
            r["seed"],
            r["template"],
            r["data_lang"],
            r["instr_lang"],
            XNLI_LABELS.index(r["gold"]),
        )
    )
    return tsv(XNLI_HEADER, ([_value(r[c]) for c in XNLI_HEADER] for r in out))


class _XnliCounts:
    """One XNLI cell's counts per gold label: predictions, the refined rule (tier) that read each answer, and of the
    glued (tier 2) reads, those read as entailment and those in a CJK frame."""

    def __init__(self, cell: "pd.DataFrame") -> None:
        self.preds: dict[str, Counter] = {g: Counter() for g in XNLI_LABELS}
        self.tiers: dict[str, Counter] = {g: Counter() for g in XNLI_LABELS}
        self.glued_entailment: Counter = Counter()
        self.cjk: Counter = Counter()
        for gold, pred, rule, in_cjk in zip(cell["gold"], cell["pred"], cell["rule"], cell["cjk"]):
            if gold not in self.preds:
                continue  # the study skips (and reports) a gold outside the three labels
            self.preds[gold][pred] += 1
            if rule in TIERS:
                self.tiers[gold][rule] += 1
            if rule == "tier2_glued":
                self.glued_entailment[gold] += pred == "entailment"
                self.cjk[gold] += bool(in_cjk)

    def row(self, gold: str) -> dict[str, object]:
        """The file's columns from `gold` on, for the items of that gold label."""
        c, n_gold = self.preds[gold], sum(self.preds[gold].values())
        return {
            "gold": gold,
            "n_gold": n_gold,
            "pred_entailment": c["entailment"],
            "pred_neutral": c["neutral"],
            "pred_contradiction": c["contradiction"],
            "pred_none": c[None],
            "acc_on_gold": c[gold] / n_gold if n_gold else 0.0,
            **{f"via_{tier}": self.tiers[gold][tier] for tier in TIERS},
            "tier2_pred_entailment": self.glued_entailment[gold],
            "tier2_cjk_frame": self.cjk[gold],
        }


def sib200_category_accuracy(sib200: "pd.DataFrame", conditions: Iterable[str] = SIB200_CONDITIONS) -> str:
    slug = {c: c.replace("/", "_") for c in SIB200_CATEGORIES}
    out = []
    for (cond, seed, t, data, instr), cell in _cells(sib200, conditions):
        preds: dict[str, Counter] = {g: Counter() for g in SIB200_CATEGORIES}
        for gold, pred in zip(cell["gold"], cell["pred"]):
            if gold in preds:
                preds[gold][pred] += 1
        for gold in SIB200_CATEGORIES:
            c, n_gold = preds[gold], sum(preds[gold].values())
            out.append(
                {
                    "condition": cond,
                    "seed": seed,
                    "template": t,
                    "benchmark": "sib200",
                    "data_lang": data,
                    "instr_lang": instr,
                    "extractor": "refined",
                    "gold_category": gold,
                    "n_gold": n_gold,
                    "correct": c[gold],
                    "acc_on_gold": c[gold] / n_gold if n_gold else 0.0,
                    **{f"pred_{slug[k]}": c[k] for k in SIB200_CATEGORIES},
                    "pred_none": c[None],
                }
            )
    out.sort(
        key=lambda r: (
            r["condition"],
            r["seed"],
            r["template"],
            r["data_lang"],
            r["instr_lang"],
            SIB200_CATEGORIES.index(r["gold_category"]),
        )
    )
    header = [
        "condition",
        "seed",
        "template",
        "benchmark",
        "data_lang",
        "instr_lang",
        "extractor",
        "gold_category",
        "n_gold",
        "correct",
        "acc_on_gold",
        *(f"pred_{slug[k]}" for k in SIB200_CATEGORIES),
        "pred_none",
    ]
    return tsv(header, ([_value(r[c]) for c in header] for r in out))
