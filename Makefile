# Quick start: `make run` (gateway on http://127.0.0.1:8000) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint schema bench bench-freshness clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/integrity-gateway serve

test: install
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

clean:
	rm -rf $(VENV) var .pytest_cache
