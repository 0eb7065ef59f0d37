"""The comparison report: each condition against the baseline, per benchmark and data language.

A row is one (condition, language) adapter group; a column one (benchmark, data
language). A cell's value is the mean accuracy over templates and instruction
languages for each seed, then the mean (and standard deviation) over seeds, so
seeds and templates are never counted as separate cells. The delta is against
the baseline's value for the same cell and the same averaging.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from . import tracking
from .atomic import write_text
from .evaluation.stage import EVAL_STAGE


@dataclass
class ReportCell:
    group: str  # "baseline", "cond1", "cond2-zh"
    benchmark: str
    data: str
    per_seed: dict[str, float]
    kind: str  # gen.<extractor> | ll

    @property
    def mean(self) -> float:
        return statistics.fmean(self.per_seed.values())

    @property
    def std(self) -> float:
        return statistics.stdev(self.per_seed.values()) if len(self.per_seed) > 1 else 0.0


@dataclass
class Report:
    cells: list[ReportCell] = field(default_factory=list)
    extractor: str = "refined"

    def value(self, group: str, benchmark: str, data: str, kind: str) -> ReportCell | None:
        for c in self.cells:
            if (c.group, c.benchmark, c.data, c.kind) == (group, benchmark, data, kind):
                return c
        return None


def _group(tags: dict[str, str]) -> str:
    cond = tags.get("condition", "?")
    if cond == "baseline":
        return "baseline"
    lang = tags.get("lang")
    return f"cond{cond}-{lang}" if lang and cond not in ("1",) else f"cond{cond}"


def collect(experiment: str, extractor: str = "refined", tier: str | None = None) -> Report:
    """Read every finished evaluation run of an experiment into report cells."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    flt = f"tags.`langdec.stage` = '{EVAL_STAGE}' and attributes.status = 'FINISHED'"
    runs = client.search_runs([tracking.experiment_id(experiment)], filter_string=flt, order_by=["attributes.start_time DESC"], max_results=5000)
    latest: dict[tuple[str, str, str], object] = {}
    for run in runs:  # newest first: one run per (group, tier, seed)
        tags = run.data.tags
        if tier and tags.get("condition") != "baseline" and tags.get("tier") != tier:
            continue
        latest.setdefault((_group(tags), tags.get("tier", ""), tags.get("seed", "")), run)
    acc: dict[tuple[str, str, str, str], dict[str, list[float]]] = {}
    prefix = f"gen.{extractor}."
    for (group, _tier, seed), run in latest.items():
        for key, value in run.data.metrics.items():
            if key.startswith(prefix) and key.endswith(".acc"):
                _, _, template, bench, data, instr, _ = key.split(".")
                kind = f"gen.{extractor}"
            elif key.startswith("ll.") and key.endswith(".acc"):
                _, bench, data, _ = key.split(".")
                kind = "ll"
            else:
                continue
            acc.setdefault((group, bench, data.split(":", 1)[1], kind), {}).setdefault(seed, []).append(value)
    report = Report(extractor=extractor)
    for (group, bench, data, kind), seeds in sorted(acc.items()):
        report.cells.append(ReportCell(group, bench, data, {s: statistics.fmean(v) for s, v in seeds.items()}, kind))
    return report


def table(report: Report, kind: str) -> tuple[list[str], list[str], list[list[str]]]:
    groups = sorted({c.group for c in report.cells if c.kind == kind}, key=lambda g: (g != "baseline", g))
    columns = sorted({(c.benchmark, c.data) for c in report.cells if c.kind == kind})
    rows = []
    for group in groups:
        row = []
        for bench, data in columns:
            cell = report.value(group, bench, data, kind)
            base = report.value("baseline", bench, data, kind)
            if cell is None:
                row.append("")
                continue
            text = f"{cell.mean:.3f}"
            if len(cell.per_seed) > 1:
                text += f"±{cell.std:.3f}"
            if base is not None and group != "baseline":
                text += f" ({cell.mean - base.mean:+.3f})"
            row.append(text)
        rows.append(row)
    return groups, [f"{b}/{d}" for b, d in columns], rows


def markdown(report: Report) -> str:
    out = ["# langdec comparison report", "",
           "Each value is the mean accuracy over templates and instruction languages (then over seeds, ± std when",
           "there are several); the number in brackets is the difference from the baseline for the same cell.", ""]
    for kind, title in ((f"gen.{report.extractor}", f"Generative accuracy ({report.extractor} extractor)"), ("ll", "Log-likelihood accuracy (no extractor)")):
        groups, columns, rows = table(report, kind)
        if not groups:
            continue
        out += [f"## {title}", "", "| condition | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
        out += [f"| {g} | " + " | ".join(r) + " |" for g, r in zip(groups, rows)]
        out.append("")
    return "\n".join(out)


def _delta_grid(report: Report, kind: str) -> tuple[list[str], list[tuple[str, str]], list[list[float]]]:
    groups = sorted({c.group for c in report.cells if c.kind == kind and c.group != "baseline"})
    columns = sorted({(c.benchmark, c.data) for c in report.cells if c.kind == kind})
    grid = []
    for g in groups:
        row = []
        for b, d in columns:
            cell, base = report.value(g, b, d, kind), report.value("baseline", b, d, kind)
            row.append(cell.mean - base.mean if cell and base else float("nan"))
        grid.append(row)
    return groups, columns, grid


def heatmap(report: Report, path: Path) -> Path | None:
    """Delta vs baseline per condition x (benchmark, data language): generative and log-likelihood panels."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(k, t) for k, t in ((f"gen.{report.extractor}", f"generative ({report.extractor} extractor)"), ("ll", "log-likelihood (no extractor)"))
              if _delta_grid(report, k)[0]]
    if not panels:
        return None
    width = max(6, 0.6 * max(len(_delta_grid(report, k)[1]) for k, _ in panels))
    fig, axes = plt.subplots(len(panels), 1, figsize=(width, 1.6 + 1.1 * len(panels) * max(2, len(_delta_grid(report, panels[0][0])[0])) / 2 + 0.8 * len(panels)), squeeze=False, layout="constrained")
    image = None
    for ax, (kind, title) in zip(axes[:, 0], panels):
        groups, columns, grid = _delta_grid(report, kind)
        image = ax.imshow(grid, cmap="RdBu", vmin=-0.5, vmax=0.5, aspect="auto")
        ax.set_xticks(range(len(columns)), [f"{b}\n{d}" for b, d in columns], fontsize=7)
        ax.set_yticks(range(len(groups)), groups)
        for i, row in enumerate(grid):
            for j, v in enumerate(row):
                if v == v:
                    ax.text(j, i, f"{v:+.2f}", ha="center", va="center", fontsize=6)
        ax.set_title(f"Accuracy delta vs baseline: {title}", fontsize=9)
    fig.colorbar(image, ax=axes[:, 0].tolist(), label="delta vs baseline")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def print_table(report: Report, kind: str | None = None) -> str:
    """Terminal table: one row per (benchmark, data language), one column per condition."""
    kind = kind or f"gen.{report.extractor}"
    groups, columns, rows = table(report, kind)
    if not groups:
        return "(no evaluation runs yet)"
    title = f"{kind} accuracy" + (" (no extractor)" if kind == "ll" else "") + "; (delta vs baseline)"
    header = ["benchmark/data", *groups]
    body = [[column, *(rows[g][c] for g in range(len(groups)))] for c, column in enumerate(columns)]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    lines = [title, "  ".join(h.ljust(w) for h, w in zip(header, widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in body]
    return "\n".join(lines)


def run_stage(experiment: str, out_dir: Path, *, extractor: str = "refined", tier: str | None = None) -> tuple[Report, Path]:
    import mlflow

    report = collect(experiment, extractor, tier)
    out_dir.mkdir(parents=True, exist_ok=True)
    md_path = out_dir / "report.md"
    write_text(md_path, markdown(report))
    png = heatmap(report, out_dir / "delta_heatmap.png")
    summary = [{"group": c.group, "benchmark": c.benchmark, "data": c.data, "kind": c.kind, "mean": c.mean, "std": c.std,
                "seeds": sorted(c.per_seed)} for c in report.cells]
    write_text(out_dir / "report.json", json.dumps(summary, indent=2))
    with tracking.stage_run(experiment, "report", "report", params={"extractor": extractor, "tier": tier or "all"}, tags={},
                            reuse=False):
        mlflow.log_artifact(str(md_path))
        mlflow.log_artifact(str(out_dir / "report.json"))
        if png:
            mlflow.log_artifact(str(png))
    return report, md_path
