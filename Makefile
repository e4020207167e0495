# Hookhub: `make run` installs and runs the hub; `make test` installs and passes the tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
REQS_HASH := $(shell cat requirements.txt requirements-dev.txt | sha1sum | cut -c1-12)
STAMP := $(VENV)/.installed-$(REQS_HASH)
HOST ?= 127.0.0.1
PORT ?= 8000
DEMO_CRM_PORT ?= 8001

.PHONY: install browser run test lint demo faults bench-lookup bench-lookup-chain bench-delivery bench-import screenshots clean

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@rm -f $(VENV)/.installed-*
	@touch $@

install: $(STAMP)

## The one command that installs and runs the hub (SQLite + django-q2 ORM broker, web + worker).
run: export HUB_ALLOW_PRIVATE_DESTINATIONS ?= true
# web and worker write metrics to one directory; /metrics sums them (docs/metrics.md)
run: export PROMETHEUS_MULTIPROC_DIR ?= $(CURDIR)/.hookhub/prometheus
run: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput --verbosity 0
	$(PY) manage.py demo --host $(HOST) --port $(PORT) --crm-port $(DEMO_CRM_PORT)
	rm -rf "$(PROMETHEUS_MULTIPROC_DIR)" && mkdir -p "$(PROMETHEUS_MULTIPROC_DIR)"
	HOST=$(HOST) PORT=$(PORT) DEMO_CRM_PORT=$(DEMO_CRM_PORT) \
		$(VENV)/bin/honcho start --no-prefix -f Procfile

## Debian's Chromium for the browser tests (never a downloaded browser); skipped with a message when it cannot be installed.
browser:
	@command -v chromium >/dev/null 2>&1 || test -x /usr/bin/chromium || \
		{ if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "Installing Debian's chromium for the browser tests"; \
			(apt-get install -y -qq chromium >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1; }) \
			|| echo "Could not install chromium: the browser tests will be skipped."; \
		else echo "chromium is not installed and cannot be installed here: the browser tests will be skipped."; fi; }

## The one command that installs and passes the tests (uses DATABASE_URL when set).
## HUB_TEST_SHAPE=production: the production shape (PostgreSQL in DATABASE_URL, Redis in REDIS_URL as
## broker and cache): the engine, worker, cache and fault tests only; lint and browser ran in the default shape.
export HUB_TEST_SHAPE
ifeq ($(HUB_TEST_SHAPE),production)
PYTEST_ARGS ?= -m "engine or worker or cache or faults or production"
TEST_CHECKS :=
else
TEST_CHECKS := lint browser
endif

test: install $(TEST_CHECKS)
	$(PY) manage.py makemigrations --check --dry-run --settings=config.settings_test
	@# exit 5 (no test collected) is fine for a narrow PYTEST_ARGS, never for the production shape's subset
	$(PY) -m pytest $(PYTEST_ARGS) || { status=$$?; [ $$status -eq 5 ] && [ "$(HUB_TEST_SHAPE)" != production ]; }

## ruff, mypy and the dependency rules between apps (import-linter contracts in pyproject.toml).
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy .
	$(VENV)/bin/lint-imports

## Fault injection on PostgreSQL + Redis (database 6) with two clusters: see docs/reliability.md.
faults: install
	$(PY) bench/faults.py $(FAULTS_ARGS)

bench-lookup: install
	$(PY) bench/lookup.py $(BENCH_ARGS)

bench-lookup-chain: install
	$(PY) bench/lookup_chain.py $(BENCH_ARGS)

bench-delivery: install
	$(PY) bench/delivery.py $(BENCH_ARGS)

bench-import: install
	$(PY) bench/import_customers.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

## Screenshots of the main admin pages into screenshots/ (Debian's Chromium, throw-away database).
screenshots: install browser
	$(PY) scripts/screenshots.py
