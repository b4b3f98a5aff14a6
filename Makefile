# The two commands of the README. Each builds the environment on first use (tools/setup_env.sh:
# a venv in ~/.cache/merlib keyed by the dependency lists, linked as .venv) and reuses it after.
SHELL := /bin/bash
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
# The cached venv is shared by every checkout with the same dependencies; kernels started by
# papermill or JupyterLab must import *this* checkout's merlib whatever the editable install points at.
export PYTHONPATH := $(CURDIR)
VENV := .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup lock test demo lab clean-env

setup:
	@bash tools/setup_env.sh

# Re-resolve pyproject.toml's ranges and write requirements.lock (then commit it; make setup builds from it).
lock:
	@bash tools/setup_env.sh --lock

test: setup
	$(VENV)/bin/ruff check merlib tests tools
	$(VENV)/bin/ruff format --check merlib tests tools
	$(PY) -m pytest $(PYTEST_ARGS)

demo: setup
	$(PY) -m merlib demo

lab: setup
	$(VENV)/bin/jupyter lab --notebook-dir=. --no-browser $(if $(filter 0,$(shell id -u)),--allow-root)

clean-env:
	rm -rf "$$(readlink -f $(VENV))" $(VENV)
