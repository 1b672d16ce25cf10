# obslab: two entry points for readers (README): `make book` and `make test`.
# Everything else here is what those two need, installed only when missing.

SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
APT_PACKAGES := redis-server prometheus prometheus-redis-exporter prometheus-postgres-exporter postgresql \
	g++ libsimdjson-dev docker.io debootstrap
NATIVE_SOURCES := setup.py $(wildcard src/obslab/ocsf/native/*.cpp src/obslab/ocsf/native/*.hpp)
NODE_SERVICES := appendix-code/services/auth-service

.PHONY: book test test-fast deps venv apt node clean sample corpus bench

book: deps ## install what is missing, execute the notebooks on the sample data, build the HTML
	$(VENV)/bin/jupyter-book build -W -n --keep-going .
	@echo "book: $(CURDIR)/_build/html/index.html"

test: deps ## the whole test suite, notebooks included
	$(VENV)/bin/pytest -q tests --nbval-lax --nbval-current-env notebooks

test-fast: deps ## the unit tier only: no services started, nothing over ~30 s, no notebooks
	$(VENV)/bin/pytest -q -m "not integration and not slow" tests

# apt first: the venv's install compiles the converters' simdjson extension
deps: apt venv node

# The venv is rebuilt when requirements.txt, pyproject.toml or the extension sources change.
venv: $(VENV)/.installed
$(VENV)/.installed: requirements.txt pyproject.toml $(NATIVE_SOURCES)
	test -x $(PY) || python3 -m venv $(VENV)
	# pip warns once per package about absent local index folders on some machines: drop that noise only
	set -o pipefail; $(PIP) install -q -r requirements.txt 2>&1 | { grep -v "^WARNING: Location" || true; }
	$(PIP) install -q --no-deps -e .
	@# the extension is optional for pip (other platforms); here the fast converters must have it
	$(PY) -c "import obslab.ocsf._native" || { echo "obslab.ocsf._native did not build (g++, libsimdjson-dev?)"; exit 1; }
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

# Debian packages for the native lab; installed only if a binary is missing.
apt:
	@if ! command -v redis-server >/dev/null || ! command -v prometheus >/dev/null \
	   || ! command -v prometheus-redis-exporter >/dev/null || ! command -v prometheus-postgres-exporter >/dev/null \
	   || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 \
	   || ! command -v g++ >/dev/null || ! test -f /usr/include/simdjson.h; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(APT_PACKAGES) >/dev/null; \
	fi

node: $(NODE_SERVICES)/node_modules/.installed
$(NODE_SERVICES)/node_modules/.installed: $(NODE_SERVICES)/package.json $(wildcard $(NODE_SERVICES)/package-lock.json $(NODE_SERVICES)/.npmrc)
	cd $(NODE_SERVICES) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

sample: deps ## refresh data/sample/ from a real native lab run
	$(PY) scripts/refresh_sample.py

corpus: deps ## refresh data/lab/ (about 2 h: five 2-hour lab runs and a control run, in parallel)
	$(PY) scripts/refresh_lab_corpus.py

bench: deps
	for b in bench/[!_]*.py; do echo "== $$b"; $(PY) $$b || exit 1; done  # _*.py: their helpers

clean:
	rm -rf _build build .pytest_cache
