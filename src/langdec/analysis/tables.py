"""The one registry of the tables the analysis commands write (`TABLES`): each a name, the function that makes
its text and the file it goes to under the command's folder. `langdec report` writes the tables of "report",
`langdec study-tables` those of "study-tables", both with `write`; a table that reads another (the study's later
scripts read an earlier one's file as written) asks its `Build` for that table's text, made once. Figures are
drawn apart (`render.plots`, `study.figures`); which study script each file reproduces is `study.files`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from langdec.analysis.render.html import html
from langdec.analysis.render.markdown import markdown
from langdec.analysis.render.report_json import report_json
from langdec.analysis.study import breakdowns, figures, improvements, latex, refined_tables, significance, variance
from langdec.analysis.study.files import COMPARISON, FILES, FRAMEWORK, VERSUS
from langdec.core.atomic import atomic_path
from langdec.core.registry import Registry

if TYPE_CHECKING:
    import pandas as pd

    from langdec.analysis.comparison import Report
    from langdec.analysis.study.data import StudyData

T = TypeVar("T")
REPORT = "report"
STUDY = "study-tables"


@dataclass(frozen=True)
class Table:
    name: str
    function: Callable[["Build"], str]  # the file's text, from the command's inputs (`Build.inputs`)
    file: str  # where it is written, relative to the command's output folder
    command: str  # REPORT | STUDY


@dataclass
class ReportInputs:
    report: "Report"
    figures: list[str]  # the figure files drawn beside the report, which report.md shows
    folder: Path  # where they are (report.html embeds them)


class Build:
    """One command's inputs and what has been made from them: each table's text and shared intermediate values
    (`once`), each made once."""

    def __init__(self, command: str, inputs: Any) -> None:
        self.command, self.inputs = command, inputs
        self._made: dict[str, Any] = {}

    def once(self, key: str, make: Callable[[], T]) -> T:
        if key not in self._made:
            self._made[key] = make()
        return self._made[key]

    def text(self, name: str) -> str:
        """The text of the table `name` (a command's own table, or one it reads)."""
        return self.once(f"table:{name}", lambda: get(name).function(self))


TABLES: Registry[Table] = Registry("table")


def get(name: str) -> Table:
    return TABLES.get(name)


def of(command: str) -> list[Table]:
    """The command's tables, in the order they were registered."""
    return [table for table in TABLES.values() if table.command == command]


def write(build: Build, folder: Path) -> list[str]:
    """Every table of the build's command written under `folder`, as UTF-8 bytes (\\n line ends on every platform),
    each file replaced atomically; their paths relative to `folder`."""
    written = []
    for table in of(build.command):
        path = folder / table.file
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            tmp.write_bytes(build.text(table.name).encode("utf-8"))
        written.append(table.file)
    return written


# --------------------------------------------------------------------------- report
def _report(name: str, function: Callable[[Build], str]) -> None:
    TABLES.add(name, Table(name, function, name, REPORT))


_report("report.md", lambda b: markdown(b.inputs.report, b.inputs.figures))
_report("report.html", lambda b: html(b.text("report.md"), b.inputs.folder))  # self-contained, on disk
_report("report.json", lambda b: report_json(b.inputs.report))


# --------------------------------------------------------------------------- study-tables
def study_cells(b: Build) -> list[refined_tables.Cell]:
    """The study's cells in its walking order (`b.inputs` is the study's data, `study.data.load`)."""
    inputs: StudyData = b.inputs
    return b.once("cells", lambda: refined_tables.cells_of(inputs.cells))


def study_versus(b: Build) -> list[refined_tables.Versus]:
    return b.once("versus", lambda: refined_tables.versus(study_cells(b)))


def vs_frame(b: Build) -> "pd.DataFrame":
    """vs_baseline_cells.tsv read back as the study's later scripts read it (its deltas rounded to four decimals)."""
    return b.once("vs_frame", lambda: significance.read_cells(b.text("vs_baseline_cells.tsv")))


def signflips(b: Build) -> tuple["pd.DataFrame", str]:
    """The conclusion flips sorted by |shift| and fig04's appendix TSV, from conclusion_flips.tsv as written."""
    return b.once("signflips", lambda: figures.signflip_appendix(b.text("conclusion_flips.tsv")))


def _from_group(script: str, make: Callable[[Build], dict[str, str]]) -> Callable[[str], Callable[[Build], str]]:
    """One script's files made together (`make` gives {file name: text}), each table reading its own."""
    return lambda name: lambda b: b.once(script, lambda: make(b))[name]


_GROUPS = {
    COMPARISON: _from_group(COMPARISON, lambda b: refined_tables.comparison_files(study_cells(b))),
    VERSUS: _from_group(VERSUS, lambda b: refined_tables.versus_files(study_versus(b))),
    FRAMEWORK: _from_group(FRAMEWORK, lambda b: refined_tables.framework_files(study_cells(b))),
}
_RECOVERABLE = ("langdec_recoverable.tsv", "langdec_recoverable_by_benchmark.tsv")  # per cell, per benchmark
_recoverable = _from_group("recoverable", lambda b: dict(zip(_RECOVERABLE, improvements.recoverable(b.inputs.cells))))
_BREAKDOWNS: dict[str, Callable[["pd.DataFrame", "pd.DataFrame"], str]] = {
    "correct-via-constant-rates": lambda sib200, xnli: breakdowns.correct_via_constant(sib200),
    "xnli-label-distributions": lambda sib200, xnli: breakdowns.xnli_label_distributions(xnli),
    "sib200-category-accuracy": lambda sib200, xnli: breakdowns.sib200_category_accuracy(sib200),
}


def _breakdown(make: Callable[["pd.DataFrame", "pd.DataFrame"], str], *, strays: bool) -> Callable[[Build], str]:
    """A per-item breakdown of the SIB-200 and XNLI rows: stray files counted as the study's scripts count them, or
    (langdec's) the study's sessions alone, no stray file counted as one more run of a seed."""

    def table(b: Build) -> str:
        study: StudyData = b.inputs
        if strays:
            return make(study.sib200, study.xnli)
        return make(
            *b.once(
                "without_strays",
                lambda: (breakdowns.without_strays(study.sib200), breakdowns.without_strays(study.xnli)),
            )
        )

    return table


_STUDY: dict[str, Callable[[Build], str]] = {
    "significance.tsv": lambda b: significance.study_file(b.text("vs_baseline_cells.tsv")),
    "significance_true_n.tsv": lambda b: significance.true_n_file(study_versus(b)),
    "tables.tex": lambda b: latex.tables_tex(vs_frame(b)),
    "cross-seed-variance.tsv": lambda b: variance.study_file(vs_frame(b)),
    "cross-seed-variance_exact.tsv": lambda b: variance.exact_file(study_versus(b)),
    **{f"{name}.tsv": _breakdown(make, strays=True) for name, make in _BREAKDOWNS.items()},
    **{f"{name}_without_strays.tsv": _breakdown(make, strays=False) for name, make in _BREAKDOWNS.items()},
    **{name: _recoverable(name) for name in _RECOVERABLE},
    "framework_parse_failure_recovery_per_cell.tsv": lambda b: improvements.recovery_per_cell(study_cells(b)),
    "fig04_signflip_appendix.tsv": lambda b: signflips(b)[1],
}


def _register_study() -> None:
    """A table for every file `study.files` lists that is not a figure, in its order: the three scripts that write
    several files at once by the script, the others by name; a listed file without a function fails here."""
    for f in FILES:
        if f.name.endswith((".png", ".pdf")):
            continue
        function = _GROUPS[f.made_by](f.name) if f.made_by in _GROUPS else _STUDY[f.name]
        TABLES.add(f.name, Table(f.name, function, f"{f.folder}/{f.name}", STUDY))
    unlisted = sorted(set(_STUDY) - set(TABLES))
    if unlisted:  # written but not in study.files: the manifest could not say what it reproduces
        raise ValueError(f"study tables missing from study.files.FILES: {', '.join(unlisted)}")


_register_study()
