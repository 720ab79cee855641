# tourapp — two commands: `make run` (the whole system, with demo data) and `make test` (the suite).
# Both install what they need and are idempotent.
SHELL := /bin/bash
PY := .venv/bin/python
VENV_STAMP := .venv/.installed-$(shell cat requirements.txt requirements-dev.txt | sha1sum | cut -c1-12)
PYTEST_ARGS ?=

.PHONY: run demo test lint format venv services services-down migrate seed bench capacity cluster-bench help

help:
	@echo "make run    - start services, migrate, seed demo data, run web+worker+beat+kafka consumer+flower"
	@echo "make demo   - with make run going: book a tour and follow it, then a RabbitMQ outage (DEMO_ARGS=--no-outage skips it)"
	@echo "make test   - start services, lint, run the whole test suite"
	@echo "make bench  - run the benchmarks in bench/ (prints JSON)"
	@echo "make capacity - step the booking rate and find the sustained capacity (bench/capacity.py, ~10 min)"
	@echo "make cluster-bench - three-node RabbitMQ + Kafka, lose a node of each under load (~10 min)"
	@echo "make services / services-down - start / stop PostgreSQL, Redis, RabbitMQ, Kafka"

$(VENV_STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || python3 -m venv .venv
	@$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	@$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	@rm -f .venv/.installed-*; touch $(VENV_STAMP)

venv: $(VENV_STAMP)

services: venv
	@bash scripts/services up

services-down:
	@bash scripts/services down

migrate: services
	@$(PY) manage.py migrate --noinput -v0

seed: migrate
	@$(PY) manage.py seed_demo

run: seed
	@$(PY) manage.py collectstatic --noinput -v0
	@$(PY) manage.py demo --banner
	@rm -rf .cache/prometheus && mkdir -p .cache/prometheus  # Prometheus multiprocess samples of this run only
	@.venv/bin/honcho -f Procfile start

lint: venv
	@.venv/bin/ruff check .
	@.venv/bin/ruff format --check .
	@.venv/bin/mypy tourapp accounts messaging bookings availability notifications payments ops

format: venv
	@.venv/bin/ruff check --fix .
	@.venv/bin/ruff format .

demo: venv
	@$(PY) manage.py demo $(DEMO_ARGS)

test: services lint
	@.venv/bin/pytest $(PYTEST_ARGS)

bench: services
	@scripts/services bench-tools
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

capacity: services
	@$(PY) bench/capacity.py $(CAPACITY_ARGS)

cluster-bench: services
	@bash scripts/services cluster up
	@$(PY) bench/cluster_node_loss.py --partition
