# refundflow: `make demo` and `make test` do everything on a fresh machine (Python 3.11+, no Docker).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SAM_VENV := .venv-sam
SAM := $(SAM_VENV)/bin/sam
PIP_FLAGS := --quiet --disable-pip-version-check
export AWS_DEFAULT_REGION ?= us-east-1
export SAM_CLI_TELEMETRY := 0
export PYTHONDONTWRITEBYTECODE := 1

.DEFAULT_GOAL := help
.PHONY: help setup demo local velocity-backfill test check static bundles bundles-then-integration lint format typecheck unit integration contract e2e statelint \
	sam-validate sam-build bundle-check openapi openapi-check diagrams diagrams-check platforms platforms-check layers \
	benchmarks policy-check aws-e2e reconcile sam-env clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  %-16s %s\n", $$1, $$2}'

# ------------------------------------------------------------------ set-up (idempotent, re-runs when pins change)
$(BIN)/.installed: requirements-dev.txt constraints.txt layers/common/requirements.txt layers/common/requirements-nodeps.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install $(PIP_FLAGS) -r requirements-dev.txt -c constraints.txt
	$(BIN)/pip install $(PIP_FLAGS) --no-deps -e .
	touch $@

$(SAM_VENV)/.installed: requirements-sam.txt
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install $(PIP_FLAGS) -r requirements-sam.txt
	touch $@

setup: $(BIN)/.installed $(SAM_VENV)/.installed ## create .venv (project) and .venv-sam (SAM CLI)

# ------------------------------------------------------------------ the two commands
demo: $(BIN)/.installed ## run every refund scenario on the local stack and print the timelines
	$(BIN)/python -m local.demo

# Two cores, used both: the two virtualenvs are installed side by side, the static gates run two at a time, and the
# Lambda bundles are built and checked, then the integration suite runs, while the end-to-end suite (which mostly
# waits on its local stacks, about 1.1 cores busy) runs.
# Each parallel step prints its output whole when it ends (--output-sync); the first failure fails `make test`.
PARALLEL = $(MAKE) --no-print-directory -j2 --output-sync=target

test: ## every test and gate (all but the AWS end-to-end suite)
	$(PARALLEL) setup
	$(MAKE) --no-print-directory check

check: ## all gates
	$(PARALLEL) static
	$(MAKE) --no-print-directory unit contract
	$(PARALLEL) e2e bundles-then-integration

# What runs beside the end-to-end suite: the bundles (about a minute), then the integration suite in the cores the
# end-to-end suite leaves idle.
bundles-then-integration: bundles
	$(MAKE) --no-print-directory integration

static: lint typecheck layers platforms-check statelint sam-validate openapi-check diagrams-check ## the gates that run no test

bundles: bundle-check ## sam build, then every handler imported from its build (bundle-check)

# ------------------------------------------------------------------ local stack
local: $(BIN)/.installed ## the local stack in the foreground on http://127.0.0.1:$${REFUNDFLOW_PORT:-3000}
	$(BIN)/python -m local

policy-check: $(BIN)/.installed ## evaluate a policy file against the samples: make policy-check FILE=my-policy.yaml
	$(BIN)/python -m refundflow.policy check $(or $(FILE),layers/common/refundflow/policy/default_policy.yaml) \
		--samples events/policy --expect

reconcile: $(BIN)/.installed ## reconcile a settlement file against the local stack: make reconcile FILE=... [BANK=...] [ARGS=...]
	@test -n "$(FILE)" || { echo "usage: make reconcile FILE=settlement.csv [BANK=statement.xml] [ARGS='--stack NAME']"; exit 2; }
	$(BIN)/refundflow reconcile "$(FILE)" $(if $(BANK),--bank "$(BANK)") $(ARGS)

velocity-backfill: $(BIN)/.installed ## count the refunds stored before the velocity counters, once: make velocity-backfill [ARGS='--dry-run'] [STACK=name]
	$(BIN)/refundflow $(if $(STACK),--stack "$(STACK)") velocity backfill $(ARGS)

sam-env: $(BIN)/.installed ## regenerate events/env.local.json (sam local --env-vars, pointing at the local stack)
	$(BIN)/python -m local.sam_env --write

benchmarks: $(BIN)/.installed ## print the benchmark figures as JSON
	$(BIN)/python -m benchmarks

# ------------------------------------------------------------------ gates
lint: $(BIN)/.installed ## ruff lint + format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(BIN)/.installed
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: $(BIN)/.installed ## mypy --strict on the shared package, functions/, local/ and benchmarks/ (pyproject.toml)
	$(BIN)/mypy

layers: $(BIN)/.installed ## import-linter contracts: the domain imports ports only, platforms stay apart (pyproject.toml)
	PYTHONPATH=layers/common $(BIN)/lint-imports

unit: $(BIN)/.installed
	$(BIN)/python -m pytest tests/unit tests/platforms -q -n 2

# Whole files per worker: the module-scoped local stacks (tests/integration/local) start once.
integration: $(BIN)/.installed
	$(BIN)/python -m pytest tests/integration -q -n 2 --dist loadfile

contract: $(BIN)/.installed
	$(BIN)/python -m pytest tests/contract -q

# Three workers on two cores (the suite mostly waits on its local stacks: about 1.1 cores busy with two), each its own
# process with its own local stack on its own free ports; whole files per worker, and each worker runs the
# after_suite tests (data hygiene, least privilege) last over its own stack (tests/conftest.py).
e2e: $(BIN)/.installed ## the whole workflow on the local stack, over HTTP
	$(BIN)/python -m pytest tests/e2e -q -n 3 --dist loadfile

aws-e2e: $(BIN)/.installed ## against a deployed stack (README: Deploying to AWS, step 5)
	$(BIN)/python -m pytest tests/aws -q -rs

statelint: $(BIN)/.installed ## statelint on every state machine (placeholders replaced)
	$(BIN)/python -m local.tools statelint

sam-validate: $(SAM_VENV)/.installed ## sam validate --lint (cfn-lint)
	$(SAM) validate --lint --template template.yaml

# Every function and the layer build with their Makefile (no Docker), pip pinned to constraints.txt. Not cached:
# sam's cache key is the CodeUri folder alone, blind to constraints.txt and to WHEEL_PLATFORM.
# LAMBDA_PYTHON: a Python 3.13 (the Lambda runtime's version) that compiles the bundles' bytecode; python3.13 on
# the PATH or pyenv's unless given.
LAMBDA_PYTHON ?= $(shell for python in python3.13 $(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python3.13); do \
	$$python -c 'import sys; assert sys.version_info[:2] == (3, 13); print(sys.executable)' 2>/dev/null && break; done)
SAM_BUILD = PATH="$(CURDIR)/$(BIN):$$PATH" REFUNDFLOW_CONSTRAINTS="$(CURDIR)/constraints.txt" \
	LAMBDA_PYTHON="$(LAMBDA_PYTHON)" $(SAM) build --template template.yaml --parallel --no-cached

sam-build: $(SAM_VENV)/.installed $(BIN)/.installed ## sam build without Docker (makefile builds, arm64 wheels)
	$(SAM_BUILD)

# What the Lambda python3.13 runtime puts on the path besides the function and its layers (never shipped).
LAMBDA_RUNTIME := .aws-sam/lambda-runtime
$(LAMBDA_RUNTIME)/.installed: constraints.txt tools/lambda_bundle.py
	rm -rf $(LAMBDA_RUNTIME)
	$(BIN)/pip install $(PIP_FLAGS) -c constraints.txt --target $(LAMBDA_RUNTIME) --no-compile --only-binary=:all: \
		--implementation cp --python-version 3.13 $(shell $(BIN)/python tools/lambda_bundle.py --runtime-names)
	touch $@

# The shipped wheels are aarch64 and cannot be imported here: build the same Makefiles for this host
# (its own folder: sam keeps build.toml beside the build dir), compare both, import from the host build.
bundle-check: sam-build $(LAMBDA_RUNTIME)/.installed ## every handler imports from its sam build in Python 3.13
	mkdir -p .aws-sam/host && WHEEL_PLATFORM=manylinux2014_$(shell uname -m) $(SAM_BUILD) --build-dir .aws-sam/host/build \
		--cache-dir .aws-sam/host/cache > .aws-sam/host.log 2>&1 || { cat .aws-sam/host.log; exit 1; }
	$(BIN)/python -m local.tools bundle-check $(if $(LAMBDA_PYTHON),--python $(LAMBDA_PYTHON))

platforms: $(BIN)/.installed ## regenerate what differs only by platform (template blocks, builds, README table, sam local env) from the catalog
	$(BIN)/python -m tools.platforms --write
	$(BIN)/python -m local.sam_env --write

platforms-check: $(BIN)/.installed ## fail when the generated platform artefacts differ from the catalog
	$(BIN)/python -m tools.platforms --check
	$(BIN)/python -m local.sam_env --check

openapi: $(BIN)/.installed ## regenerate docs/openapi.json from the handlers' models
	$(BIN)/python -m local.tools openapi --write

openapi-check: $(BIN)/.installed
	$(BIN)/python -m local.tools openapi --check

diagrams: $(BIN)/.installed ## regenerate the state-machine diagrams in README.md from the ASL
	$(BIN)/python -m local.tools diagrams --write

diagrams-check: $(BIN)/.installed
	$(BIN)/python -m local.tools diagrams --check

clean:
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache .hypothesis
