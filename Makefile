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
RAGCTL = $(BIN)/ragctl --data-dir $(DEMO_DIR)

.PHONY: install constraints demo test container-test lint bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_INDEX) "$(TORCH)"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $@

# The exact versions of everything installed, after a dependency change (torch stays apart).
constraints: install
	{ sed -n '1,3p' constraints.txt; $(BIN)/python -m pip freeze --exclude-editable \
	  | grep -v '^torch==' | grep -vi '^ragctl' | sort -f; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

# The whole loop on the embedded store, offline: ingest the demo corpus, search, replay the
# demo's logged feedback into a retune (a few CPU minutes) and see the gate's verdict, serve
# the candidate, search again, roll back.
demo: install
	rm -rf $(DEMO_DIR)
	$(RAGCTL) ingest examples/corpus
	$(RAGCTL) ingest examples/corpus
	$(RAGCTL) collections
	$(RAGCTL) search "How often do the cutting discs inside our espresso mills need swapping out?" -k 3
	$(RAGCTL) search "What are the drop temperature and drop time for roast profile R-14 Harbor?" -k 3
	$(RAGCTL) search "Someone wants their money back for a large order. Who has to sign off on it?" -k 3 --single-stage
	@echo "--- the same jargon query: keywords only, embeddings only, both fused (the default)"
	$(RAGCTL) search "R-14 Harbor drop temperature" -k 3 --mode sparse
	$(RAGCTL) search "R-14 Harbor drop temperature" -k 3 --mode dense
	$(RAGCTL) search "R-14 Harbor drop temperature" -k 3
	$(RAGCTL) retune --feedback examples/feedback.jsonl --eval-set examples/queries.jsonl --batch-size 16
	$(RAGCTL) models list
	@echo "--- serving the candidate regardless of the verdict, to show the swap and the rollback"
	$(RAGCTL) models activate 2 --force
	$(RAGCTL) search "How often do the cutting discs inside our espresso mills need swapping out?" -k 3
	$(RAGCTL) collections
	$(RAGCTL) rollback
	$(RAGCTL) models list

# The whole test suite, offline, on CPU (what CI runs).
test: install
	$(BIN)/ruff check .
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest

# The image built from deploy/Dockerfile and smoke-tested for real with podman, no registry
# needed (deploy/container_test.sh says what it checks; root installs podman when missing).
# On 2 busy cores: ~15 min cold, ~3 cached, ~7 after a source change; --cold rebuilds all.
#   make container-test CONTAINER_TEST_ARGS="--cold --report /tmp/container.json"
CONTAINER_TEST_ARGS ?=
container-test:
	deploy/container_test.sh $(CONTAINER_TEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: install
	$(BIN)/python bench/ingest_throughput.py

clean:
	rm -rf $(VENV) $(DEMO_DIR) .pytest_cache .ruff_cache .mypy_cache
