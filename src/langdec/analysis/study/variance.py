"""cross-seed-variance.tsv, as the study's analysis/phase-3/cross-seed-variance.md defines it (it has no script).

Per fine-tuned condition, benchmark and instruction language: per seed, the mean of the refined delta vs
baseline (in percentage points) over the cells of that instruction language, all data languages and templates
("ALL") or one data language's templates; then over seeds n, mean, sample standard deviation (NA for one
seed), min and max. The study computed it from vs_baseline_cells.tsv, deltas already rounded to four
decimals: so does the default file. `cross-seed-variance_exact.tsv` (langdec's) takes the unrounded deltas.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from langdec.analysis.study.refined_tables import Versus, tsv

if TYPE_CHECKING:
    import pandas as pd


def _table(frame: "pd.DataFrame") -> str:
    """frame: condition, seed, template, benchmark, data, instr, delta_rep (a fraction)."""
    frame = frame[frame["condition"] != "baseline"].assign(pp=frame["delta_rep"] * 100)
    rows = []
    for (cond, bench, instr), cells in frame.groupby(["condition", "benchmark", "instr"]):
        scopes = [("ALL", cells)] + [(data, group) for data, group in cells.groupby("data")]
        for data, group in scopes:
            per_seed = group.groupby("seed")["pp"].mean()
            n = len(per_seed)
            rows.append(
                [
                    cond,
                    bench,
                    data,
                    instr,
                    str(n),
                    f"{per_seed.mean():+.4f}",
                    f"{per_seed.std(ddof=1):.4f}" if n > 1 else "NA",
                    f"{per_seed.min():+.4f}",
                    f"{per_seed.max():+.4f}",
                ]
            )
    return tsv(["condition", "benchmark", "data_lang", "instr_lang", "n_seeds", "mean", "std", "min", "max"], rows)


def study_file(vs_baseline: "pd.DataFrame") -> str:
    """From vs_baseline_cells.tsv as read back (the study's rounded deltas)."""
    return _table(vs_baseline)


def exact_file(rows: list[Versus]) -> str:
    import pandas as pd

    return _table(
        pd.DataFrame(
            [
                {
                    "condition": v.cell.condition,
                    "seed": v.cell.seed,
                    "template": v.cell.template,
                    "benchmark": v.cell.benchmark,
                    "data": v.cell.data,
                    "instr": v.cell.instr,
                    "delta_rep": v.delta_rep,
                }
                for v in rows
            ]
        )
    )
