# Rewrite Lab: `make book` builds and runs the book, `make test` runs every test.
# Both do their own set-up: the virtual environment, the system packages
# (apt-get when root), the load generator and every service.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

.PHONY: book book-fresh test setup doctor lab lint unit-tests rust-tests go-tests \
        notebook-tests browser-test notebooks-regen clean

$(INSTALLED): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $@

setup: $(INSTALLED)
	$(PY) -m book setup

doctor: $(INSTALLED)
	$(PY) -m book doctor

# Executes every chapter with live measurements; HTML in _build/book/_build/html.
book: setup
	$(PY) -m book build

# The same, measuring every chapter again (the execution cache is cleared).
book-fresh: setup
	rm -rf _build/book
	$(PY) -m book build

lab: setup
	$(VENV)/bin/jupyter lab chapters/

lint: $(INSTALLED)
	$(VENV)/bin/ruff check book tests snippets
	$(VENV)/bin/ruff format --check book tests snippets
	cd rust && cargo fmt --check && cargo clippy --locked --all-targets -q -- -D warnings
	cd go && test -z "$$(gofmt -l .)" && go vet ./...

unit-tests: $(INSTALLED)
	$(PY) -m pytest -q -m "not notebook and not browser"

rust-tests:
	cd rust && cargo test --locked -q

go-tests:
	cd go && go test -race ./...

# Executes each chapter in quick mode and diffs it with the committed one.
notebook-tests: $(INSTALLED)
	$(PY) -m pytest -q -m notebook

tests/browser/node_modules: tests/browser/package.json tests/browser/package-lock.json
	cd tests/browser && npm ci --no-audit --no-fund --silent
	touch $@

# Builds the book in quick mode and opens its pages in headless Chromium.
browser-test: $(INSTALLED) tests/browser/node_modules
	$(PY) -m book build --quick
	$(PY) -m pytest -q -m browser

test: setup lint unit-tests rust-tests go-tests notebook-tests browser-test

# Re-executes the chapters in quick mode and saves their outputs: the
# reference the notebook tests diff against.
notebooks-regen: setup
	$(PY) -m pytest -q -m notebook --nb-force-regen

clean:
	rm -rf _build .run
