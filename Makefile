# The two commands: `make demo` (set up, then run every notebook into runs/<timestamp>/)
# and `make test` (set up, then the whole test suite). Both are idempotent.
PYTHON ?= python3
VENV ?= .venv
# CPU wheel by default; a GPU user sets e.g. TORCH_SPEC="torch" (CUDA build) or another pin.
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= dev
PROFILE ?= demo
JOBS ?= 2
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lab clean-venv

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[$(EXTRAS)]"
	$(BIN)/python -m ipykernel install --user --name dlrmcomp --display-name "dlrmcomp (.venv)" >/dev/null
	touch $(STAMP)

demo: setup
	$(BIN)/dlrmcomp run --profile $(PROFILE)

test: setup
	$(BIN)/python -m pytest -n $(JOBS) --dist loadfile tests
	$(BIN)/python -m pytest -n $(JOBS) --dist loadfile --nbval-lax -p no:randomly \
		--nbval-kernel-name dlrmcomp notebooks/

lab: setup
	$(BIN)/jupyter lab --notebook-dir=notebooks

clean-venv:
	rm -rf $(VENV)
