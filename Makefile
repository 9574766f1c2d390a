# Churnwatch: `make run` starts everything locally; `make test` installs what it needs and tests.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
LOCKS  := requirements.lock requirements-dev.lock
STAMP  := $(VENV)/.installed-$(shell cat $(LOCKS) pyproject.toml | cksum | cut -d' ' -f1)

# kustomize, built once from its Go module into the cache (outside the repository) for the test that
# renders deploy/k8s/overlays; tests/test_k8s.py finds it there.
CACHE     := $(or $(CHURNWATCH_CACHE_DIR),$(HOME)/.cache/churnwatch)
GO        ?= $(or $(shell command -v go 2>/dev/null),/usr/local/go/bin/go)
KUSTOMIZE_VERSION := v5.7.1
KUSTOMIZE := $(CACHE)/bin/kustomize-$(KUSTOMIZE_VERSION)

.PHONY: install jars browser promtool kustomize run demo test lint bench bench-ingest bench-scoring bench-scoring-model bench-quality bench-fit format clean

$(STAMP): $(LOCKS) pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock -r requirements-dev.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

jars: install
	$(BIN)/python -m deploy.local jars

# Debian's Chromium and ChromeDriver: the surveys tests check the response page in a real browser.
# Idempotent: installs only what is missing (run as root, as CI does).
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; else \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y --no-install-recommends chromium chromium-driver; fi

# Debian's prometheus package ships promtool: the alerting rules are checked and unit-tested with it
# (tests/observability/test_prometheus_rules.py). Idempotent, like `browser` (run as root, as CI does).
# Only the tool is wanted: where systemd runs, the package's server is stopped and disabled again
# (it would hold port 9090).
promtool:
	@if command -v promtool >/dev/null 2>&1; then :; else \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y --no-install-recommends prometheus && \
		if [ -d /run/systemd/system ]; then systemctl disable --now prometheus.service; fi; fi

$(KUSTOMIZE):
	mkdir -p $(CACHE)/bin $(CACHE)/go
	cd $(CACHE) && GOPATH=$(CACHE)/go GOBIN=$(CACHE)/go/bin $(GO) install \
		sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION)
	mv $(CACHE)/go/bin/kustomize $(KUSTOMIZE)

kustomize: $(KUSTOMIZE)

# The migration step (`churnwatch migrate`) runs first, inside `deploy.local run`, once PostgreSQL is up.
run: install jars
	$(BIN)/python -m deploy.local run

# The whole system fed by a small simulated customer base; scores and alerts print as they come.
demo: install jars
	$(BIN)/python -m simulator.demo $(DEMO_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy shared services deploy simulator bench

test: install jars browser promtool kustomize lint
	$(BIN)/pytest

# Figures go to bench/results/*.json with the command that produced them; not part of `make test`.
# BENCH_ARGS="--quick" for small sizes, "--only scoring,latency" for a subset (see python -m bench -h).
bench: install jars
	$(BIN)/python -m bench $(BENCH_ARGS)
	$(BIN)/python -m bench.survey_invitations

# Only ingest's /v1/batch against the bare producer (alternating rounds; see bench/ingest_throughput.py).
bench-ingest: install jars
	$(BIN)/python -m bench.ingest_throughput

# Scoring: throughput next to a bare aiokafka consumer, latency at 2,000 events/s, state at 100,000 accounts.
bench-scoring: install jars
	$(BIN)/python -m bench.scoring

# Cost per event of live scoring with a churn-risk model next to the scorecard alone (offline CPU,
# then real processes from Kafka; bench/scoring_model.py).
bench-scoring-model: install jars
	$(BIN)/python -m bench.scoring_model --processes $(BENCH_ARGS)

# Churn-risk quality on third-party ChurnSim data (bench/data/): the live engine's weekly scores and
# features, a model fitted on the earlier weeks, judged on the later ones. BENCH_ARGS="--datasets dev_crm5".
bench-quality: install
	$(BIN)/python -m bench.churnsim_quality $(BENCH_ARGS)

# How long calibrate's fit takes on 100,000 accounts x 26 weekly snapshots (synthetic rows).
bench-fit: install
	$(BIN)/python -m bench.calibrate_fit_time $(BENCH_ARGS)

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
