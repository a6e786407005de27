# Two entry points for a fresh machine: `make demo` and `make test`. Both bootstrap .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

.PHONY: demo test lint bench venv
venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/opcockpit demo

test: $(STAMP)
	$(BIN)/ruff check opcockpit tests bench
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check opcockpit tests bench
	$(BIN)/ruff format --check opcockpit tests bench

bench: $(STAMP)
	$(BIN)/python -m bench.run
