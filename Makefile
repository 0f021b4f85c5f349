# One entry point per task. `make run` and `make test` work on a clean clone:
# they create .venv and install everything the project needs into it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# Where `make run` listens and keeps its data: `make run PORT=8090 DATA=/tmp/l`,
# or the server's own LIAISON_HOST / LIAISON_PORT / LIAISON_DATA_DIR from the
# environment; the make variables win over the environment.
HOST   ?= $(or $(LIAISON_HOST),127.0.0.1)
PORT   ?= $(or $(LIAISON_PORT),8080)
DATA   ?= $(or $(LIAISON_DATA_DIR),./data)

.PHONY: install lock system-deps client wheel run demo test lint typecheck unit jstest soak bench clean

# The tests start their own redis-server (and nginx) processes, and drive the
# browser client in Debian's chromium (and read the PDF report with poppler-utils' pdftotext); install them from Debian's packages when
# the machine lacks them. Root, or sudo, needed.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
SYSTEM_BINARIES := redis-server:redis-server nginx:nginx chromium:chromium pdftotext:poppler-utils

# The browser client (client_web/): npm dependencies from the committed lock
# file, bundled by esbuild into client_web/dist, which the server serves at /.
CLIENT       := client_web
CLIENT_DEPS  := $(CLIENT)/node_modules/.installed-stamp
CLIENT_BUILD := $(CLIENT)/dist/index.html
CLIENT_SRC   := $(shell find $(CLIENT)/src -type f 2>/dev/null) $(CLIENT)/build.mjs

# Python packages come from the lock files, every one pinned with its hashes
# (requirements-dev.lock: the server's and the tools'; requirements.lock: the
# server's alone, for deployments). The project itself goes in last, editable,
# with no dependency resolution of its own. `make lock` renews both files.
PIP_VERSION := 26.3
$(STAMP): pyproject.toml requirements-dev.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet pip==$(PIP_VERSION)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m pip check
	touch $(STAMP)

install: $(STAMP)

## Renew the lock files from pyproject.toml (newest versions within its ranges).
lock:
	$(PYTHON) -m venv $(VENV)-lock
	$(VENV)-lock/bin/python -m pip install --quiet uv
	$(VENV)-lock/bin/uv pip compile pyproject.toml --quiet --generate-hashes --python-version 3.11 \
	  --universal -o requirements.lock
	$(VENV)-lock/bin/uv pip compile pyproject.toml --quiet --generate-hashes --python-version 3.11 \
	  --universal --extra dev -o requirements-dev.lock
	rm -rf $(VENV)-lock

$(CLIENT_DEPS): $(CLIENT)/package.json $(CLIENT)/package-lock.json
	cd $(CLIENT) && npm ci --no-audit --no-fund --loglevel=error
	touch $(CLIENT_DEPS)

$(CLIENT_BUILD): $(CLIENT_DEPS) $(CLIENT_SRC)
	cd $(CLIENT) && node build.mjs

## Build the browser client (npm ci only when the lock file changed).
client: $(CLIENT_BUILD)

## Build the wheel deploy/README.md §1 installs, into dist/: the built client
## goes in with it (setup.py refuses to build a wheel without it).
wheel: install client
	rm -rf build
	$(BIN)/python -m pip wheel --quiet --no-deps --no-build-isolation -w dist .
	@ls dist/liaison-*.whl

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
run: install client
	$(BIN)/liaison serve --host $(HOST) --port $(PORT) --data-dir $(DATA) $(if $(DEMO),--demo,)

demo: install
	$(BIN)/liaison demo --data-dir $(DATA)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

## Two test processes, one per core (pytest-xdist), each test file in one of
## them (its module-scoped servers stay shared): most of the suite waits on
## servers, browsers and Redis, so it takes about 10 minutes instead of 18.
unit: install system-deps client
	$(BIN)/pytest -q -n 2 --dist loadfile

## The browser client's own tests (node's runner), golden vectors included.
jstest: $(CLIENT_DEPS)
	cd $(CLIENT) && node --test test/

## Lint, type-check and run the whole test suite.
test: lint typecheck jstest unit

## The leak test of `make test` (tests/integration/test_leak_stateful.py), far
## longer and with a random seed (printed; LIAISON_LEAK_SEED=n repeats it):
## SOAK_STEPS steps on one node, a fifth of them on two Redis nodes.
SOAK_STEPS ?= 200000
soak: install system-deps
	LIAISON_SOAK_STEPS=$(SOAK_STEPS) $(BIN)/pytest -q -s tests/integration/test_leak_stateful.py

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache $(CLIENT)/node_modules $(CLIENT)/dist
