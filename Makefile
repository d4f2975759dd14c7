# Quick start: `make run` (gateway on http://127.0.0.1:8000) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install node-deps run test lint schema divisions bench bench-freshness clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/integrity-gateway serve

# The Node-based checks' packages (tests/node/package-lock.json), where npm is; without
# it those tests skip and say how to install it (CI requires them: .ci/run).
NODE_STAMP := tests/node/node_modules/.installed

$(NODE_STAMP): tests/node/package-lock.json
	npm ci --prefix tests/node --no-audit --no-fund --loglevel=error
	@touch $(NODE_STAMP)

node-deps:
	@if command -v npm >/dev/null 2>&1; then $(MAKE) --no-print-directory $(NODE_STAMP); \
	else echo "npm not found: the Node-based tests will skip (Debian: apt-get install nodejs npm)"; fi

test: install node-deps
	$(BIN)/python -m pytest

# The gateway against the floor of its stack (bench/speed.py); needs wrk (apt-get install wrk).
bench: install
	$(BIN)/python bench/speed.py

# How long a change made straight in MongoDB takes to show through GraphQL.
bench-freshness: install
	$(BIN)/python bench/freshness.py

lint: install
	$(BIN)/ruff check gateway resolvers loaders tests
	$(BIN)/ruff format --check gateway resolvers loaders tests
	$(BIN)/mypy

schema: install
	$(BIN)/integrity-gateway export-schema --output schema.graphql

# The GB/T 2260 division table (loaders/data/divisions.tsv) from the packages pinned in
# tests/node/package-lock.json; a test checks the committed table is what they give.
divisions: node-deps
	node tests/node/divisions.mjs > loaders/data/divisions.tsv

clean:
	rm -rf $(VENV) var .pytest_cache tests/node/node_modules
