# Two commands: `make run` (development, zero setup) and `make test` (whole suite against
# the real PostgreSQL and Redis). `make help` lists the rest.

PYTHON ?= .venv/bin/python
VENV := .venv
HOST ?= 127.0.0.1
PORT ?= 8000
WORKERS ?= 2
# uvicorn's own frame cap; the application closes frames above COLLAB_MAX_MESSAGE_BYTES
# (1 MiB) with a clear code 4413 before this one is reached.
WS_MAX_SIZE ?= 4194304
# Where the workers of `make serve` write their Prometheus samples (emptied at start).
# (They remove their live gauges at a graceful exit, the supervisor a killed worker's.)
METRICS_DIR ?= /tmp/collab-metrics-$(PORT)
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/editor
TEST_REDIS_URL ?= redis://127.0.0.1:6379/0

.DEFAULT_GOAL := help
.PHONY: help run serve test lint format services migrate bench check-bundle build

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 12

$(VENV)/.runtime: requirements.txt
	test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

migrate: $(VENV)/.runtime ## apply database migrations
	DJANGO_DEBUG=$${DJANGO_DEBUG:-true} $(PYTHON) manage.py migrate --noinput

run: $(VENV)/.runtime ## develop: serve http://127.0.0.1:8000 (SQLite + in-memory layer unless DATABASE_URL/REDIS_URL)
	DJANGO_DEBUG=$${DJANGO_DEBUG:-true} $(PYTHON) manage.py migrate --noinput
	@echo
	@echo "  Create a user to sign in with:  DJANGO_DEBUG=true $(PYTHON) manage.py createsuperuser"
	@echo "  Then open http://$(HOST):$(PORT)/"
	@echo
	DJANGO_DEBUG=$${DJANGO_DEBUG:-true} $(PYTHON) -m editor.serve --no-supervisor \
		--host $(HOST) --port $(PORT) --ws-max-size $(WS_MAX_SIZE) --access-log

# editor/serve.py holds the uvicorn flags (`make run`, the tests and bench/ use it too); its
# supervisor starts a new worker whenever one dies (kill -9, a segfault, the OOM killer),
# WORKERS=1 included. Logs are JSON lines unless DJANGO_LOG_FORMAT=plain.
serve: ## production: WORKERS supervised uvicorn processes on HOST:PORT sharing PostgreSQL and Redis (installs nothing)
	@if [ "$(WORKERS)" -gt 1 ] && [ -z "$$REDIS_URL" ]; then \
		echo "make serve: WORKERS=$(WORKERS) needs REDIS_URL so the processes can reach each other." >&2; exit 2; fi
	rm -rf $(METRICS_DIR) && mkdir -p $(METRICS_DIR)
	DJANGO_LOG_FORMAT=$${DJANGO_LOG_FORMAT:-json} PROMETHEUS_MULTIPROC_DIR=$(METRICS_DIR) \
		$(PYTHON) -m editor.serve --host $(HOST) --port $(PORT) --workers $(WORKERS) \
		--ws-max-size $(WS_MAX_SIZE)

services: ## start PostgreSQL and Redis on this machine if they are down
	@scripts/ensure-services

test: $(VENV)/.dev node_modules/.installed services ## run the whole suite against real PostgreSQL and Redis
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} REDIS_URL=$${REDIS_URL:-$(TEST_REDIS_URL)} \
		$(PYTHON) -m pytest $(PYTEST_ARGS)

SEEDS ?= 0-49
.PHONY: converge
converge: $(VENV)/.dev node_modules/.installed services ## convergence suite over SEEDS (e.g. SEEDS=0-199 or 7,12); names the failing seed
	DATABASE_URL=$${DATABASE_URL:-$(TEST_DATABASE_URL)} REDIS_URL=$${REDIS_URL:-$(TEST_REDIS_URL)} \
		CONVERGE_SEEDS='$(SEEDS)' $(PYTHON) -m pytest tests/convergence -m convergence -rf -q $(PYTEST_ARGS) \
		|| { echo "make converge: failed; the seed to replay is in the test id [N] and in 'replay: make converge SEEDS=N' above" >&2; exit 1; }

lint: $(VENV)/.dev ## ruff check and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(VENV)/.dev ## ruff fix and format
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

build: node_modules/.installed ## rebuild the front-end bundle into static/ (commit the result)
	npm run build

check-bundle: node_modules/.installed ## fail when the committed bundle in static/ is stale
	scripts/check-bundle

bench: $(VENV)/.runtime services ## benchmarks vs the reference Yjs servers -> bench/RESULTS.md (~15 min; BENCH_ARGS=--quick)
	cd bench && npm ci --no-audit --no-fund --loglevel=error
	test -x bench/.venv-peers/bin/python || python3 -m venv bench/.venv-peers
	bench/.venv-peers/bin/pip install --quiet -r bench/requirements-peers.txt
	$(PYTHON) bench/run.py $(BENCH_ARGS)
