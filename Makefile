# The two commands: `make run` and `make test`. Each sets up what it needs on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
GEN_STAMP := gen/.stamp
PROTOS := $(shell find protos tests/protos -name '*.proto')

.PHONY: run test gen lint typecheck check bench fuzz soak clean install console

run: $(GEN_STAMP) console
	scripts/run

test: $(GEN_STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

# Everything CI checks besides the tests (buf breaking compares protos/ with HEAD~1).
check: lint typecheck

lint: $(GEN_STAMP) node_modules/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	scripts/buf-lint
	scripts/buf-breaking

typecheck: $(GEN_STAMP)
	$(VENV)/bin/mypy

gen: $(GEN_STAMP)

install: $(STAMP)

# node_modules first: buf (lint, breaking) and the TypeScript client's generator come from npm.
$(GEN_STAMP): $(STAMP) node_modules/.installed $(PROTOS) scripts/gen
	scripts/gen
	# The client package with the `forge` CLI (its [cli] extra: typer, rich).
	$(VENV)/bin/pip install -q -e 'clients/python[cli]'
	touch $@

$(STAMP): pyproject.toml clients/python/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev,bench]'
	# The generated server modules (gen/python) are importable as the top-level `forge`.
	echo "$(CURDIR)/gen/python" > "$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/forge-gen.pth"
	touch $@

# npm workspaces: the TypeScript client (clients/ts) and the web console (clients/console).
node_modules/.installed: package.json package-lock.json clients/ts/package.json clients/console/package.json
	npm ci --no-audit --no-fund
	touch $@

# The web console (clients/console/dist), served by make run's Envoy at /console/: built
# from @forge/client (clients/ts: generated + tsc) with esbuild.
CONSOLE_STAMP := clients/console/dist/.stamp
CONSOLE_SRC := $(shell find clients/console/src clients/ts/src -path clients/ts/src/gen -prune -o -type f -print 2>/dev/null)
console: $(CONSOLE_STAMP)

$(CONSOLE_STAMP): node_modules/.installed $(GEN_STAMP) $(CONSOLE_SRC) clients/console/build.mjs clients/ts/package.json
	npm run build --workspace clients/ts
	node clients/console/build.mjs
	touch $@

bench: $(GEN_STAMP)
	$(PY) -m bench $(BENCH_ARGS)

# Long property-based fuzzing of every RPC (make test runs a bounded number of examples).
fuzz: $(GEN_STAMP)
	FORGE_FUZZ_PROFILE=long $(PY) -m pytest tests/fuzz -p no:cacheprovider $(PYTEST_ARGS)

# 500 concurrent streams plus 200 unary QPS for 5 minutes against make run's stack.
soak: $(GEN_STAMP)
	$(PY) -m bench.soak $(SOAK_ARGS)

clean:
	rm -rf gen clients/python/src/forge_client/_proto clients/python/src/*.egg-info .build .pytest_cache .mypy_cache .ruff_cache
	rm -rf clients/ts/src/gen clients/ts/dist clients/ts/.build
	rm -rf clients/console/dist
