# Two commands do everything on a bare machine: `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
VENV_STAMP := $(VENV)/.installed
FABRIC_STAMP := .cache/fabric/VERSION
# The console's browser libraries (Chart.js), installed by npm into a git-ignored folder (decision 0026).
CONSOLE_ASSETS := gateway/bank_api/console/assets
CONSOLE_ASSETS_STAMP := $(CONSOLE_ASSETS)/node_modules/.package-lock.json
BASE_PORT ?= 7000
STATE_DIR ?= .state/demo
NET := $(PY) -m network --base-port $(BASE_PORT) --state-dir $(STATE_DIR)
PYTEST_ARGS ?=

.PHONY: help venv console-assets browser fabric up deploy down status test unit-test integration-test demo bench caliper lint clean hfc-venv hfc-check

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

venv: $(VENV_STAMP) console-assets ## create .venv and install the project into it

console-assets: $(CONSOLE_ASSETS_STAMP) ## the console's chart library from npm (without npm the console draws no charts)

$(CONSOLE_ASSETS_STAMP): $(CONSOLE_ASSETS)/package-lock.json
	@if command -v npm >/dev/null; then \
		echo "[console] installing the console's chart library (npm ci)"; \
		cd $(CONSOLE_ASSETS) && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.package-lock.json; \
	else \
		echo "[console] npm not found: the console will show its figures without charts (apt-get install npm)"; \
	fi

browser: ## Debian's headless Chromium, chromedriver and npm for the console's browser tests (apt, when missing)
	@bash tests/integration/ensure-browser.sh
	@$(MAKE) --no-print-directory console-assets

$(VENV_STAMP): pyproject.toml gateway/fabric_client/pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (found " + sys.version.split()[0] + ")")'
	@echo "[venv] creating $(VENV) and installing the project (first time: about a minute)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --upgrade pip
	@# one command, so pip takes the Fabric client (a dependency of the project) from its folder
	@$(PY) -m pip install --quiet --progress-bar off -e ./gateway/fabric_client -e '.[dev]'
	@touch $@
	@echo "[venv] ready"

fabric: ## build the Fabric binaries with go install into .cache/fabric (skipped when present)
	@bash network/install-fabric.sh

up: venv fabric ## start the network, deploy the chaincode, start the gateways
	@$(NET) up

deploy: venv fabric ## (re)deploy the chaincode on the running network
	@$(NET) deploy

down: venv ## stop every process of the network and delete its data
	@$(NET) down

status: venv ## show every node with its pid, health and memory
	@$(NET) status

unit-test: venv ## unit tests only (no network)
	@$(PY) -m pytest tests/unit $(PYTEST_ARGS)

integration-test: venv fabric browser ## tests against a real network on test ports (17000+)
	@$(PY) -m pytest tests/integration $(PYTEST_ARGS)

test: venv fabric browser ## all tests: unit, then integration against a real network
	@$(PY) -m pytest tests $(PYTEST_ARGS)

demo: venv fabric ## set everything up and play the cross-border trade scenario
	@$(PY) -m demo --base-port $(BASE_PORT) --state-dir $(STATE_DIR)

bench: venv fabric ## benchmarks on their own network (ports 19000+)
	@$(PY) -m bench $(BENCH_ARGS)

hfc-venv: venv ## the fabric-sdk-py (hfc) environment .venv-hfc, built once (docs/hfc.md)
	@$(PY) compat/hfc/venv.py --venv .venv-hfc >/dev/null

hfc-check: hfc-venv fabric ## an hfc application against a test network (docs/hfc.md)
	@$(PY) -m pytest tests/integration/test_hfc.py $(PYTEST_ARGS)

caliper: venv fabric ## Hyperledger Caliper (official Node client) on the bench network; needs npm (caliper/README.md)
	@bash caliper/run.sh

lint: venv ## ruff and mypy
	@$(VENV)/bin/ruff check network chaincode gateway tests bench demo compat
	@$(VENV)/bin/mypy network chaincode gateway demo bench compat

clean: ## remove the venv, caches and network state (not the Fabric build cache)
	rm -rf $(VENV) .venv-hfc .venv-hfc.lock .state .pytest_cache .mypy_cache .ruff_cache
