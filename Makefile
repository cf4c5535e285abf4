# Polyculture — run `make help` for the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SHARED ?= ../shared
TRACE  ?= $(SHARED)/traces/philly.csv
PYTEST_ARGS ?=

.PHONY: help venv control-plane cluster-up cluster-down crds verify lint format typecheck \
        layers test test-unit bench-pool bench-operator test-cluster test-ray test-e2e bench simulate gpu-check demo clean \
        image prometheus

help: ## show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(VENV)/.installed: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

venv: $(VENV)/.installed ## create .venv with the project and its dev/test dependencies

control-plane: ## build etcd, kube-apiserver/-controller-manager/-scheduler, kwok, kubectl (cached)
	bash hack/build-control-plane.sh

cluster-up: venv control-plane ## start the local control plane; kubeconfig in .polyculture/kubeconfig
	$(BIN)/polyculture cluster up --dir .polyculture

cluster-down: venv ## stop the local control plane
	$(BIN)/polyculture cluster down --dir .polyculture

crds: venv ## regenerate crds/*.yaml (and the chart's copy) from the pydantic models
	$(BIN)/polyculture crds

lint: venv ## ruff lint and format check
	$(BIN)/ruff check operator tests
	$(BIN)/ruff format --check operator tests

format: venv ## apply ruff fixes and formatting
	$(BIN)/ruff check --fix operator tests
	$(BIN)/ruff format operator tests

typecheck: venv ## mypy --strict
	$(BIN)/mypy

layers: venv ## import-linter: the layer contracts in pyproject.toml
	$(BIN)/lint-imports

verify: venv lint typecheck layers ## everything generated is up to date, lint, types, layers
	$(BIN)/polyculture crds --check

test-unit: venv ## unit tier: pure code only
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

test-cluster: venv control-plane ## cluster tier: real control plane on loopback
	$(BIN)/pytest tests/cluster $(PYTEST_ARGS)

test-ray: venv ## ray tier: real local Ray clusters
	$(BIN)/pytest tests/ray $(PYTEST_ARGS)

test-e2e: venv control-plane prometheus ## end-to-end tier: operator + control plane + Ray
	$(BIN)/pytest tests/e2e $(PYTEST_ARGS)

test: venv control-plane prometheus verify ## every tier (unit, cluster, ray, e2e; gpu when NVML is present)
	$(BIN)/pytest tests $(PYTEST_ARGS)

bench: venv ## scheduler benchmark at the standard sizes
	$(BIN)/polyculture bench scheduler --standard

SIM_LIMIT ?= 15000
simulate: venv ## replay the first 15,000 Philly arrivals (SIM_LIMIT) on 600 GPUs, fair vs fifo vs partition, plots in out/sim (a few minutes)
	$(BIN)/polyculture simulate --trace $(TRACE) --gpus 600 --limit $(SIM_LIMIT) --out out/sim

gpu-check: venv ## run the node agent's NVML discovery once and print its JSON
	$(BIN)/polyculture agent --once --print

DEMO_ARGS ?=
demo: venv control-plane ## the embedded demo (DEMO_ARGS=--once: stop once the story is told)
	$(BIN)/polyculture demo $(DEMO_ARGS)

image: venv ## build the operator image as an OCI archive (no container engine); prints path, digest
	$(BIN)/python hack/build_image.py

prometheus: ## Prometheus and promtool from Debian's package, unpacked into the cache
	bash hack/fetch-prometheus.sh

clean: ## remove the venv and local run state (the binary cache stays)
	rm -rf $(VENV) .polyculture out .pytest_cache .mypy_cache .ruff_cache

bench-pool: venv control-plane ## pool reconciliation at 500 nodes / 50 owners on the real control plane
	$(BIN)/python -m polyculture.controlplane.pool_bench --nodes 500 --owners 50

bench-operator: venv control-plane ## 1,000 models admitted at once on kwok GPU nodes (kubernetes backend)
	$(BIN)/polyculture bench operator --models 1000
