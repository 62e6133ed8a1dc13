# Leadheat: `make run` serves the API on http://127.0.0.1:8000, `make test` runs every test.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test test-browser lint format typecheck bench tracker clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Leadheat needs Python 3.11+"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	@touch $@

$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[test]'
	@touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/leadheat serve

# A process per core, each test file whole in one of them (module-scoped servers stay shared).
test: $(VENV)/.test-installed lint
	$(BIN)/pytest -n auto --dist loadfile

# Only the end-to-end tests in headless Chromium (they need /usr/bin/chromium: apt-get install chromium).
test-browser: $(VENV)/.test-installed
	$(BIN)/pytest -m browser

lint: $(VENV)/.test-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy app tests bench
	$(BIN)/lint-imports

format: $(VENV)/.test-installed
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: $(VENV)/.test-installed
	$(BIN)/mypy app tests bench

bench: $(VENV)/.test-installed
	$(BIN)/python bench/ingest.py

tracker:
	cd tracker && npm ci --no-audit --no-fund && npm run build

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
