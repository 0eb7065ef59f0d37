"""Training data: source streams, the English corpus, condition data kinds (transpiled, LLM-translated,
native, code benchmarks), the transpiler and the translation engine, validation splits, and the data
checks that gate it all (data_checks/ at the top level holds the suites)."""
