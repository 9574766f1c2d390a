# Churnwatch: `make run` starts everything locally; `make test` installs what it needs and tests.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements.lock pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install jars run demo test lint bench format clean

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

# The whole system fed by a small simulated customer base; scores and alerts print as they come.
demo: install jars
	$(BIN)/python -m simulator.demo $(DEMO_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy shared services deploy simulator bench

test: install jars lint
	$(BIN)/pytest

# Figures go to bench/results/*.json with the command that produced them; not part of `make test`.
# BENCH_ARGS="--quick" for small sizes, "--only scoring,latency" for a subset (see python -m bench -h).
bench: install jars
	$(BIN)/python -m bench $(BENCH_ARGS)

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
