# The two commands of the README: `make run` and `make test`. Both set up what is missing first.
# `make test` is the quick loop (lint, unit and integration tiers, on two workers); CI also runs
# `make test-e2e`: the whole app through the local host, then the tests marked `slow`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup run test test-e2e test-all lint bench docs clean portal

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

setup: $(VENV)/.installed node_modules/.installed

run: setup
	$(BIN)/python -m localdev.run $(ARGS)

# The portal's script, bundled from portal/src (the bundle is committed; a unit test checks it is fresh).
portal: node_modules/.installed
	npm run --silent build:portal

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint
	$(BIN)/python -m pytest -n 2 -m "not slow" tests/unit tests/integration

test-e2e: setup
	$(BIN)/python -m pytest -n 2 tests/e2e
	$(BIN)/python -m pytest -n 2 -m slow tests/unit tests/integration

test-all: test test-e2e

bench: setup
	$(BIN)/python -m bench

# docs/troubleshooting.md is generated from the troubleshooting catalog (a unit test fails while it is stale).
docs: setup
	$(BIN)/python -m core.troubleshooting docs/troubleshooting.md

clean:
	rm -rf .local .pytest_cache .mypy_cache .ruff_cache
