"""significance.tsv as the study's build_significance.py writes it, and langdec's corrected twin.

The study reads its own vs_baseline_cells.tsv back (accuracies rounded to four decimals) and runs, per
(condition, benchmark, data, instruction language): a one-sample t test of the per-seed accuracies (templates
averaged within a seed) against the baseline mean, Welch's t test of the (seed, template) observations against
the baseline's, and a pooled two-proportion z test whose item counts are a fixed table (XNLI 2,505: half its
5,010 test items) times the observations, the correct counts recovered from the rounded accuracies. That is
the default file. `significance_true_n.tsv` (langdec's) runs the same tests on the exact counts: each cell's
true n and correct answers, unrounded accuracies. The tests are those of `langdec.analysis.statistics`, as the report's are.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

from langdec.analysis.statistics import ALPHA, NAN, bonferroni, is_nan, one_sample_t, two_proportion_z, welch_t
from langdec.analysis.study.refined_tables import Versus

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

STUDY_N = {"sib200": 204, "xnli": 2505, "csqa": 1000, "belebele": 900}  # build_significance.py's N_EXAMPLES
BENCH_ORDER = ["sib200", "xnli", "csqa", "belebele"]
COLUMNS = [
    "condition",
    "benchmark",
    "data",
    "instr",
    "n_seeds",
    "n_examples_cond",
    "n_examples_base",
    "baseline_acc",
    "cond_acc",
    "delta_pp",
    "seed_sigma_pp",
    "one_sample_t",
    "one_sample_df",
    "one_sample_p",
    "welch_t",
    "welch_df",
    "welch_p",
    "z_prop",
    "prop_z_p",
]


def read_cells(text: str) -> "pd.DataFrame":
    """vs_baseline_cells.tsv as the study's scripts load it (pandas, signed deltas as floats)."""
    import pandas as pd

    frame = pd.read_csv(io.StringIO(text), sep="\t")
    for column in ("delta_orig", "delta_rep"):
        if frame[column].dtype == object:
            frame[column] = frame[column].str.replace("+", "", regex=False).astype(float)
    return frame


def _tests(
    cond_obs: "np.ndarray",
    base_obs: "np.ndarray",
    per_seed: "np.ndarray",
    n_cond: int,
    n_base: int,
    k_cond: int,
    k_base: int,
) -> dict[str, Any]:
    """The three tests of one comparison as build_significance.py rounds them."""
    cond_mean, base_mean = float(cond_obs.mean()), float(base_obs.mean())
    delta = cond_mean - base_mean
    one, welch = one_sample_t(per_seed, base_mean), welch_t(cond_obs, base_obs)
    z, pz = two_proportion_z(delta, k_cond, n_cond, k_base, n_base)
    sigma = float(per_seed.std(ddof=1)) if len(per_seed) > 1 else NAN

    def r(x: Any, digits: int) -> Any:
        return NAN if is_nan(x) or x != x else round(x, digits)

    return {
        "baseline_acc": r(base_mean, 4),
        "cond_acc": r(cond_mean, 4),
        "delta_pp": r(delta * 100, 2),
        "seed_sigma_pp": r(sigma * 100, 2),
        "one_sample_t": r(one.statistic, 3),
        "one_sample_df": one.df,
        "one_sample_p": r(one.p, 5),
        "welch_t": r(welch.statistic, 3),
        "welch_df": r(welch.df, 2),
        "welch_p": r(welch.p, 5),
        "z_prop": r(z, 3),
        "prop_z_p": r(pz, 5),
    }


def _marked(rows: list[dict]) -> "pd.DataFrame":
    import pandas as pd

    out = pd.DataFrame(rows, columns=COLUMNS)
    threshold = bonferroni(len(out))
    out["sig_uncorrected_prop_z"] = out["prop_z_p"].apply(
        lambda p: "**" if pd.notna(p) and p < 0.01 else "*" if pd.notna(p) and p < ALPHA else ""
    )
    out["sig_bonferroni_prop_z"] = out["prop_z_p"].apply(lambda p: "***" if pd.notna(p) and p < threshold else "")
    return out


def _walk(frame: "pd.DataFrame"):
    """(condition, benchmark, data, instr, cells) in the study's order: conditions sorted, its benchmark order,
    then instruction and data languages as they first appear."""
    for cond in sorted(frame["condition"].unique()):
        if cond == "baseline":
            continue
        mine = frame[frame["condition"] == cond]
        for bench in BENCH_ORDER:
            rows = mine[mine["benchmark"] == bench]
            for instr in rows["instr"].unique():
                for data in rows[rows["instr"] == instr]["data"].unique():
                    cell = rows[(rows["data"] == data) & (rows["instr"] == instr)]
                    if len(cell):
                        yield cond, bench, data, instr, cell


def study_file(vs_baseline_cells: str) -> str:
    """significance.tsv exactly as build_significance.py writes it from vs_baseline_cells.tsv."""
    frame = read_cells(vs_baseline_cells)
    rows = []
    for cond, bench, data, instr, cell in _walk(frame):
        cond_obs = cell["cond_rep"].values
        base_obs = cell.drop_duplicates(subset="template")["baseline_rep"].values
        per_seed = cell.groupby("seed")["cond_rep"].mean().values
        n = STUDY_N[bench]
        n_cond, n_base = n * len(cond_obs), n * len(base_obs)
        k_cond, k_base = int(round(float(cond_obs.sum()) * n)), int(round(float(base_obs.sum()) * n))
        rows.append(
            {
                "condition": cond,
                "benchmark": bench,
                "data": data,
                "instr": instr,
                "n_seeds": len(per_seed),
                "n_examples_cond": n_cond,
                "n_examples_base": n_base,
                **_tests(cond_obs, base_obs, per_seed, n_cond, n_base, k_cond, k_base),
            }
        )
    return _marked(rows).to_csv(sep="\t", index=False)


def true_n_file(rows: list[Versus]) -> str:
    """The same tests on exact counts: each cell's own n and correct answers, accuracies unrounded."""
    import numpy as np
    import pandas as pd

    frame = pd.DataFrame(
        [
            {
                "condition": v.cell.condition,
                "seed": v.cell.seed,
                "template": v.cell.template,
                "benchmark": v.cell.benchmark,
                "data": v.cell.data,
                "instr": v.cell.instr,
                "cond_rep": v.cell.repar_acc,
                "baseline_rep": v.base.repar_acc,
                "k": v.cell.correct,
                "n": v.cell.n,
                "base_k": v.base.correct,
                "base_n": v.base.n,
            }
            for v in rows
        ]
    )
    out = []
    for cond, bench, data, instr, cell in _walk(frame) if len(frame) else []:
        base = cell.drop_duplicates(subset="template")
        per_seed = cell.groupby("seed")["cond_rep"].mean().values
        out.append(
            {
                "condition": cond,
                "benchmark": bench,
                "data": data,
                "instr": instr,
                "n_seeds": len(per_seed),
                "n_examples_cond": int(cell["n"].sum()),
                "n_examples_base": int(base["base_n"].sum()),
                **_tests(
                    np.asarray(cell["cond_rep"].values),
                    np.asarray(base["baseline_rep"].values),
                    per_seed,
                    int(cell["n"].sum()),
                    int(base["base_n"].sum()),
                    int(cell["k"].sum()),
                    int(base["base_k"].sum()),
                ),
            }
        )
    return _marked(out).to_csv(sep="\t", index=False)
