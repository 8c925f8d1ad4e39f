# Leadstream: the two commands a new user needs are `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: demo test reliability lint typecheck check-imports unit infra-up infra-down infra-status clean

# the scoring core's modules compiled at install (pyproject.toml [tool.leadstream] compiled): an
# edit to one of them reinstalls, which compiles it again (setup.py)
COMPILED := $(shell sed -n '/^compiled = \[/,/^]/s/^ *"\(.*\)",$$/\1/p' pyproject.toml | tr . / | sed 's/$$/.py/')

$(STAMP): pyproject.toml setup.py $(COMPILED)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## demo: start Kafka and Redis (local, or the ones configured), a worker, and stream traffic
demo: $(STAMP)
	$(BIN)/leadstream demo

## test: install, lint, type-check, start the real Kafka and Redis, run every test, stop them
test: $(STAMP) lint typecheck check-imports
	$(BIN)/leadstream infra run --for-tests --fresh -- $(BIN)/pytest $(PYTEST_ARGS)

## reliability: the reliability suite at full size (RELIABILITY.md), on a fresh local Kafka and Redis
reliability: $(STAMP)
	rm -f .run/reliability.jsonl
	LEADSTREAM_RELIABILITY=full LEADSTREAM_RELIABILITY_RESULTS=$(CURDIR)/.run/reliability.jsonl \
		$(BIN)/leadstream infra run --for-tests --fresh -- $(BIN)/pytest tests/reliability $(PYTEST_ARGS); \
		status=$$?; $(BIN)/python tests/reliability/report.py .run/reliability.jsonl; exit $$status

lint: $(STAMP)
	$(BIN)/ruff check stream schemas tests setup.py
	$(BIN)/ruff format --check stream schemas tests setup.py

typecheck: $(STAMP)
	$(BIN)/mypy

check-imports: $(STAMP)
	$(BIN)/lint-imports

## unit: the tests that need no broker or Redis
unit: $(STAMP)
	$(BIN)/pytest -m "not integration" $(PYTEST_ARGS)

infra-up: $(STAMP)
	$(BIN)/leadstream infra up

infra-down: $(STAMP)
	$(BIN)/leadstream infra down

infra-status: $(STAMP)
	$(BIN)/leadstream infra status

clean:
	-$(BIN)/leadstream infra down
	rm -rf .run .pytest_cache .mypy_cache .ruff_cache
