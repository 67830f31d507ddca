# The two commands: `make demo` (set up, then run every notebook into runs/<timestamp>/)
# and `make test` (set up, then the whole test suite). Both are idempotent.
PYTHON ?= python3
VENV ?= .venv
# CPU wheel by default; with a GPU set e.g. TORCH_SPEC=torch (CUDA build) EXTRAS=dev,gpu-cu12
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= dev
PROFILE ?= demo
JOBS ?= 2
BIN := $(VENV)/bin
# re-install when pyproject.toml changes (or after `rm -r .venv` for another TORCH_SPEC / EXTRAS)
STAMP := $(VENV)/.installed
PYTEST := $(BIN)/python -m pytest -n $(JOBS) --dist loadfile --timeout 1200

.PHONY: setup demo test lab

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[$(EXTRAS)]"
	touch $@

demo: setup
	$(BIN)/dlrmcomp run --profile $(PROFILE)

test: setup
	$(PYTEST) tests
	DLRMCOMP_HEADLESS=1 DLRMCOMP_RUNS_DIR=$$(mktemp -d) $(PYTEST) --nbval-lax --nbval-cell-timeout=600 notebooks/

lab: setup
	$(BIN)/jupyter lab --notebook-dir=notebooks
