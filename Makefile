# Two commands matter: `make demo` (set up and run the demo) and `make test` (set up and run
# every test). Both work on a fresh machine; everything they need is installed here.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test docs setup venv system-deps bench-system-deps livekit-server frontend lint bench clean

demo:
	./scripts/demo.sh

# Then the unit tests again on the lowest versions pyproject.toml declares (.venv-lowest),
# and the documentation site, whose warnings are errors.
test: setup
	$(PY) -m pytest
	./scripts/lowest-versions.sh
	$(MAKE) docs

# The Sphinx site (docs/*.md, the API reference from the docstrings) into docs/_build/html.
docs: venv
	$(PY) -m sphinx -W --keep-going -b html docs docs/_build/html

setup: venv system-deps livekit-server frontend
	PYTHON=$(PYTHON) ./scripts/setup-agent-env.sh

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

# Debian packages, only the missing ones (apt-get as root or through sudo): see the script.
system-deps:
	./scripts/install-system-deps.sh test

bench-system-deps:
	./scripts/install-system-deps.sh bench

livekit-server: venv
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" ./scripts/install-livekit-server.sh

frontend:
	./scripts/build-demo-frontend.sh

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

bench: venv livekit-server bench-system-deps
	./benchmarks/run.sh

clean:
	rm -rf $(VENV) .venv-lowest examples/frontend/node_modules tests/output docs/_build
