# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv demo test lint mutants bench soak clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,web]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(PY) -m streamlet.cli.demo $(ARGS)

test: $(STAMP)
	$(PY) -m pytest -q $(ARGS)

# ruff, then mypy over build/typecheck/ (the installed layout as symlinks: .ci/typecheck.py).
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) .ci/typecheck.py

# Each known mutant (.ci/mutants.py) applied in a scratch copy must turn the suite red.
mutants: $(STAMP)
	$(PY) .ci/mutants.py $(ARGS)

bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) -m bench $(ARGS)

soak: $(STAMP)
	STREAMLET_SOAK_SEEDS=500 $(PY) -m pytest -q tests/integration -k fault $(ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
