"""One analysis layer: `report` and `study-tables` write their files through the one table registry, and every
statistic and threshold they share is one object, defined in `langdec.analysis.statistics` alone."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from langdec import cli
from langdec.analysis import report, statistics, study_tables, tables
from langdec.analysis.study import figures, latex, refined_tables, significance
from langdec.core.errors import LangdecError

PUBLISHED = Path(__file__).resolve().parents[1] / "fixtures" / "published" / "experiments"
ANALYSIS = Path(report.__file__).parent


def test_a_failed_table_lookup_lists_the_tables_of_both_commands():
    with pytest.raises(LangdecError) as failed:
        tables.get("report.mdx")
    message = str(failed.value)
    assert message.startswith("unknown table 'report.mdx'; valid tables: ")
    assert "report.json" in message and "significance.tsv" in message and "tables.tex" in message
    assert {t.command for t in tables.TABLES.values()} == {tables.REPORT, tables.STUDY}


@pytest.mark.slow
def test_both_commands_write_every_table_of_theirs_through_the_registry(store, tmp_path, monkeypatch):
    assert cli.main(["--quiet", "import-results", str(PUBLISHED)]) == 0
    calls = []
    write = tables.write

    def spy(build: tables.Build, folder: Path) -> list[str]:
        written = write(build, folder)
        calls.append((build, list(written)))  # the command adds its figures to the list after
        return written

    monkeypatch.setattr(tables, "write", spy)
    assert cli.main(["--quiet", "report", "--experiment", "imported-phase-3", "--out", str(tmp_path / "report")]) == 0
    assert (
        cli.main(["--quiet", "study-tables", "--experiment", "imported-phase-3", "--out", str(tmp_path / "tables")])
        == 0
    )
    assert [build.command for build, _ in calls] == ["report", "study-tables"]
    for (build, written), out in zip(calls, (tmp_path / "report", tmp_path / "tables")):
        assert written == [t.file for t in tables.of(build.command)]
        for table in tables.of(build.command):  # each file is its registry entry's text, byte for byte
            assert (out / table.file).read_bytes() == build.text(table.name).encode("utf-8"), table.file
    assert "significance.tsv" in {Path(f).name for f in calls[1][1]} and "report.md" in calls[0][1]


def test_each_statistic_and_threshold_is_one_object_shared_by_report_and_study_tables():
    for name in ("one_sample_t", "welch_t", "two_proportion_z", "bonferroni"):
        assert getattr(study_tables, name) is getattr(significance, name) is getattr(statistics, name), name
    assert study_tables.flips is refined_tables.flips is latex.flips is statistics.flips
    assert latex.NOISE is figures.NOISE is statistics.NOISE
    flip_defaults = {
        inspect.signature(f).parameters[p].default
        for f, p in (
            (report.run_stage, "flip_threshold"),
            (report.build, "flip_threshold"),
            (study_tables.conclusion_flips, "threshold"),
        )
    }
    assert flip_defaults == {statistics.FLIP_THRESHOLD}
    assert cli.parser().parse_args(["report"]).flip_threshold == statistics.FLIP_THRESHOLD


def _defined(path: Path) -> set[str]:
    """The public functions and constants a module defines at its top (not those it imports)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    names |= {
        t.id
        for n in tree.body
        if isinstance(n, (ast.Assign, ast.AnnAssign))
        for t in (n.targets if isinstance(n, ast.Assign) else [n.target])
        if isinstance(t, ast.Name)
    }
    return {n for n in names if not n.startswith("_")}


def test_no_other_analysis_module_defines_a_statistic_again():
    shared = _defined(Path(statistics.__file__))
    assert {
        "flips",
        "two_proportion_z",
        "one_sample_t",
        "FLIP_THRESHOLD",
        "ALPHA",
        "NOISE",
        "bootstrap_interval",
    } <= shared
    for path in ANALYSIS.rglob("*.py"):
        if path.name != "statistics.py":
            assert not _defined(path) & shared, (path.name, _defined(path) & shared)


def test_the_shared_rules_by_hand():
    assert statistics.flips(0.02, -0.02) and statistics.flips(-0.5, 0.011)
    assert (
        not statistics.flips(0.005, -0.5)
        and not statistics.flips(0.2, 0.3)
        and not statistics.flips(float("nan"), -1.0)
    )
    # 60/100 against 50/100: pooled 0.55, se = sqrt(0.55 * 0.45 * 0.02) = 0.070356, z = 1.4213, two-sided p = 0.1552
    z, p = statistics.two_proportion_z(0.1, 60, 100, 50, 100)
    assert (z, p) == (pytest.approx(1.42134, abs=1e-5), pytest.approx(0.15521, abs=1e-5))
    assert all(
        x != x for x in statistics.two_proportion_z(0.0, 10, 10, 10, 10)
    )  # every answer right: no variance, no test
    assert statistics.bonferroni(10) == pytest.approx(0.005) and statistics.bonferroni(0) != statistics.bonferroni(0)
