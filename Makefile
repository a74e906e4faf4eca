# The two commands of the README's quick start: `make up` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
UP_ARGS ?=

.PHONY: up install install-dev test test-fast lint typecheck contracts bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[examples]'
	touch $@

$(DEV_STAMP): pyproject.toml $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,examples]'
	touch $@

install: $(STAMP)

install-dev: $(DEV_STAMP)

## Create .venv, install aidc (with the examples' torch and scikit-learn), start the control plane.
up: $(STAMP)
	$(BIN)/aidc up $(UP_ARGS)

lint: $(DEV_STAMP)
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples

typecheck: $(DEV_STAMP)
	$(BIN)/mypy

contracts: $(DEV_STAMP)
	$(BIN)/lint-imports

## Lint, type checks, import contracts, then the whole test suite (starts PostgreSQL, Slurm and a Ray head itself).
test: $(DEV_STAMP) lint typecheck contracts
	bash scripts/install-test-deps.sh
	bash scripts/install-serve-runtimes.sh $(VENV)
	bash scripts/install-slurm.sh
	bash scripts/install-ray.sh
	$(BIN)/pytest -q

## Unit tests only: no servers, no processes, seconds.
test-fast: $(DEV_STAMP)
	$(BIN)/pytest -q tests/unit -m "not slow"

bench: $(DEV_STAMP)
	bash scripts/install-test-deps.sh
	bash scripts/install-serve-runtimes.sh $(VENV)
	command -v hey >/dev/null || (apt-get update -qq && apt-get install -y -qq hey)
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	command -v nginx >/dev/null || (apt-get update -qq && apt-get install -y -qq nginx-light || apt-get install -y -qq nginx)
	$(BIN)/python bench/submit.py
	$(BIN)/python bench/sched_cycle.py
	$(BIN)/python bench/telemetry.py
	$(BIN)/python bench/rules.py
	$(BIN)/python bench/failover.py
	bash scripts/install-slurm.sh
	$(BIN)/python bench/slurm_submit.py
	$(BIN)/python bench/tsdb.py
	$(BIN)/python bench/gateway.py --chat
	$(BIN)/python bench/energy_meter.py
	$(BIN)/python bench/plan_capacity.py
	$(BIN)/python bench/dashboard.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
