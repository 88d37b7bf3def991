# Quick start: `make demo` and `make test`. Both create .venv and install on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo test lint unit integration clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m aegis_app.harness.demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Two processes, each test file on one of them (--dist loadfile keeps a module's fixtures
# built once); the slowest 20 are printed, to keep make test under 15 min.
test: $(STAMP) lint
	$(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=20

unit: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile -m "not integration"

integration: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile -m integration

clean:
	rm -rf $(VENV) var build *.egg-info .pytest_cache .ruff_cache
