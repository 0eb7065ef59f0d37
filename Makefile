# The two commands a newcomer needs:  make demo   and   make test
VENV ?= .venv
BIN := $(VENV)/bin
export MLFLOW_DISABLE_TELEMETRY := true

.PHONY: install demo test bench clean

$(BIN)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# The CPU build of torch; a looser spec would pull a multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/.installed

# Baseline, condition 1 and condition 2 (zh, es, ur) on the offline smoke profile:
# transpile -> data checks -> LoRA training -> evaluation -> registry -> report.
demo: install
	$(BIN)/langdec ladder experiments/ladders/smoke.yaml

test: install
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python benchmarks/transpile_throughput.py --limit 300

clean:
	rm -rf .langdec mlflow.db mlruns
