# ragctl: developer and demo entry points. Everything runs from a local virtualenv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch first, pinned, so nothing pulls a multi-GB CUDA build. On a machine whose pip does
# not already find a CPU wheel, add the CPU index:
#   make install TORCH_INDEX=--extra-index-url=https://download.pytorch.org/whl/cpu
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
DEMO_DIR ?= .ragctl-demo

.PHONY: install demo test lint bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_INDEX) "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

# Ingest the demo corpus into a fresh embedded store and run a few searches (offline).
demo: install
	rm -rf $(DEMO_DIR)
	$(BIN)/ragctl --data-dir $(DEMO_DIR) ingest examples/corpus
	$(BIN)/ragctl --data-dir $(DEMO_DIR) ingest examples/corpus
	$(BIN)/ragctl --data-dir $(DEMO_DIR) collections
	$(BIN)/ragctl --data-dir $(DEMO_DIR) search "How often do the cutting discs inside our espresso mills need swapping out?" -k 3
	$(BIN)/ragctl --data-dir $(DEMO_DIR) search "What are the drop temperature and drop time for roast profile R-14 Harbor?" -k 3
	$(BIN)/ragctl --data-dir $(DEMO_DIR) search "Someone wants their money back for a large order. Who has to sign off on it?" -k 3 --single-stage

# The whole test suite, offline, on CPU (what CI runs).
test: install
	$(BIN)/ruff check .
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: install
	$(BIN)/python bench/ingest_throughput.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .ruff_cache .mypy_cache
