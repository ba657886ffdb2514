# The two commands a new user types: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 5000
PYTEST_ARGS ?=

.PHONY: run test install install-dev vendor translations bench lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip "setuptools>=78.1.1"

$(VENV)/.installed: $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# Browser libraries (bpmn-js, chart.js) come from npm at set-up time and are never committed.
webui/static/vendor/.stamp: package.json package-lock.json
	@if command -v npm >/dev/null; then \
		npm ci --ignore-scripts --no-audit --no-fund --loglevel=error && npm run --silent vendor && touch $@; \
	else echo "npm chưa cài: sơ đồ và biểu đồ bị tắt / npm missing: diagram and chart disabled"; fi

vendor: webui/static/vendor/.stamp

install: $(VENV)/.installed vendor
install-dev: $(VENV)/.installed-dev vendor

## Run the application on its embedded defaults (SQLite, in-process scheduler, outbox).
run: install
	$(BIN)/dieuphoi db upgrade
	$(BIN)/dieuphoi seed --demo
	$(BIN)/dieuphoi serve --host $(HOST) --port $(PORT)

## Run the whole test suite (set DIEUPHOI_TEST_POSTGRES_URL to run the database tests on PostgreSQL too).
test: install-dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: install
	$(BIN)/python bench/engine_throughput.py

## Refresh the translation catalogues after changing interface strings.
translations: install-dev
	$(BIN)/pybabel extract -F babel.cfg -k _l -k N_ --no-location --sort-output --project=dieuphoi -o webui/translations/messages.pot .
	$(BIN)/pybabel update -i webui/translations/messages.pot -d webui/translations --no-fuzzy-matching --ignore-obsolete
	$(BIN)/python webui/translations/en_strings.py

lint: install-dev
	$(BIN)/python -m ruff check engine webui workflows tests bench

clean:
	rm -rf $(VENV) instance build *.egg-info node_modules webui/static/vendor
