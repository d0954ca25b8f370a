# Two commands on a fresh machine: `make run` (local Kafka + the worker) and `make test`.
# Needs Python 3.11+, Java 17 and Maven on PATH; everything else is installed here.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
KAFKA := PYTHON=$(abspath $(BIN)/python) deploy/kafka/kafka.sh
DEV := PYTHON=$(abspath $(BIN)/python) deploy/devservices.sh

.PHONY: venv run worker up down status test chaos bench profile lint format clean

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

venv: $(INSTALLED)

## Bring up the local stack and run the worker in the foreground on its defaults.
run: up worker

worker: venv
	$(BIN)/faust -L uvloop -A pipeline worker --loglevel info

## The local stack alone: Kafka on 127.0.0.1:9092, development SMTP (:1025) and S3 (:9000).
up: venv
	$(KAFKA) up
	$(DEV) up

down:
	-$(DEV) down
	$(KAFKA) down

status:
	$(KAFKA) status
	$(DEV) status

## The whole test suite, against a real broker (started here if none is configured).
test: venv
	$(BIN)/pytest

## The chaos suite (after `make up`): kills, a broker restart, an SMTP outage and hostile
## records under load; prints lost / duplicated / dead-lettered / leaked and fails on any.
chaos: venv
	$(BIN)/python -m tests.chaos $(CHAOS_ARGS)

## Benchmarks against a raw aiokafka loop, BullMQ and Celery (after `make up`); the table is
## printed and written to bench/results/.
bench: venv bench/bullmq/node_modules
	@command -v redis-server >/dev/null || apt-get install -y -q redis-server
	$(BIN)/python -m bench $(BENCH_ARGS)

## Where one worker's CPU goes during a noop load (py-spy, after `make up`).
profile: venv
	$(BIN)/python -m bench.profile $(PROFILE_ARGS)

bench/bullmq/node_modules: bench/bullmq/package-lock.json
	npm ci --prefix bench/bullmq --no-audit --no-fund
	touch $@

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean: down
	rm -rf $(VENV) .local pipeline-data .pytest_cache .mypy_cache .ruff_cache bench/bullmq/node_modules
