# The two commands from README.md: `make run` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help
VENV := .venv
BIN := $(VENV)/bin
PG_URL ?= postgres://postgres@127.0.0.1:5432/taskyard
DEMO_JOBS ?= 20000
DEMO_TASKS ?= 20000
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: help run test bench lint check test-sqlite test-postgres venv venv-dev venv-bench demo clean \
	screenshots

help:
	@echo "make run    set up and start the console with demo data on SQLite (http://$(HOST):$(PORT))"
	@echo "make test   set up and run lint, checks and the whole test suite on SQLite and PostgreSQL"
	@echo "make bench  benchmark against the local PostgreSQL (BENCH_ARGS=--quick for a smoke run)"
	@echo "make screenshots  retake project/docs/screenshots/ (throwaway SQLite, Debian chromium)"

$(BIN)/python:
	@python=$$(.ci/find-python) || exit 1; \
	echo "Creating $(VENV) with $$python"; \
	"$$python" -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet .
	@touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/pip install --quiet '.[dev]'
	@touch $@

$(VENV)/.installed-bench: $(VENV)/.installed
	$(BIN)/pip install --quiet '.[bench]'
	@touch $@

venv: $(VENV)/.installed

venv-dev: $(VENV)/.installed-dev

venv-bench: $(VENV)/.installed-bench

demo: venv
	$(BIN)/python manage.py migrate --verbosity 0
	$(BIN)/python manage.py seed_demo --if-empty --jobs $(DEMO_JOBS) --external-tasks $(DEMO_TASKS)
	$(BIN)/python manage.py demo_users

run: demo
	@echo
	@echo "Taskyard console:  http://$(HOST):$(PORT)/   (admin: /admin/, API docs: /api-docs/)"
	@echo "Camunda REST API:  http://$(HOST):$(PORT)/engine-rest/   (HTTP Basic, same logins)"
	@echo "Live demo:         runjobs on the demo, batch and console queues (demo_jobs feeds the first, bulk"
	@echo "                   actions the second, the console's figures the third); demo_workers fetch and"
	@echo "                   complete external tasks over the Camunda REST API (some fail)"
	@echo
	@trap 'kill $$(jobs -p) 2>/dev/null' EXIT; \
	LOG_LEVEL=ERROR $(BIN)/python manage.py runjobs --queue demo,batch,console --concurrency 2 & \
	$(BIN)/python manage.py demo_jobs --rate 0.5 & \
	$(BIN)/python manage.py demo_workers --url http://$(HOST):$(PORT)/engine-rest & \
	LOG_LEVEL=$${LOG_LEVEL:-WARNING} $(BIN)/python manage.py serve --host $(HOST) --port $(PORT)

lint: venv-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

check: venv-dev
	$(BIN)/python manage.py check
	$(BIN)/python manage.py makemigrations --check --dry-run

test-sqlite: venv-dev
	env -u DATABASE_URL $(BIN)/pytest

test-postgres: venv-dev
	@if ! DATABASE_URL=$(PG_URL) $(BIN)/python .ci/pg-ready; then \
		echo "PostgreSQL is not reachable at $(PG_URL): set PG_URL or start it."; \
		if [ "$${CI:-}" = "true" ]; then echo "CI=true: failing."; exit 1; fi; \
		echo "Skipping the PostgreSQL run (outside CI)."; exit 0; \
	fi
	DATABASE_URL=$(PG_URL) $(BIN)/pytest

test: lint check test-sqlite test-postgres

# Copies the seeded database BENCH_TEMPLATE into BENCH_DB when missing; see bench/README.md.
BENCH_DB ?= postgres://postgres@127.0.0.1:5432/taskyard_bench
BENCH_TEMPLATE ?= taskyard_seed
BENCH_ARGS ?=
bench: venv-bench
	$(BIN)/python bench/run.py --db $(BENCH_DB) --template $(BENCH_TEMPLATE) $(BENCH_ARGS)

# The console's pictures in project/docs/console.md; see tests/e2e/screenshots.py.
screenshots: venv-dev
	$(BIN)/python -m tests.e2e.screenshots

clean:
	rm -rf $(VENV) db.sqlite3 db.sqlite3-* test-db.sqlite3* staticfiles
