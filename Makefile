# Velourcity Webhooks. `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(BIN)/.installed: pyproject.toml sdk/python/pyproject.toml tools/pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python 3.11+ is required ($(PYTHON))"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e sdk/python -e '.[dev]' -e tools
	@touch $@

.PHONY: install
install: $(BIN)/.installed ## Create .venv/ with the project, the Python SDK and the dev tools (tools/: bench, chaos), editable

CHROMIUM := /usr/bin/chromium

.PHONY: browser
browser: ## Install Debian's chromium for the browser tests (needs root; Playwright drives it)
	@if [ -x $(CHROMIUM) ]; then echo "$(CHROMIUM) is installed"; \
	elif [ "$$(id -u)" != 0 ]; then \
		echo "$(CHROMIUM) is missing: as root, run 'apt-get update && apt-get install -y --no-install-recommends chromium' (or 'sudo make browser')"; exit 1; \
	else \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium; \
	fi

.PHONY: kafka
kafka: install ## Start the local Kafka broker on 127.0.0.1:9092 (fetches it once from Maven Central)
	scripts/kafka.sh up

.PHONY: kafka-down
kafka-down: ## Stop the local Kafka broker
	scripts/kafka.sh down

.PHONY: kafka-reset
kafka-reset: ## Stop the local broker and delete its data
	scripts/kafka.sh reset

.PHONY: db
db: ## Start the local PostgreSQL on 127.0.0.1:5433 (Debian's postgresql, installed when missing as root)
	scripts/postgres.sh up

.PHONY: db-down
db-down: ## Stop the local PostgreSQL
	scripts/postgres.sh down

.PHONY: db-reset
db-reset: ## Stop the local PostgreSQL and delete its data
	scripts/postgres.sh reset

.PHONY: migrate
migrate: install ## Apply the database migrations (starts the local PostgreSQL when VELOURCITY_DATABASE_URL is unset)
	@[ -n "$$VELOURCITY_DATABASE_URL" ] || scripts/postgres.sh up
	$(BIN)/velourcity db migrate

# `make demo` and `make test` start the local PostgreSQL unless VELOURCITY_DATABASE_URL names one.
DB_UNLESS_CONFIGURED = @[ -n "$$VELOURCITY_DATABASE_URL" ] || scripts/postgres.sh up

.PHONY: kafka-cluster
kafka-cluster: install ## Start the local three-broker cluster (KRaft; PLAINTEXT 29091-3, SASL_SSL+SCRAM 29191-3; `scripts/kafka-cluster.sh env` for its settings)
	scripts/kafka-cluster.sh up

.PHONY: kafka-cluster-down
kafka-cluster-down: ## Stop the local three-broker cluster
	scripts/kafka-cluster.sh down

.PHONY: topics
topics: kafka ## Create the pipeline's topics (idempotent)
	$(BIN)/velourcity topics create

.PHONY: demo
demo: kafka ## Run the pipeline end to end: worker, demo receivers, six events, visible deliveries
	$(DB_UNLESS_CONFIGURED)
	$(BIN)/velourcity demo

.PHONY: worker
worker: topics ## Run one worker against the local broker (start more to scale out)
	$(BIN)/velourcity worker

.PHONY: test
test: install browser ## Run every test, browser tests included (starts the local broker and PostgreSQL when none is configured)
	$(DB_UNLESS_CONFIGURED)
	VELOURCITY_REQUIRE_BROWSER=1 $(BIN)/pytest

.PHONY: test-unit
test-unit: install ## Run the fast tests that need no broker
	$(BIN)/pytest tests/unit

BENCH_ARGS ?=

.PHONY: bench
bench: kafka ## Every benchmark scenario on the local broker (~15 min); report in .local/bench/<UTC time>/ (BENCH_ARGS="--out benchmarks/results" to update the committed one)
	$(BIN)/velourcity bench --scenario all $(BENCH_ARGS)

.PHONY: chaos
chaos: kafka ## Fault-injection suite, every scenario (about 20 min; 7, failover, on the three-broker cluster); table printed and saved in reliability/results/
	$(BIN)/velourcity chaos --scenario all

.PHONY: chaos-ci
chaos-ci: kafka ## The chaos suite's short form (scenarios 1, 3, 4 with fewer events, and 7 on the three-broker cluster; about 5 minutes)
	$(BIN)/pytest tests/chaos

.PHONY: lint
lint: install ## ruff and mypy
	$(BIN)/ruff check pipeline tools tests sdk/python
	$(BIN)/mypy
	$(BIN)/mypy sdk/python/src/velourcity_webhooks

.PHONY: clean
clean: ## Remove the venv and caches (not the broker's or the database's data: see kafka-reset, db-reset)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info build dist sdk/python/src/*.egg-info tools/*.egg-info tools/build
