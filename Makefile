# One entry point per task. `make run` and `make test` work on a clean clone:
# they create .venv and install everything the project needs into it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
HOST   ?= 127.0.0.1
PORT   ?= 8080
DATA   ?= ./data

.PHONY: install run demo test lint typecheck unit bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## Start the server on the embedded default (SQLite in $(DATA)). DEMO=1 seeds demo data.
run: install
	$(BIN)/liaison serve --host $(HOST) --port $(PORT) --data-dir $(DATA) $(if $(DEMO),--demo,)

demo: install
	$(BIN)/liaison demo --data-dir $(DATA)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

unit: install
	$(BIN)/pytest -q

## Lint, type-check and run the whole test suite.
test: lint typecheck unit

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
