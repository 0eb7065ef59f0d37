"""The study's Phase-3 analysis files, written by langdec from its evaluation runs.

The study (legesher/research, expedition-tiny-aya/) builds its analysis with a dozen scripts run by hand
(analysis/phase-3/data-refresh-cookbook.md). `langdec study-tables` writes every file they write, with their
names, columns, sort orders and float formats, from imported runs and from langdec's own evaluation runs alike;
`FILES` (`langdec.analysis.study.files`) lists them with the script each reproduces, and langdec's named
improvements beside them; each is a table of the analysis' one registry (`langdec.analysis.tables`). Modules:
`data` (the runs as the study's sessions and cells, read by `langdec.analysis.collect`), `refined_tables`
(build_comparison, build_vs_baseline, build_framework_comparison), `significance`, `latex` (build_phase3_tables),
`breakdowns` (correct-via-constant, XNLI label bias, SIB-200 categories), `variance` (cross-seed variance),
`figures`, `improvements` (langdec's own files), `command` (the CLI's run). Their statistical tests and thresholds
are those of `langdec.analysis.statistics`.
"""
