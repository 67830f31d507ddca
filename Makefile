# The two commands: `make demo` (set up, then run every notebook into runs/<timestamp>/)
# and `make test` (set up, then the whole test suite). Both are idempotent.
PYTHON ?= python3
VENV ?= .venv
# CPU wheel by default; with a GPU set e.g. TORCH_SPEC=torch (CUDA build) EXTRAS=dev,gpu-cu12
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= dev
# torchrec without its dependencies (they pull the CUDA fbgemm-gpu); the `torchrec` extra (in dev) brings
# fbgemm-gpu-cpu and the rest. With a CUDA torch set TORCHREC_SPEC= and install torchrec + fbgemm-gpu yourself.
TORCHREC_SPEC ?= torchrec==1.8.0
PROFILE ?= demo
JOBS ?= 2
BIN := $(VENV)/bin
# re-install when pyproject.toml changes (or after `rm -r .venv` for another TORCH_SPEC / EXTRAS)
STAMP := $(VENV)/.installed
PYTEST := $(BIN)/python -m pytest -n $(JOBS) --dist loadfile --timeout 1200

# jupyter refuses to start as root (most containers) unless told --allow-root
LAB_FLAGS ?= $(if $(filter 0,$(shell id -u)),--allow-root)

.PHONY: setup demo test test-browser lab

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[$(EXTRAS)]"
	test -z "$(TORCHREC_SPEC)" || $(BIN)/python -m pip install -q --no-deps "$(TORCHREC_SPEC)"
	touch $@

demo: setup
	$(BIN)/dlrmcomp run --profile $(PROFILE)

test: setup
	$(PYTEST) tests
	DLRMCOMP_HEADLESS=1 DLRMCOMP_RUNS_DIR=$$(mktemp -d) $(PYTEST) --nbval-lax --nbval-cell-timeout=600 notebooks/

# notebooks 00 and 03 in JupyterLab + headless Chromium (apt-get install chromium chromium-driver);
# skips where no browser is installed. `make test` runs it too when one is.
test-browser: setup
	$(BIN)/python -m pytest -m browser --timeout 1200 -v tests/test_browser.py

lab: setup
	$(BIN)/jupyter lab --notebook-dir=notebooks $(LAB_FLAGS)
