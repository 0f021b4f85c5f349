# One entry point per task. `make run` and `make test` work on a clean clone:
# they create .venv and install everything the project needs into it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
HOST   ?= 127.0.0.1
PORT   ?= 8080
DATA   ?= ./data

.PHONY: install system-deps run demo test lint typecheck unit bench clean

# The tests start their own redis-server (and nginx) processes; install them
# from Debian's packages when the machine lacks them. Root, or sudo, needed.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
SYSTEM_BINARIES := redis-server:redis-server nginx:nginx

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

system-deps:
	@missing=""; for pair in $(SYSTEM_BINARIES); do \
	  bin=$${pair%%:*}; pkg=$${pair##*:}; \
	  command -v $$bin >/dev/null 2>&1 || [ -x /usr/sbin/$$bin ] || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

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

unit: install system-deps
	$(BIN)/pytest -q

## Lint, type-check and run the whole test suite.
test: lint typecheck unit

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
