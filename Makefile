# Two commands do all the setup on a fresh machine:
#   make demo   create .venv if missing, install torch (CPU 2.13.0 unless you chose another) and neuralframe, run the demo
#   make test   the same setup, then the test suite
# Choose another torch with TORCH=..., e.g. `make demo TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"`.

PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

export HF_HUB_OFFLINE := 1
export NUMBA_CACHE_DIR := $(CURDIR)/.cache/numba
export HF_HOME := $(CURDIR)/.cache/hf
export TORCHINDUCTOR_CACHE_DIR := $(CURDIR)/.cache/inductor

.PHONY: setup demo test lint bench clean

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@# torch first, so that nothing below pulls a multi-GB CUDA build; keep a torch already installed
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install $(TORCH)
	$(PY) -m pip install -e ".[dev,distributed]"
	@touch $@

setup: $(VENV)/.installed

demo: setup
	$(VENV)/bin/neuralframe demo

test: setup
	$(PY) -m pytest -q $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/lint-imports

bench: setup
	$(VENV)/bin/neuralframe bench pipeline --json

clean:
	rm -rf out .cache .pytest_cache
