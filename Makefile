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

.PHONY: demo test lint bench venv mutate
venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/opcockpit demo

test: $(STAMP)
	$(BIN)/ruff check opcockpit tests bench tools
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check opcockpit tests bench tools
	$(BIN)/ruff format --check opcockpit tests bench tools
	$(BIN)/lint-imports --no-cache

bench: $(STAMP)
	$(BIN)/python -m bench.run

# Mutation testing (mutmut 3) of operations.py, providers/http.py and alerts.py, one module at a
# time with its own tests, one worker (2 shared cores); then docs/mutation.md. Long: see that doc.
# `make mutate MODULES=http` runs one; `REV=HEAD` tests the last commit instead of the working tree;
# `ARGS="--timeout-s 1200"` time-boxes each module, `ARGS=--survivors` re-tests only last survivors.
mutate: $(STAMP)
	env -u OPCOCKPIT_CI -u CI $(BIN)/python tools/mutate.py --max-children 1 $(if $(REV),--rev $(REV)) $(ARGS) $(MODULES)
	$(BIN)/python tools/mutation_report.py
