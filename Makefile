# Two promises (see README): `make demo` sets up and runs the default recipe,
# `make test` sets up and runs the tests. Both create .venv on first use.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
PIP     := $(BIN)/python -m pip install --disable-pip-version-check -q -c constraints.txt
PACKAGES := -e packages/core[launch] -e packages/vision[cleanlab] -e packages/weak_supervision[sentence] -e packages/detection_seg
STAMP   := $(VENV)/.installed

.PHONY: setup demo test bench clean

$(STAMP): constraints.txt requirements-test.txt packages/*/pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(PIP) $(PACKAGES) -r requirements-test.txt
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/accelerate launch --num_processes 1 --num_machines 1 --mixed_precision no --dynamo_backend no \
		tools/run.py kd_digits

test: $(STAMP)
	$(BIN)/ruff check packages tools tests benchmarks
	$(BIN)/python -m pytest tests

bench: $(STAMP)
	$(PIP) -r requirements-bench.txt
	$(BIN)/python benchmarks/amal_meta_step.py

clean:
	rm -rf $(VENV)
