# `make run`: install, load the demo config into the embedded SQLite default, serve on :8000.
# `make test`: install, start throw-away PostgreSQL + Redis, run the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEV := DEBUG=1 DATABASE_URL= REDIS_URL=

.PHONY: run serve test deps system-deps venv lint check-migrations messages ci clean

run: venv
	$(DEV) $(BIN)/python manage.py migrate --noinput
	$(DEV) $(BIN)/python manage.py import_config demo/config.json --no-backup
	$(DEV) $(BIN)/python manage.py demo_admin
	$(DEV) $(BIN)/python manage.py runserver 127.0.0.1:8000

# The production server, as the container runs it: Granian serving the ASGI entry (the async
# fast path answers cache hits in the event loop, before Django), honouring PORT and
# WEB_CONCURRENCY; config_backend/serve.py says how (metrics directory, logs, dead workers) and
# README "Production server" why (bench/server_bench.py). Needs `make venv` (or, in the
# container, BIN=/usr/local/bin).
HOST ?= 0.0.0.0
PORT ?= 8000
WEB_CONCURRENCY ?= 2
serve:
	$(BIN)/python -m config_backend.serve --host $(HOST) --port $(PORT) --workers $(WEB_CONCURRENCY)

test: deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

deps: system-deps venv

# PostgreSQL and Redis server binaries for the test suite (Debian packages; needs root).
system-deps:
	@bash scripts/install-system-deps

venv: $(BIN)/.installed

$(BIN)/.installed: requirements.txt requirements-dev.txt client/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

lint: venv
	$(BIN)/ruff check .

check-migrations: venv
	SECRET_KEY=ci $(BIN)/python manage.py makemigrations --check --dry-run

# The admin's Russian (docs/admin.md "Translations"): extract every marked string of ours into
# locale/ru/LC_MESSAGES/django.po (new ones untranslated), then compile the .po into the .mo
# the server reads. Translate the new entries in the .po and run it again; both files are
# committed. tests/test_admin_i18n.py fails while a string has no translation.
messages: venv
	SECRET_KEY=ci $(BIN)/python manage.py makemessages --locale ru --no-obsolete \
		--add-location file --ignore tests --ignore bench --ignore client --ignore staticfiles \
		--ignore test-artifacts
	SECRET_KEY=ci $(BIN)/python manage.py compilemessages --locale ru --ignore .venv

ci: test check-migrations lint

clean:
	rm -rf $(VENV) staticfiles .pytest_cache
