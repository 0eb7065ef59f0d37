"""tables.tex: the study's booktabs tables (build_phase3_tables.py), from vs_baseline_cells.tsv read back.

Values are the study's: means over the TSV's four-decimal accuracies and deltas, grouped as each table says,
percentages with one decimal, deltas in percentage points with LaTeX's minus, bold and italic marks at the
study's thresholds. The wording (captions, labels, row names, thresholds, the header comment) is the study's
and is read from experiments/study/phase3_tables.yaml, which names its source; this module only lays it out.
Numbers keep the type pandas hands back, so they round the way the study's did.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

import yaml

from langdec.analysis.statistics import NAN, NOISE, flips, is_nan
from langdec.core.errors import LangdecError
from langdec.core.paths import experiments_dir

if TYPE_CHECKING:
    import pandas as pd

MINUS = "$-$"


@functools.lru_cache(maxsize=1)
def wording() -> dict:
    path = experiments_dir() / "study" / "phase3_tables.yaml"
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise LangdecError(f"{path}: cannot read the study's table wording ({exc})") from None


def pct(x) -> str:
    return "--" if is_nan(x) else f"{x * 100:.1f}\\%"


def delta(x) -> str:
    if is_nan(x):
        return "--"
    pp = round(x * 100.0, 1)
    if pp == 0:
        pp = 0.0  # no "$-$0.0" from a negative zero
    return f"+{pp:.1f}" if pp >= 0 else f"{MINUS}{abs(pp):.1f}"


def bold(s: str) -> str:
    return r"\textbf{" + s + "}"


def _means(frame: "pd.DataFrame", keys: list[str], column: str) -> dict:
    return dict(frame.groupby(keys)[column].mean().items())


def _dedup(frame: "pd.DataFrame") -> "pd.DataFrame":
    """One row per (template, benchmark, data, instr): the baseline's value of that cell."""
    return frame.drop_duplicates(subset=["template", "benchmark", "data", "instr"])


class Tables:
    def __init__(self, cells: "pd.DataFrame"):
        self.df = cells
        w = wording()
        self.langs: list[str] = w["languages"]
        self.benches: dict[str, dict] = w["benchmarks"]
        self.conditions: list[tuple[str, str]] = [tuple(c) for c in w["conditions"]]
        self.captions: dict[str, str] = w["captions"]

    def seeds(self, cond: str) -> str:
        return "--" if cond == "baseline" else str(int(self.df[self.df["condition"] == cond]["seed"].nunique()))

    def label(self, bench: str) -> str:
        return self.benches[bench]["label"]

    def caption(self, which: str, **values: str) -> str:
        text = self.captions[which]
        for key, value in values.items():
            text = text.replace("{" + key + "}", value)
        return text

    # ------------------------------------------------------------------ layout
    def table(
        self,
        columns: str,
        head: list[str],
        rows: list[str],
        caption: str,
        label: str,
        *,
        wide: bool = False,
        size: str = "small",
    ) -> str:
        env = "table*" if wide else "table"
        return "\n".join(
            [
                rf"\begin{{{env}}}[t]",
                r"  \centering",
                rf"  \{size}",
                rf"  \begin{{tabular}}{{{columns}}}",
                r"    \toprule",
                *head,
                *rows,
                r"    \bottomrule",
                r"  \end{tabular}",
                rf"  \caption{{{caption}}}",
                rf"  \label{{{label}}}",
                rf"\end{{{env}}}",
            ]
        )

    @staticmethod
    def line(cells: list[str]) -> str:
        return "    " + " & ".join(cells) + r" \\"

    # ------------------------------------------------------------------ the tables
    def type1(self, bench: str) -> str:
        grid = _means(self.df[self.df["benchmark"] == bench], ["condition", "instr"], "cond_rep")
        base = _means(_dedup(self.df), ["benchmark", "instr"], "baseline_rep")
        rows = [
            self.line(
                [
                    label,
                    self.seeds(cond),
                    *(
                        pct(base.get((bench, lang), NAN) if cond == "baseline" else grid.get((cond, lang), NAN))
                        for lang in self.langs
                    ),
                ]
            )
            for cond, label in self.conditions
        ]
        return self.table(
            "lr" + "r" * len(self.langs),
            [self.line(["Condition", "$n_s$", *self.langs]), r"    \midrule"],
            rows,
            self.caption("type1", bench=self.label(bench)),
            f"tab:t1-{self.benches[bench]['short']}",
        )

    def _type2(
        self, grid: dict, base: dict, caption: str, label: str, fmt: Callable = pct, skip_baseline: bool = False
    ) -> str:
        cols = [(b, lang) for b in self.benches for lang in self.langs]
        head = [
            self.line(
                [
                    "Condition",
                    "$n_s$",
                    *(rf"\multicolumn{{{len(self.langs)}}}{{c}}{{\textsc{{{self.label(b)}}}}}" for b in self.benches),
                ]
            ),
            "    "
            + " ".join(
                rf"\cmidrule(lr){{{3 + n * len(self.langs)}-{2 + (n + 1) * len(self.langs)}}}"
                for n in range(len(self.benches))
            ),
            r"     & & " + " & ".join(lang for _, lang in cols) + r" \\",
            r"    \midrule",
        ]
        rows = [
            self.line(
                [
                    clabel,
                    self.seeds(cond),
                    *(fmt(base.get(c, NAN) if cond == "baseline" else grid.get((cond, *c), NAN)) for c in cols),
                ]
            )
            for cond, clabel in self.conditions
            if not (skip_baseline and cond == "baseline")
        ]
        return self.table("lr" + "r" * len(cols), head, rows, caption, label, wide=True, size="scriptsize")

    def type2(self) -> list[str]:
        native = self.df[self.df["data"] == self.df["instr"]]
        english = self.df[self.df["instr"] == "en"]
        return [
            self._type2(
                _means(native, ["condition", "benchmark", "instr"], "cond_rep"),
                _means(_dedup(native), ["benchmark", "instr"], "baseline_rep"),
                self.caption("type2_native"),
                "tab:t2-native",
            ),
            self._type2(
                _means(english, ["condition", "benchmark", "data"], "cond_rep"),
                _means(_dedup(english), ["benchmark", "data"], "baseline_rep"),
                self.caption("type2_english"),
                "tab:t2-english",
            ),
            self._type2(
                _means(native, ["condition", "benchmark", "instr"], "delta_rep"),
                {},
                self.caption("type2_native_delta"),
                "tab:t2-native-delta",
                fmt=delta,
                skip_baseline=True,
            ),
        ]

    def type3(self, bench: str) -> str:
        sub = self.df[self.df["benchmark"] == bench]
        orig, rep = _means(sub, ["condition", "instr"], "cond_orig"), _means(sub, ["condition", "instr"], "cond_rep")
        base = _dedup(self.df)
        base_orig, base_rep = (
            _means(base, ["benchmark", "instr"], "baseline_orig"),
            _means(base, ["benchmark", "instr"], "baseline_rep"),
        )
        moved = sub.groupby(["condition", "instr"])[["delta_orig", "delta_rep"]].mean()
        flipped = {
            key: flips(o, r)
            for key, o, r in zip(moved.index, moved["delta_orig"], moved["delta_rep"])
            if not (is_nan(o) or is_nan(r))
        }
        head = [
            self.line(["Condition", *(rf"\multicolumn{{2}}{{c}}{{instr $=$ {lang}}}" for lang in self.langs)]),
            "    " + " ".join(rf"\cmidrule(lr){{{2 + 2 * n}-{3 + 2 * n}}}" for n in range(len(self.langs))),
            r"     & " + " & ".join(["orig & rep"] * len(self.langs)) + r" \\",
            r"    \midrule",
        ]
        rows = []
        for cond, label in self.conditions:
            cells = []
            for lang in self.langs:
                if cond == "baseline":
                    cells += [pct(base_orig.get((bench, lang), NAN)), pct(base_rep.get((bench, lang), NAN))]
                else:
                    r = rep.get((cond, lang), NAN)
                    cells += [
                        pct(orig.get((cond, lang), NAN)),
                        bold(pct(r)) if not is_nan(r) and flipped.get((cond, lang)) else pct(r),
                    ]
            rows.append(self.line([label, *cells]))
        return self.table(
            "l" + "rr" * len(self.langs),
            head,
            rows,
            self.caption("type3", bench=self.label(bench)),
            f"tab:t3-{self.benches[bench]['short']}",
            wide=True,
        )

    def type4(self, bench: str) -> str:
        grid = _means(self.df[self.df["benchmark"] == bench], ["condition", "instr"], "delta_rep")
        threshold = self.benches[bench]["bold"]
        rows = []
        for cond, label in self.conditions:
            if cond == "baseline":
                continue
            values = [grid.get((cond, lang), NAN) for lang in self.langs]
            rows.append(
                self.line(
                    [
                        label,
                        self.seeds(cond),
                        *(bold(delta(v)) if not is_nan(v) and abs(v) > threshold else delta(v) for v in values),
                    ]
                )
            )
        return self.table(
            "lr" + "r" * len(self.langs),
            [self.line(["Condition", "$n_s$", *self.langs]), r"    \midrule"],
            rows,
            self.caption("type4", bench=self.label(bench), threshold=str(int(round(threshold * 100)))),
            f"tab:t4-{self.benches[bench]['short']}-delta",
        )

    def headroom(self) -> str:
        grid = _dedup(self.df).groupby(["benchmark", "instr"])["baseline_rep"].mean().unstack("instr")
        rows = []
        for b in self.benches:
            if b not in grid.index:  # the study's script stops here (KeyError); langdec writes the row empty
                rows.append(self.line([rf"\textsc{{{self.label(b)}}}", *["--"] * (len(self.langs) + 1)]))
                continue
            cells = [pct(grid.loc[b, lang] if lang in grid.columns else NAN) for lang in self.langs]
            rows.append(
                self.line(
                    [
                        rf"\textsc{{{self.label(b)}}}",
                        *cells,
                        pct(grid.loc[b, [l for l in self.langs if l in grid.columns]].mean()),
                    ]
                )
            )
        return self.table(
            "l" + "r" * (len(self.langs) + 1),
            [self.line(["Benchmark", *(f"instr={lang}" for lang in self.langs), "mean"]), r"    \midrule"],
            rows,
            self.caption("baseline_headroom"),
            "tab:baseline-headroom",
        )

    def ladder(self, lang: str) -> str:
        labels = dict(self.conditions)
        conds = [
            "condition-1-en-5k",
            "condition-1-en-20k",
            f"condition-2-{lang}-5k",
            f"condition-2-{lang}-20k",
            *(["condition-3-zh-5k"] if lang == "zh" else []),
            f"condition-5-{lang}-5k",
        ]
        diagonal = self.df[(self.df["data"] == lang) & (self.df["instr"] == lang)]

        def base(b: str) -> float:
            sub = diagonal[diagonal["benchmark"] == b].drop_duplicates(subset=["template"])
            return float(sub["baseline_rep"].mean()) if len(sub) else NAN

        rows = [r"    \textit{Baseline} & " + " & ".join(pct(base(b)) for b in self.benches) + r" \\"]
        for cond in conds:
            cells = []
            for b in self.benches:
                per_seed = (
                    diagonal[(diagonal["condition"] == cond) & (diagonal["benchmark"] == b)]
                    .groupby("seed")["cond_rep"]
                    .mean()
                )
                if not len(per_seed):
                    cells.append("--")
                    continue
                std = float(per_seed.std(ddof=1)) if len(per_seed) > 1 else NAN
                text = delta(float(per_seed.mean()) - base(b))
                cells.append(text if is_nan(std) else text + r"\,$\pm$\," + f"{std * 100:.1f}")
            rows.append(self.line([labels.get(cond, cond), *cells]))
        names = wording()["language_names"]
        return self.table(
            "l" + "r" * len(self.benches),
            [self.line(["Condition", *(rf"\textsc{{{self.label(b)}}}" for b in self.benches)]), r"    \midrule"],
            rows,
            self.caption("matched_ladder", name=names[lang], lang=lang),
            f"tab:matched-ladder-{lang}",
        )

    def cond2_vs_cond5(self) -> str:
        rows, previous = [], None
        for lang in ("es", "zh", "ur"):
            for b in self.benches:
                found = {}
                for which, cond in (("c2", f"condition-2-{lang}-5k"), ("c5", f"condition-5-{lang}-5k")):
                    sub = self.df[
                        (self.df["condition"] == cond) & (self.df["benchmark"] == b) & (self.df["instr"] == lang)
                    ]
                    found[which] = float(sub["delta_rep"].mean()) if len(sub) else NAN
                gap = NAN if is_nan(found["c2"]) or is_nan(found["c5"]) else found["c2"] - found["c5"]
                shown = bold(delta(gap)) if not is_nan(gap) and abs(gap) > 0.05 else delta(gap)
                rows.append(
                    f"    {lang if lang != previous else ''} & \\textsc{{{self.label(b)}}} & {delta(found['c2'])} & {delta(found['c5'])} & {shown} \\\\"
                )
                previous = lang
        return self.table(
            "llrrr",
            [r"    Lang & Benchmark & Cond 2 (5k) $\Delta$ & Cond 5 (5k) $\Delta$ & Gap (C2$-$C5) \\", r"    \midrule"],
            rows,
            self.caption("cond2_vs_cond5"),
            "tab:cond2-vs-cond5",
        )

    def cross_lingual(self) -> str:
        english = self.df[self.df["instr"] == "en"]
        labels = dict(self.conditions)
        rows = []
        for cond in wording()["cross_lingual_conditions"]:
            cells = []
            for b in self.benches:
                sub = english[(english["condition"] == cond) & (english["benchmark"] == b)]
                v = float(sub["delta_rep"].mean()) if len(sub) else NAN
                cells.append(
                    delta(v)
                    if is_nan(v) or -0.02 <= v <= 0.02
                    else bold(delta(v))
                    if v > 0.02
                    else r"\textit{" + delta(v) + "}"
                )
            rows.append(self.line([labels.get(cond, cond), *cells]))
        return self.table(
            "l" + "r" * len(self.benches),
            [
                self.line(["Condition", *(rf"\textsc{{{self.label(b)}}} $\Delta$" for b in self.benches)]),
                r"    \midrule",
            ],
            rows,
            self.caption("cross_lingual"),
            "tab:cross-lingual-transfer",
        )

    def sign_flips(self) -> str:
        sub = self.df[(self.df["condition"] != "baseline") & (self.df["benchmark"] == "sib200")]
        agg = (
            sub.groupby("condition")
            .agg(delta_orig=("delta_orig", "mean"), delta_rep=("delta_rep", "mean"), n_cells=("delta_rep", "count"))
            .reset_index()
        )
        kept = [
            r
            for _, r in agg.iterrows()
            if not (is_nan(r["delta_orig"]) or is_nan(r["delta_rep"]))
            and abs(r["delta_rep"]) > NOISE
            and r["delta_orig"] > 0
            and r["delta_rep"] < 0
        ]
        plain = {cond: label.replace(r"\textit{", "").replace("}", "") for cond, label in self.conditions}

        def four(x: float) -> str:
            return f"{MINUS}{abs(x):.4f}" if x < 0 else f"+{x:.4f}"

        rows = []
        if kept:  # the study's script stops with a KeyError when no condition flips; langdec writes the empty table
            import pandas as pd

            for _, r in pd.DataFrame(kept).sort_values("delta_rep").iterrows():
                rows.append(
                    f"    {plain.get(r['condition'], r['condition'])} & {int(r['n_cells'])} & {four(r['delta_orig'])} & "
                    f"{four(r['delta_rep'])} & {abs(r['delta_orig'] - r['delta_rep']):.4f} \\\\"
                )
        return self.table(
            "lrrrr",
            [
                r"    Condition & n cells & $\Delta_{\text{orig}}$ & $\Delta_{\text{refined}}$ & $|\text{shift}|$ \\",
                r"    \midrule",
            ],
            rows,
            self.caption("sign_flips"),
            "tab:sib200-sign-flips",
        )


def tables_tex(cells: "pd.DataFrame") -> str:
    """The whole file: the study's header comment, then its 22 tables in its order under its section comments."""
    t = Tables(cells)
    w = wording()
    sections = w["sections"]
    parts: list[tuple[str, list[str]]] = [
        (sections[0], [t.type1(b) for b in t.benches]),
        (sections[1], t.type2()),
        (sections[2], [t.type3(b) for b in t.benches]),
        (sections[3], [t.type4(b) for b in t.benches]),
        (sections[4], [t.headroom()]),
        (sections[5], [t.ladder(lang) for lang in ("es", "zh", "ur")]),
        (sections[6], [t.cond2_vs_cond5()]),
        (sections[7], [t.cross_lingual()]),
        (sections[8], [t.sign_flips()]),
    ]
    out = [*w["preamble"], ""]
    for heading, blocks in parts:
        out += [heading, ""]
        for block in blocks:
            out += [block, ""]
    return "\n".join(out)
