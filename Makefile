# Two commands a new user needs: `make run` and `make test`. Both set themselves up.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip==25.3"
	$(PY) -m pip install --quiet -e ".[dev,rocksdb]"
	touch $(STAMP)

## Run the product on the embedded broker with the demo feed (Ctrl-C stops everything).
run: $(STAMP)
	$(PY) -m stream dev

## The whole suite: lint, types, unit and integration tests on the embedded broker
## (a real Prometheus and promtool too: installed from Debian's packages when missing).
test: $(STAMP)
	bash .ci/install-prometheus
	$(PY) -m ruff check stream tests
	$(PY) -m mypy
	$(PY) -m pytest

lint: $(STAMP)
	$(PY) -m ruff check stream tests

typecheck: $(STAMP)
	$(PY) -m mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
