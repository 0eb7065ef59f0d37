"""The study's five Phase-3 figures, drawn by langdec from the same tables, under the study's file names.

1. extractor slopegraph: mean delta vs baseline per (condition, instruction language), original -> refined, for
   SIB-200 and XNLI, coloured by what the refinement did (win->loss, loss->win, deflated, stable, near zero);
2. cell scatter: every cell's change in parse-failure rate against its change in accuracy, refined - original;
3. regression concentration: per condition, the SIB-200 cells whose accuracy fell under the refinement, and for
   the condition with most of them a (data -> instruction) x template grid of the mean fall;
4. sign-flip slopegraphs: the conclusion flips per benchmark (the top N by |shift| and all of them), and
   fig04_signflip_appendix.tsv, written exactly as the study's script writes it;
5. condition 5 rehabilitated: condition 5's mean delta on SIB-200 and X-CSQA, original -> refined.

PNG and PDF each. The pictures are langdec's own (no scienceplots); what they plot is the study's.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

from langdec.analysis.statistics import NOISE  # |delta| below half a point is no movement

if TYPE_CHECKING:
    import pandas as pd

OKABE_ITO = {
    "vermillion": "#D55E00",
    "blue": "#0072B2",
    "orange": "#E69F00",
    "green": "#009E73",
    "sky": "#56B4E9",
    "grey": "#999999",
}
TRANSITIONS = {
    "win→loss": OKABE_ITO["vermillion"],
    "loss→win": OKABE_ITO["blue"],
    "deflated": OKABE_ITO["orange"],
    "stable +": OKABE_ITO["green"],
    "stable −": OKABE_ITO["vermillion"],
    "near zero": OKABE_ITO["grey"],
}
BENCH_LABEL = {"sib200": "SIB-200", "xnli": "XNLI", "csqa": "X-CSQA", "belebele": "Belebele"}
LANGS = ("en", "es", "zh", "ur")


def short(condition: str) -> str:
    """'condition-2-ur-5k' -> 'C2 ur/5k' (the study's tick labels)."""
    if not condition.startswith("condition-"):
        return condition.capitalize()
    _, number, lang, tier = (condition.split("-") + ["", ""])[:4]
    return f"C{number} {lang}/{tier}"


def transition(orig: float, rep: float) -> str:
    if abs(orig) < NOISE and abs(rep) < NOISE:
        return "near zero"
    if orig > 0 > rep:
        return "win→loss"
    if orig < 0 < rep:
        return "loss→win"
    if (orig > 0) == (rep > 0):
        return "deflated" if abs(rep) < abs(orig) else ("stable +" if rep > 0 else "stable −")
    return "near zero"


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 8, "axes.spines.top": False, "axes.spines.right": False, "pdf.fonttype": 42})
    return plt


def _save(fig, out: Path, stem: str) -> list[str]:
    fig.savefig(out / f"{stem}.pdf", bbox_inches="tight")
    fig.savefig(out / f"{stem}.png", dpi=200, bbox_inches="tight")
    _plt().close(fig)
    return [f"{stem}.pdf", f"{stem}.png"]


def read_tsv(text: str) -> "pd.DataFrame":
    import pandas as pd

    return pd.read_csv(io.StringIO(text), sep="\t")


def _slopes(ax, rows, label_of, annotate: int = 0) -> None:
    for n, (orig, rep, label, color) in enumerate(rows):
        flip = color in (TRANSITIONS["win→loss"], TRANSITIONS["loss→win"])
        ax.plot([0, 1], [orig, rep], color=color, lw=1.5 if flip else 0.8, alpha=0.9, marker="o", ms=3)
        if n < annotate:
            ax.annotate(
                label,
                (0 if n % 2 == 0 else 1, orig if n % 2 == 0 else rep),
                xytext=(-6 if n % 2 == 0 else 6, 0),
                textcoords="offset points",
                ha="right" if n % 2 == 0 else "left",
                va="center",
                fontsize=6,
            )
    ax.axhline(0, color="#666666", ls="--", lw=0.6)
    ax.set_xticks([0, 1], ["Original", "Refined"])
    ax.set_xlim(-0.35, 1.35)


def extractor_slopegraph(vs_baseline: "pd.DataFrame", out: Path) -> list[str]:
    plt = _plt()
    import matplotlib.lines as mlines

    agg = vs_baseline.groupby(["condition", "benchmark", "instr"], as_index=False)[["delta_orig", "delta_rep"]].mean()
    fig, axes = plt.subplots(1, 2, figsize=(6.3, 3.7))
    for ax, (bench, title) in zip(axes, (("sib200", "(a) SIB-200"), ("xnli", "(b) XNLI"))):
        panel = agg[agg["benchmark"] == bench].copy()
        panel["size"] = panel["delta_orig"].abs()
        panel = panel.sort_values("size", ascending=False)
        rows = [
            (o * 100, r * 100, f"{short(c)} · {i}", TRANSITIONS[transition(o, r)])
            for c, i, o, r in zip(panel["condition"], panel["instr"], panel["delta_orig"], panel["delta_rep"])
        ]
        _slopes(ax, rows, None, annotate=4)
        ax.set_title(title, loc="left", fontsize=9, fontweight="bold")
        ax.set_ylabel(r"$\Delta$ vs baseline (pp)")
    fig.legend(
        handles=[mlines.Line2D([], [], color=c, marker="o", ms=3, label=k) for k, c in TRANSITIONS.items()],
        loc="lower center",
        ncol=6,
        frameon=False,
        fontsize=7,
    )
    fig.tight_layout()
    fig.subplots_adjust(bottom=0.18)
    return _save(fig, out, "fig01_extractor_slopegraph")


def cell_scatter(cells: "pd.DataFrame", out: Path) -> list[str]:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.3, 4.0))
    styles = {
        "belebele": (OKABE_ITO["orange"], 0.25),
        "csqa": (OKABE_ITO["green"], 0.25),
        "xnli": (OKABE_ITO["blue"], 0.7),
        "sib200": (OKABE_ITO["vermillion"], 0.7),
    }
    for bench, (color, alpha) in styles.items():
        sub = cells[cells["benchmark"] == bench]
        ax.scatter(
            sub["delta_pf"] * 100,
            sub["delta_acc"] * 100,
            s=20,
            c=color,
            alpha=alpha,
            edgecolors="none",
            label=BENCH_LABEL[bench],
        )
    ax.axhline(0, color="#999999", ls="--", lw=0.6)
    ax.axvline(0, color="#999999", ls="--", lw=0.6)
    ax.set_xlabel(r"$\Delta$ parse-failure rate (pp; refined − original)")
    ax.set_ylabel(r"$\Delta$ accuracy (pp; refined − original)")
    ax.text(
        0.01,
        0.03,
        f"Cell-level $\\Delta$ structure (n={len(cells):,})",
        transform=ax.transAxes,
        fontsize=8,
        fontweight="bold",
    )
    ax.legend(loc="upper right", fontsize=7)
    ax.grid(True, ls=":", lw=0.4, alpha=0.4)
    fig.tight_layout()
    return _save(fig, out, "fig02_cell_scatter")


def regression_concentration(cells: "pd.DataFrame", out: Path) -> list[str]:
    plt = _plt()
    import numpy as np

    fell = cells[(cells["benchmark"] == "sib200") & (cells["delta_acc"] < 0)]
    if not len(fell):
        return []
    counts = fell.groupby("condition").size().sort_values(ascending=False)
    worst = counts.index[0]
    grid = fell[fell["condition"] == worst].groupby(["data", "instr", "template"])["delta_acc"].mean()
    pairs = [(d, i) for d in LANGS for i in LANGS if any((d, i, t) in grid.index for t in (1, 2))]
    matrix = (
        np.array([[grid.get((d, i, t), np.nan) for t in (1, 2)] for d, i in pairs])
        if pairs
        else np.full((1, 2), np.nan)
    )
    fig, (bars, heat) = plt.subplots(1, 2, figsize=(6.3, 3.5), gridspec_kw={"width_ratios": [1.7, 1]})
    y = np.arange(len(counts))[::-1]
    bars.barh(
        y,
        counts.values,
        color=[OKABE_ITO["vermillion"] if c == worst else OKABE_ITO["grey"] for c in counts.index],
        height=0.7,
    )
    for yi, v in zip(y, counts.values):
        bars.text(v + 0.3, yi, str(int(v)), va="center", fontsize=7)
    bars.set_yticks(y, [short(c) for c in counts.index], fontsize=7)
    bars.set_xlabel("Regressed cells")
    bars.set_title(f"(a) SIB-200 regression counts (n={int(counts.sum())})", loc="left", fontsize=9, fontweight="bold")
    matrix = matrix * 100  # percentage points, as the cells' labels
    limit = max(float(np.nanmax(np.abs(matrix))) if np.isfinite(matrix).any() else 0.0, 0.1)
    image = heat.imshow(np.ma.masked_invalid(matrix), cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    for r, row in enumerate(matrix):
        for c, v in enumerate(row):
            if np.isfinite(v):
                heat.text(c, r, f"{v:+.1f}", ha="center", va="center", fontsize=6.5)
    heat.set_xticks([0, 1], ["t1", "t2"])
    heat.set_yticks(range(len(pairs)), [f"{d}→{i}" for d, i in pairs], fontsize=7)
    heat.set_title(f"(b) {short(worst)} mean $\\Delta$acc", loc="left", fontsize=9, fontweight="bold")
    fig.colorbar(image, ax=heat, fraction=0.06, pad=0.04).set_label(r"$\Delta$acc (pp)", fontsize=7)
    fig.subplots_adjust(left=0.13, right=0.95, top=0.92, bottom=0.13, wspace=0.45)
    return _save(fig, out, "fig03_regression_concentration")


def signflip_appendix(conclusion_flips: str) -> tuple["pd.DataFrame", str]:
    """The flips with their shift, sorted by |shift| as the study's fig04 script sorts them, and its appendix TSV."""
    flips = read_tsv(conclusion_flips)
    flips["shift"] = flips["delta_rep"] - flips["delta_orig"]
    flips["abs_shift"] = flips["shift"].abs()
    flips = flips.sort_values("abs_shift", ascending=False).reset_index(drop=True)
    columns = [
        "condition",
        "seed",
        "template",
        "benchmark",
        "data",
        "instr",
        "delta_orig",
        "delta_rep",
        "shift",
        "verdict",
    ]
    return flips, flips[columns].to_csv(sep="\t", index=False)


def signflip_slopegraphs(flips: "pd.DataFrame", out: Path, top: int = 15) -> list[str]:
    plt = _plt()
    written = []
    for bench in ("sib200", "xnli", "csqa", "belebele"):
        rows = flips[flips["benchmark"] == bench]
        if not len(rows):
            continue
        variants = (
            [(f"fig04_signflip_{bench}_top{top}", rows.head(top)), (f"fig04_signflip_{bench}_all{len(rows)}", rows)]
            if len(rows) > top
            else [(f"fig04_signflip_{bench}_all{len(rows)}", rows)]
        )
        for stem, subset in variants:
            subset = subset.sort_values("delta_orig", ascending=False)
            fig, ax = plt.subplots(figsize=(6.3, max(3.0, 0.22 * len(subset) + 1.5)))
            for _, r in subset.iterrows():
                color = TRANSITIONS["win→loss"] if r["verdict"] == "win→loss" else TRANSITIONS["loss→win"]
                ax.plot([0, 1], [r["delta_orig"] * 100, r["delta_rep"] * 100], color=color, lw=1.5, marker="o", ms=3.5)
                ax.annotate(
                    f"{BENCH_LABEL.get(bench, bench)} · t{r['template']} · {r['data']}→{r['instr']} · {short(r['condition'])} · s{r['seed']}",
                    (-0.05, r["delta_orig"] * 100),
                    ha="right",
                    va="center",
                    fontsize=6,
                )
            ax.axhline(0, color="#888888", ls="--", lw=0.8)
            ax.set_xticks([0, 1], ["Original", "Refined"])
            ax.set_xlim(-1.05, 1.08)
            ax.set_ylabel("Δ vs. baseline (pp)")
            ax.set_title(
                f"{len(subset)} of {len(rows)} {BENCH_LABEL.get(bench, bench)} sign-flips, by |shift|",
                loc="left",
                fontsize=8,
            )
            fig.tight_layout()
            written += _save(fig, out, stem)
    return written


def cond5_rehabilitated(rollup: "pd.DataFrame", out: Path) -> list[str]:
    plt = _plt()
    sub = rollup[rollup["condition"].str.startswith("condition-5-") & rollup["benchmark"].isin(["sib200", "csqa"])]
    if not len(sub):
        return []
    sub = sub.sort_values("mean_delta_orig", ascending=False)
    fig, ax = plt.subplots(figsize=(6.3, 3.5))
    for _, r in sub.iterrows():
        color = OKABE_ITO["green"] if r["benchmark"] == "sib200" else OKABE_ITO["sky"]
        orig, rep = r["mean_delta_orig"] * 100, r["mean_delta_rep"] * 100
        ax.plot([0, 1], [orig, rep], color=color, lw=1.8, marker="o", ms=5)
        ax.annotate(
            f"{short(r['condition'])} · {BENCH_LABEL[r['benchmark']]}",
            (-0.05, orig),
            ha="right",
            va="center",
            fontsize=8,
        )
        ax.annotate(
            f"{orig:.1f} → {rep:.1f}", (0.5, (orig + rep) / 2), ha="center", va="bottom", fontsize=7, color=color
        )
    ax.axhline(0, color="#888888", ls="--", lw=0.8)
    ax.set_xticks([0, 1], ["Original", "Refined"])
    ax.set_xlim(-0.5, 1.2)
    ax.set_ylabel("Mean Δ vs. baseline (pp)")
    ax.set_title(
        "Cond-5 vs baseline: the extractor's effect (SIB-200 rehabilitated, X-CSQA unchanged)", loc="left", fontsize=8
    )
    fig.tight_layout()
    return _save(fig, out, "fig05_cond5_rehabilitated")
