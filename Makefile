# Churnwatch: `make run` starts everything locally; `make test` installs what it needs and tests.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install jars run test lint bench bench-scoring format clean

$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

jars: install
	$(BIN)/python -m deploy.local jars

run: install jars
	$(BIN)/python -m deploy.local run

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy shared services deploy

test: install jars lint
	$(BIN)/pytest

# Figures go to bench/results/*.json with the command that produced them; not part of `make test`.
bench: install jars
	$(BIN)/python -m bench.ingest_throughput
	$(BIN)/python -m bench.alert_latency
	$(BIN)/python -m bench.scoring

# Scoring: throughput next to a bare aiokafka consumer, latency at 2,000 events/s, state at 100,000 accounts.
bench-scoring: install jars
	$(BIN)/python -m bench.scoring

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
