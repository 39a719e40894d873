# Tideflow developer commands. `make help` lists them by section.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON  ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
PY      := $(BIN)/python
SANDBOX ?= .sandbox
PYTEST_ARGS ?=

export PATH := $(abspath $(BIN)):$(PATH)

##@ Setup

.PHONY: help
help: ## Show this help, grouped by section.
	@awk 'BEGIN {FS = ":.*##"} /^##@/ {printf "\n\033[1m%s\033[0m\n", substr($$0, 5)} \
	  /^[a-zA-Z0-9_-]+:.*##/ {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/activate pyproject.toml constraints.txt
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $@

.PHONY: install
install: $(VENV)/.installed ## Create the virtualenv and install Tideflow with its dev tools.

.PHONY: lock
lock: $(BIN)/activate ## Re-resolve the dependencies and rewrite constraints.txt.
	$(PY) -m pip install --quiet --upgrade -e '.[dev]'
	$(PY) -m pip freeze --exclude-editable | sort > constraints.txt

##@ Quality

.PHONY: lint
lint: install ## Ruff (lint and format check) and mypy --strict.
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

.PHONY: fmt
fmt: install ## Apply ruff's fixes and formatting.
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

.PHONY: crds
crds: install ## Regenerate crds/ from the pydantic models in tideflow.core.
	$(PY) -m tideflow.core.crdgen --write

##@ Tests

.PHONY: test
test: lint test-unit test-integration ## Lint, type-check and run the whole test suite (what CI runs).

.PHONY: test-unit
test-unit: install ## Unit tests: no cluster, no processes.
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

.PHONY: test-integration
test-integration: install ## Integration tests against a sandbox cluster started per test session.
	$(BIN)/pytest tests/integration $(PYTEST_ARGS)

.PHONY: test-soak
test-soak: install ## Long soak tests CI skips: minutes of schedules under operator SIGKILLs and a second operator.
	$(BIN)/pytest tests/integration -m soak $(PYTEST_ARGS)

.PHONY: e2e-kind
e2e-kind: install ## End-to-end tests on a kind cluster (skipped with a reason without Docker/kind).
	$(BIN)/pytest tests/e2e -m e2e $(PYTEST_ARGS)

##@ Image and chart

IMAGE     ?= ghcr.io/tideflow/tideflow
IMAGE_TAG ?= $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)

.PHONY: image
image: ## Build the image with Docker: ghcr.io/tideflow/tideflow:<version> unless IMAGE/IMAGE_TAG say otherwise.
	@command -v docker >/dev/null 2>&1 || { \
	  echo "make image: docker is not installed, so the image cannot be built on this machine" >&2; exit 1; }
	@docker info >/dev/null 2>&1 || { \
	  echo "make image: the Docker engine is not reachable: $$(docker info 2>&1 | tail -n 1)" >&2; exit 1; }
	docker build --tag $(IMAGE):$(IMAGE_TAG) .

.PHONY: chart-crds
chart-crds: ## Copy crds/ into the Helm chart (after `make crds`; a unit test fails until they match).
	cp crds/*.yaml charts/tideflow/crds/

.PHONY: chart-test
chart-test: install ## Render, lint (strict) and validate the Helm chart, and its unit tests (also in test-unit).
	$(BIN)/pytest tests/unit/chart $(PYTEST_ARGS)

##@ Local system

.PHONY: up
up: install ## Start the sandbox cluster, the operator and the REST API in the background.
	$(PY) -m tideflow.sandbox up --state-dir $(SANDBOX) --crds crds

.PHONY: down
down: ## Stop everything `make up` started.
	@if [ -x $(PY) ]; then $(PY) -m tideflow.sandbox down --state-dir $(SANDBOX); fi

.PHONY: clean
clean: down ## Remove caches and sandbox state.
	rm -rf $(SANDBOX) .mypy_cache .ruff_cache .pytest_cache .hypothesis
