"""The report's figures (PNG): delta vs baseline as heat maps (per condition, and per condition and instruction
language), per-seed accuracy, and the XNLI word-overlap bars; `draw` writes every one that has data."""

from __future__ import annotations

import collections
import statistics
from pathlib import Path

from langdec.analysis.comparison import Report
from langdec.analysis.frames import Frames
from langdec.analysis.xnli_overlap import OVERLAP_LABELS, OVERLAP_STATS
from langdec.evaluation.diagnostics import BUCKETS, XNLI_LABELS, overlap_share


def _pyplot():
    """pyplot on the Agg backend: figures are files, never windows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def draw(report: Report, frames: Frames, folder: Path) -> list[str]:
    """Every figure that has data, drawn into `folder`: their file names, in the report's order."""
    drawn = (
        heatmap(report, folder / "delta_heatmap.png"),
        heatmap_by_instruction(frames, report, folder / "delta_by_instruction.png"),
        seed_spread(report, folder / "seed_spread.png"),
        overlap_plot(report.overlap, folder / "xnli_overlap.png"),
    )
    return [p.name for p in drawn if p]


def say_if_nothing(ax, values: list[list[float]]) -> None:
    """A grid of zeros looks like a broken plot: say in it that there is nothing to compare."""
    finite = [v for row in values for v in row if v == v]
    if not finite or all(abs(v) < 1e-12 for v in finite):
        ax.text(
            0.5,
            0.5,
            "every delta is 0: no condition differs from the baseline here" if finite else "no comparable cells",
            transform=ax.transAxes,
            ha="center",
            va="center",
            fontsize=9,
            bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.9},
        )


def heatmap(report: Report, path: Path) -> Path | None:
    """Delta vs baseline per condition x (benchmark, data language): generative and log-likelihood panels."""
    plt = _pyplot()

    def grid(kind):
        groups = sorted({c.group for c in report.cells if c.kind == kind and c.group != "baseline"})
        columns = sorted({(c.benchmark, c.data) for c in report.cells if c.kind == kind})
        values = [
            [
                (
                    report.value(g, b, d, kind).delta
                    if report.value(g, b, d, kind) and report.value(g, b, d, kind).delta is not None
                    else float("nan")
                )
                for b, d in columns
            ]
            for g in groups
        ]
        return groups, columns, values

    panels = [
        (k, t)
        for k, t in (
            (f"gen.{report.extractor}", f"generative ({report.extractor} extractor)"),
            ("ll", "log-likelihood (no extractor)"),
        )
        if grid(k)[0]
    ]
    if not panels:
        return None
    rows = max(len(grid(k)[0]) for k, _ in panels)
    width = max(6, 0.6 * max(len(grid(k)[1]) for k, _ in panels))
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(width, 1.2 + len(panels) * (0.55 * rows + 0.9)), squeeze=False, layout="constrained"
    )
    image = None
    for ax, (kind, title) in zip(axes[:, 0], panels):
        groups, columns, values = grid(kind)
        image = ax.imshow(values, cmap="RdBu", vmin=-0.5, vmax=0.5, aspect="auto")
        ax.set_xticks(range(len(columns)), [f"{b}\n{d}" for b, d in columns], fontsize=7)
        ax.set_yticks(range(len(groups)), groups)
        for i, row in enumerate(values):
            for j, v in enumerate(row):
                if v == v:
                    cell = report.value(groups[i], columns[j][0], columns[j][1], kind)
                    mark = {"win": "\nW", "loss": "\nL"}.get(cell.outcome, "")
                    ax.text(j, i, f"{v:+.2f}{mark}", ha="center", va="center", fontsize=6)
        ax.set_title(f"Accuracy delta vs baseline: {title}", fontsize=9)
        say_if_nothing(ax, values)
    fig.colorbar(image, ax=axes[:, 0].tolist(), label="delta vs baseline")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def heatmap_by_instruction(frames: Frames, report: Report, path: Path) -> Path | None:
    """Delta vs baseline per (condition, instruction language) x (benchmark, data language)."""
    plt = _pyplot()

    kind = f"gen.{report.extractor}"
    if kind not in frames.kinds():
        return None
    acc = {
        tuple(str(v) for v in key): float(value)
        for key, value in frames.view(kind)
        .groupby(["group", "instr", "benchmark", "data"], observed=True)["correct"]
        .mean()
        .items()
    }
    rows = sorted({(g, i) for g, i, _, _ in acc if g != "baseline"})
    columns = sorted({(b, d) for _, _, b, d in acc})
    if not rows or not columns:
        return None

    def mean(key):
        return acc.get(key, float("nan"))

    values = [[mean((g, i, b, d)) - mean(("baseline", i, b, d)) for b, d in columns] for g, i in rows]
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(columns)), 1.2 + 0.4 * len(rows)), layout="constrained")
    image = ax.imshow(values, cmap="RdBu", vmin=-0.5, vmax=0.5, aspect="auto")
    ax.set_xticks(range(len(columns)), [f"{b}\n{d}" for b, d in columns], fontsize=7)
    ax.set_yticks(range(len(rows)), [f"{g} | instr {i}" for g, i in rows], fontsize=7)
    ax.set_title(f"Delta vs baseline by instruction language ({report.extractor} extractor)", fontsize=9)
    say_if_nothing(ax, values)
    fig.colorbar(image, ax=ax, label="delta vs baseline")
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def seed_spread(report: Report, path: Path) -> Path | None:
    """Per-seed accuracy of every condition group, per benchmark (mean over data languages)."""
    plt = _pyplot()

    kind = f"gen.{report.extractor}"
    cells = [c for c in report.cells if c.kind == kind]
    benches = sorted({c.benchmark for c in cells})
    groups = sorted({c.group for c in cells}, key=lambda g: (g != "baseline", g))
    if not cells:
        return None
    fig, axes = plt.subplots(1, len(benches), figsize=(3 * len(benches), 3), squeeze=False, layout="constrained")
    for ax, bench in zip(axes[0], benches):
        for x, group in enumerate(groups):
            seeds: dict[str, list[float]] = collections.defaultdict(list)
            for c in cells:
                if c.group == group and c.benchmark == bench:
                    for s, v in c.per_seed.items():
                        seeds[s].append(v)
            ys = [statistics.fmean(v) for v in seeds.values()]
            ax.scatter([x] * len(ys), ys, s=18)
        ax.set_xticks(range(len(groups)), groups, rotation=60, fontsize=7)
        ax.set_title(bench, fontsize=9)
        ax.set_ylim(-0.05, 1.05)
    axes[0][0].set_ylabel("accuracy per seed")
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def overlap_plot(rows: dict[str, dict[str, float]], path: Path) -> Path | None:
    """Left: accuracy per overlap bucket beside the reverse overlap bias, per condition. Right: the predicted-label
    distribution per condition and bucket, stacked."""
    if not rows:
        return None
    plt = _pyplot()
    groups = list(rows)
    fig, (ax, dist) = plt.subplots(1, 2, figsize=(max(9, 2.2 * len(groups)), 3.4), layout="constrained")
    width = 0.8 / len(OVERLAP_STATS)
    for i, (stat, label) in enumerate(zip(OVERLAP_STATS, OVERLAP_LABELS)):
        offset = (i - (len(OVERLAP_STATS) - 1) / 2) * width
        ax.bar(
            [x + offset for x in range(len(groups))],
            [rows[g].get(stat, float("nan")) for g in groups],
            width,
            label=label,
        )
    ax.set_xticks(range(len(groups)), groups, fontsize=7, rotation=30, ha="right")
    ax.set_ylim(0, 1)
    ax.set_title("XNLI by premise/hypothesis word overlap", fontsize=9)
    ax.legend(fontsize=6)
    bars = [(g, b) for g in groups for b in BUCKETS]
    bottom = [0.0] * len(bars)
    for label in XNLI_LABELS:
        heights = [rows[g].get(overlap_share(b, label), 0.0) for g, b in bars]
        dist.bar(range(len(bars)), heights, 0.8, bottom=bottom, label=label)
        bottom = [lo + h for lo, h in zip(bottom, heights)]
    dist.set_xticks(range(len(bars)), [f"{g} {b}" for g, b in bars], fontsize=6, rotation=60, ha="right")
    dist.set_ylim(0, 1)
    dist.set_title("Predicted labels by overlap bucket", fontsize=9)
    dist.legend(fontsize=6)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path
