# The two commands a new user types: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 5000
PYTEST_ARGS ?=

.PHONY: run test install install-dev bench lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

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

lint: install-dev
	$(BIN)/python -m ruff check engine webui workflows tests bench

clean:
	rm -rf $(VENV) instance build *.egg-info
