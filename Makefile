# `make run` and `make test` work on a fresh machine with only Python 3: each creates .venv
# and installs funcnn into it on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: run test test-fast lint types docs doctest bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

run: $(VENV)/.installed
	$(PY) experiments/lottery_ticket.py

# The whole check, as CI runs it, quickest parts first: lint and format, types, the documentation site
# (with its docstring checks), then the tests, slow ones included, and the docstring examples, on every
# core. Two invocations: most tests compile without XLA's backend optimizations (they compile far longer
# than they run), the few marked `optimized` (long training) with XLA's defaults; see conftest.py. The
# docstring examples run in the first (the same as `make doctest`, without a pytest start of its own).
test: lint types docs
	$(PY) -m pytest -q -n auto --dist loadgroup -m "not optimized" --doctest-modules tests funcnn
	FUNCNN_TEST_XLA=optimized $(PY) -m pytest -q -n auto --dist loadgroup -m optimized tests

test-fast: lint types docs
	$(PY) -m pytest -q -n auto --dist loadgroup -m "not slow" --doctest-modules tests funcnn

doctest: $(VENV)/.installed
	$(PY) -m pytest -q -n auto --doctest-modules funcnn

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

types: $(VENV)/.installed
	$(VENV)/bin/mypy

# The documentation site in build/site/ (static HTML: README, docs/, the API reference by topic); fails on
# a public name without docstring, example or type hints, a broken cross-reference or link, any warning.
docs: $(VENV)/.installed
	$(PY) tools/site.py --out build/site

bench: $(VENV)/.installed
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) runs
