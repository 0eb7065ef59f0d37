"""The baseline each report cell is compared with, like for like: the baseline's accuracy over exactly the
(template, instruction language) combinations the condition was evaluated on, and the paired bootstrap interval
of the per-item delta against those same baseline rows."""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import TYPE_CHECKING

from langdec.analysis.statistics import bootstrap_interval

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

KEYS = ["group", "benchmark", "data"]
CellKey = tuple[str, str, str]  # group, benchmark, data


@dataclass
class Shape:
    """What a kind of score's cells have regardless of the answers: their size, distinct items, and which
    (template, instruction language) combinations each holds; `signature` numbers each cell's combination set
    so that a baseline restricted to it is computed once per set."""

    size: "pd.Series"
    n_items: "pd.Series"
    combos: dict[CellKey, frozenset[tuple[str, str]]]
    signature: dict[CellKey, int]

    @classmethod
    def of(cls, view: "pd.DataFrame") -> "Shape":
        combos: dict[CellKey, set[tuple[str, str]]] = collections.defaultdict(set)
        for g, b, d, t, i in view.groupby([*KEYS, "template", "instr"], observed=True).size().index:
            combos[(str(g), str(b), str(d))].add((str(t), str(i)))
        frozen = {k: frozenset(v) for k, v in combos.items()}
        numbers: dict[frozenset, int] = {}
        signature = {k: numbers.setdefault(v, len(numbers)) for k, v in frozen.items()}
        return cls(
            view.groupby(KEYS, observed=True).size(),
            view.groupby(KEYS, observed=True)["item_id"].nunique(),
            frozen,
            signature,
        )


@dataclass
class _Coded:
    """A view's rows with its keys as category codes (joined as codes, never as strings), and the names back."""

    codes: "pd.DataFrame"
    is_base: "np.ndarray"
    cats: dict[str, list[str]]  # column -> its category names
    at: dict[str, dict[str, int]]  # column -> name -> code

    @classmethod
    def of(cls, view: "pd.DataFrame") -> "_Coded":
        import pandas as pd

        codes = pd.DataFrame({c: view[c].cat.codes.to_numpy() for c in (*KEYS, "template", "instr", "item_id")})
        codes["correct"] = view["correct"].to_numpy(dtype=bool)
        cats = {c: list(map(str, view[c].cat.categories)) for c in ("group", "benchmark", "data", "template", "instr")}
        at = {c: {name: n for n, name in enumerate(values)} for c, values in cats.items()}
        return cls(codes, (view["group"] == "baseline").to_numpy(), cats, at)


def baselines(
    view: "pd.DataFrame", shape: Shape, rounds: int, seed: int
) -> tuple[dict[CellKey, float], dict[CellKey, tuple[float, float]]]:
    """Per condition cell: the baseline's accuracy over exactly the condition's (template, instruction language)
    combinations, and the paired bootstrap interval of the per-item delta (item accuracy over the condition's
    rows minus over those baseline rows)."""
    coded = _Coded.of(view)
    if not coded.is_base.any():
        return {}, {}
    base = (
        coded.codes[coded.is_base]
        .groupby(["benchmark", "data", "template", "instr", "item_id"])["correct"]
        .agg(["sum", "count"])
        .reset_index()
    )
    values = _values(base, coded, shape)
    pieces = _per_item(base, coded, shape)
    if not pieces:
        return values, {}
    return values, _intervals(coded, shape, pieces, rounds, seed)


def _values(base: "pd.DataFrame", coded: _Coded, shape: Shape) -> dict[CellKey, float]:
    """The baseline's accuracy over each condition cell's combinations."""
    cats = coded.cats
    totals = base.groupby(["benchmark", "data", "template", "instr"])[["sum", "count"]].sum()
    combo_total = {
        (cats["benchmark"][b], cats["data"][d], cats["template"][t], cats["instr"][i]): (int(r["sum"]), int(r["count"]))
        for (b, d, t, i), r in totals.iterrows()
    }
    baseline: dict[CellKey, float] = {}
    for key, combos in shape.combos.items():
        g, b, d = key
        found = [combo_total[(b, d, t, i)] for t, i in combos if (b, d, t, i) in combo_total]
        if g != "baseline" and found:
            baseline[key] = sum(c for c, _ in found) / sum(n for _, n in found)
    return baseline


def _per_item(base: "pd.DataFrame", coded: _Coded, shape: Shape) -> list["pd.DataFrame"]:
    """The baseline per item, restricted to each combination set a condition cell holds."""
    import numpy as np
    import pandas as pd

    at = coded.at
    pieces = []
    for b, d, sig in sorted({(b, d, shape.signature[(g, b, d)]) for (g, b, d) in shape.combos if g != "baseline"}):
        if b not in at["benchmark"] or d not in at["data"]:
            continue
        combos = next(v for k, v in shape.combos.items() if shape.signature[k] == sig)
        rows = base[(base["benchmark"] == at["benchmark"][b]) & (base["data"] == at["data"][d])]
        keep = np.zeros(len(rows), dtype=bool)
        for t, i in combos:
            if t in at["template"] and i in at["instr"]:
                keep |= ((rows["template"] == at["template"][t]) & (rows["instr"] == at["instr"][i])).to_numpy()
        per_item = rows[keep].groupby("item_id")[["sum", "count"]].sum()
        pieces.append(
            pd.DataFrame(
                {
                    "benchmark": at["benchmark"][b],
                    "data": at["data"][d],
                    "signature": sig,
                    "item_id": per_item.index.to_numpy(),
                    "base": (per_item["sum"] / per_item["count"]).to_numpy(float),
                }
            )
        )
    return pieces


def _intervals(
    coded: _Coded, shape: Shape, pieces: list["pd.DataFrame"], rounds: int, seed: int
) -> dict[CellKey, tuple[float, float]]:
    """The paired bootstrap interval of each condition cell's per-item delta against its baseline items."""
    import numpy as np
    import pandas as pd

    cats = coded.cats
    cond = coded.codes[~coded.is_base].groupby([*KEYS, "item_id"])["correct"].agg(["sum", "count"]).reset_index()
    cells = cond[KEYS].drop_duplicates()
    cells["signature"] = [
        shape.signature.get((cats["group"][g], cats["benchmark"][b], cats["data"][d]), -1)
        for g, b, d in zip(cells["group"], cells["benchmark"], cells["data"])
    ]
    cond = cond.merge(cells, on=KEYS).merge(
        pd.concat(pieces, ignore_index=True), on=["benchmark", "data", "signature", "item_id"]
    )
    cond["delta"] = np.round(cond["sum"] / cond["count"] - cond["base"], 12)
    intervals = {}
    for (g, b, d), deltas in cond.groupby(KEYS, sort=False)["delta"]:
        intervals[(cats["group"][g], cats["benchmark"][b], cats["data"][d])] = bootstrap_interval(
            deltas.to_numpy(float), rounds, seed
        )
    return intervals
