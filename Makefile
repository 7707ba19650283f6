# The two commands a newcomer needs: `make run` and `make test`. Each bootstraps .venv itself.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test lint bench faults clean

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

run: export SEATMETER_OPERATOR_KEY ?= demo-operator-key
run: $(STAMP)
	$(BIN)/seatmeter db upgrade
	$(BIN)/seatmeter demo
	$(BIN)/seatmeter serve --host $(HOST) --port $(PORT)

test: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m benchmarks

faults: $(STAMP)
	SEATMETER_SLOW=1 $(BIN)/pytest tests/faults $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) seatmeter.db seatmeter.db-wal seatmeter.db-shm
