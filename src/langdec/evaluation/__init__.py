"""Evaluating a model on the benchmarks: benchmarks as data, prompts and templates, backends,
extractors, the data x instruction matrix, diagnostics, generated code in a sandbox, and the
per-item records every evaluation run carries."""
