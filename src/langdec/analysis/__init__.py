"""Reading finished runs back: the report, the study's tables and figures, their statistics.

What each module owns:

- `collect`: the one collector: an experiment's finished evaluation runs from MLflow, their per-item records
  checked then read (`records`); the report's newest run per condition group (`latest_runs`, `collect`).
- `frames`: the per-item frames (generations, log-likelihood choices, executed code) and the no-pooled-tiers rule.
- `statistics`: every statistic and threshold, once: t tests, the two-proportion z test, Bonferroni, the bootstrap
  interval, the conclusion-flip rule and its band, the no-movement band.
- `baselines`: the like-for-like baseline of a report cell and its paired bootstrap interval.
- `comparison`: the report's cells (`Report`, `build`): each condition group against the baseline.
- `study_tables`: the study's units inside a report (paper tables, conclusion flips, significance, headline).
- `xnli_overlap`, `variants`: the report's XNLI word-overlap section and benchmarks beside their variants.
- `tables`: the one table registry (name, function, file) that `report` and `study-tables` write through.
- `render/`: terminal text, Markdown, HTML, report.json and plots, apart from computing.
- `report`: `langdec report` (`run_stage`), and the report's public names.
- `study/`: `langdec study-tables`: the study's analysis files, its LaTeX tables and figures.
"""
