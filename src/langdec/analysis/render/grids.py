"""Tables as grids of strings, shared by the terminal and Markdown: a report cell's text, the study's paper
and headline grids, column alignment."""

from __future__ import annotations

from langdec.analysis.comparison import ReportCell
from langdec.analysis.study_tables import StudyTables


def aligned(grid: list[list[str]], *, strip: bool = True) -> str:
    """The grid's header, a rule of dashes, then its rows, columns padded to their widest value."""
    widths = [max(len(row[i]) for row in grid) for i in range(len(grid[0]))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in grid]
    lines = [line.rstrip() for line in lines] if strip else lines
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])


def pipe_table(grid: list[list[str]]) -> list[str]:
    """The grid as a Markdown table: its first row the header."""
    return [
        "| " + " | ".join(grid[0]) + " |",
        "|" + "---|" * len(grid[0]),
        *("| " + " | ".join(row) + " |" for row in grid[1:]),
    ]


def _marks(cell: ReportCell) -> str:
    """One letter per kind of flag: o = mostly one label, f = the conclusion flips between extractors."""
    marks = ("o" if any(f.startswith("mostly one label") for f in cell.flags) else "") + (
        "f" if any(f.startswith("sign flips") for f in cell.flags) else ""
    )
    return f" {marks}" if marks else ""


def cell_text(cell: ReportCell) -> str:
    """mean±std (delta W/L) marks [interval] of a report cell."""
    text = f"{cell.mean:.3f}" + (f"±{cell.std:.3f}" if len(cell.per_seed) > 1 else "")
    if cell.delta is not None:
        mark = {"win": " W", "loss": " L"}.get(cell.outcome, "")
        text += f" ({cell.delta:+.3f}{mark})"
    interval = f" [{cell.ci[0]:+.3f}, {cell.ci[1]:+.3f}]" if cell.ci else ""  # the delta's, so a reader sees its width
    return text + _marks(cell) + interval


def pct(x: float | None, signed: bool = False) -> str:
    if x is None or x != x:
        return ""
    return f"{x * 100:+.1f}" if signed else f"{x * 100:.1f}"


def p_value(p: float) -> str:
    return "" if p != p else f"{p:.5f}"


def paper_benchmarks(tables: StudyTables, extractor: str) -> list[str]:
    return sorted({r.benchmark for r in tables.paper if r.extractor == extractor})


def paper_grid(tables: StudyTables, extractor: str, benchmark: str) -> list[list[str]]:
    """Header row plus one row per condition: seeds, then value (delta) in percent per instruction language."""
    rows = [r for r in tables.paper if r.extractor == extractor and r.benchmark == benchmark]
    instrs = sorted({r.instr for r in rows})
    groups = sorted({r.group for r in rows}, key=lambda g: (g != "baseline", g))
    at = {(r.group, r.instr): r for r in rows}
    grid = [["condition", "seeds", *(f"instr={i}" for i in instrs)]]
    for g in groups:
        seeds = max(r.n_seeds for r in rows if r.group == g)
        values = []
        for i in instrs:
            r = at.get((g, i))
            values.append(
                "" if r is None else pct(r.value) + (f" ({pct(r.delta, True)})" if r.delta is not None else "")
            )
        grid.append([g, "-" if g == "baseline" else str(seeds), *values])
    return grid


def headline_grid(tables: StudyTables) -> list[list[str]]:
    grid = [
        ["by", "", "cells", "acc strict", "acc refined", "change", "no answer strict", "no answer refined", "change"]
    ]
    for h in tables.headline:
        grid.append(
            [
                h.by,
                h.value,
                str(h.cells),
                pct(h.acc_strict),
                pct(h.acc_refined),
                pct(h.acc_refined - h.acc_strict, True),
                pct(h.unparsed_strict),
                pct(h.unparsed_refined),
                pct(h.unparsed_refined - h.unparsed_strict, True),
            ]
        )
    return grid
