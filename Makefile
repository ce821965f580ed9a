# SpendWatch developer tasks. A fresh machine needs only python3.11 and make: `install` builds .venv,
# and the scripts install PostgreSQL and Redis from apt when missing (as root).
#
#   make install   .venv with the app and dev dependencies (again only when pyproject.toml changes)
#   make lint      ruff check + ruff format --check + secret scan of the tree and git history
#   make audit     known vulnerabilities in the pinned dependencies (pip-audit; skipped when PyPI is unreachable)
#   make test      install, lint, the suite on SQLite, then again on a throwaway PostgreSQL + Redis
#   make run       the app on http://127.0.0.1:8000 (web + celery worker + beat; Ctrl-C stops all)
#   make bench     every benchmark under bench/, each on a throwaway PostgreSQL (BENCH="api steady": some)
#   make fuzz      long fuzz runs: adapters (FUZZ_EXAMPLES), API schema per role (SCHEMATHESIS_EXAMPLES, _SEED)
#   make clean     remove test artifacts, caches and leftover throwaway servers (keeps .venv, var/ data)

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
# Steps of `test` must run in order, never side by side, even under make -j.
.NOTPARALLEL:
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# A hung test fails after this many seconds instead of eating CI's time (pytest-timeout).
PYTEST_TIMEOUT ?= 600
PYTEST_ARGS ?=
PYTEST := $(BIN)/pytest --timeout=$(PYTEST_TIMEOUT) $(PYTEST_ARGS)
BENCH_ARGS ?=
BENCH_API_ARGS ?=
BENCH_STEADY_ARGS ?=
BENCH_DASHBOARDS_ARGS ?=
BENCH_CHECK_ARGS ?=
BENCH_REPRICE_ARGS ?=
BENCH_PROMPTS_ARGS ?=
BENCH_SINGLE_ARGS ?=
# The benchmarks `make bench` runs, in this order (bench/README.md): ingest = bench/run.py.
BENCH ?= ingest api single steady dashboards check reprice classifier prompts

.PHONY: help install lint audit test test-sqlite test-pg run bench clean

help:
	@sed -n 's/^#   make /make /p' $(firstword $(MAKEFILE_LIST))

install: $(STAMP)

# The stamp is newer than pyproject.toml once its dependencies are installed; editing it re-installs.
$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "$(PYTHON) not found on PATH (set PYTHON=...)" >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q ".[dev]"
	touch $@

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python scripts/secret_scan.py

# pip-audit asks PyPI about every installed (pinned) package, --strict: one it cannot audit fails the run. Where
# PyPI's JSON API does not know our Django pin (offline, a partial mirror) it says so and passes.
PYPI_KNOWS_OUR_PINS := import tomllib, urllib.request; pin = next(d for d in tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"] if d.startswith("Django==")).split("==")[1]; urllib.request.urlopen(f"https://pypi.org/pypi/Django/{pin}/json", timeout=10)
audit: install
	if $(BIN)/python -c '$(PYPI_KNOWS_OUR_PINS)' 2>/dev/null; then \
		$(BIN)/pip-audit --strict --progress-spinner off --skip-editable; \
	else echo "audit: PyPI does not answer for our pins here; vulnerability audit skipped"; fi

test: install lint audit test-sqlite test-pg

# The zero-setup configuration: SQLite, filesystem broker; tests that need Redis skip themselves.
test-sqlite: install
	@echo "== tests on SQLite"
	env -u DATABASE_URL -u SPENDWATCH_TEST_REDIS_URL -u CELERY_BROKER_URL $(PYTEST)

# The production configuration: exports DATABASE_URL and SPENDWATCH_TEST_REDIS_URL for this run only;
# both servers are removed afterwards, whatever the outcome.
test-pg: install
	@echo "== tests on PostgreSQL + Redis"
	env -u CELERY_BROKER_URL scripts/with_services.sh --pg --redis -- $(PYTEST)

run: install
	scripts/run.sh

# Each benchmark gets a throwaway server of its own; the first one that fails a check stops the rest.
bench: install
	for name in $(BENCH); do \
		case "$$name" in \
		ingest) script=bench/run.py; args="$(BENCH_ARGS)" ;; \
		api) script=bench/api.py; args="$(BENCH_API_ARGS)" ;; \
		steady) script=bench/steady.py; args="$(BENCH_STEADY_ARGS)" ;; \
		dashboards) script=bench/dashboards.py; args="$(BENCH_DASHBOARDS_ARGS)" ;; \
		check) script=bench/check_api.py; args="$(BENCH_CHECK_ARGS)" ;; \
		reprice) script=bench/reprice.py; args="$(BENCH_REPRICE_ARGS)" ;; \
		prompts) script=bench/prompts.py; args="$(BENCH_PROMPTS_ARGS)" ;; \
		single) script=bench/single.py; args="$(BENCH_SINGLE_ARGS)" ;; \
		classifier) $(BIN)/python bench/classifier.py || exit $$?; continue ;; \
		*) echo "unknown benchmark '$$name' in BENCH (ingest, api, single, steady, dashboards, check, reprice, classifier, prompts)" >&2; exit 2 ;; \
		esac; \
		services="--pg-durable"; [ "$$name" != single ] || services="--pg-durable --redis"; \
		scripts/with_services.sh $$services -- $(BIN)/python "$$script" $$args || exit $$?; \
	done

# The long failure drills (B1, B3, B4) and the E7 soak, on throwaway servers; sized by env (scripts/soak.sh).
.PHONY: soak
soak: install
	scripts/soak.sh

# The long fuzz runs (TESTPLAN L1, L2, L4): 10x the CI examples with fresh random inputs; the seed of the
# schemathesis runs is printed, and each role's report is kept in test-artifacts/schemathesis/.
FUZZ_EXAMPLES ?= 2500
SCHEMATHESIS_EXAMPLES ?= 500
SCHEMATHESIS_SEED ?= $(shell date +%s)
.PHONY: fuzz
fuzz: install
	@echo "== fuzz: $(FUZZ_EXAMPLES) inputs per adapter and kind; st run -n $(SCHEMATHESIS_EXAMPLES) --seed $(SCHEMATHESIS_SEED)"
	env -u DATABASE_URL FUZZ_RANDOM=1 FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) FUZZ_STATEFUL_EXAMPLES=120 \
		SCHEMATHESIS_EXAMPLES=$(SCHEMATHESIS_EXAMPLES) SCHEMATHESIS_SEED=$(SCHEMATHESIS_SEED) \
		$(BIN)/pytest --timeout=7200 -q tests/fuzz

clean:
	@# Servers left by an interrupted run (kill -9, a closed terminal) are stopped before their state goes.
	@for d in var/services.*; do \
		[ -d "$$d" ] || continue; \
		scripts/pg.sh stop "$$d/pg"; scripts/redis.sh stop "$$d/redis"; rm -rf "$$d"; \
	done
	rm -rf var/test-spendwatch.sqlite3* var/staticfiles test-artifacts build .pytest_cache .ruff_cache .hypothesis
	rm -rf *.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
