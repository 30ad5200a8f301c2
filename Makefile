# Two commands, on a fresh machine with python3, make and git:
#   make quickstart   set up .venv and run the main job
#   make test         set up .venv (with test extras), lint (ruff, mypy) and run the whole suite
PYTHON ?= python3
VENV   := .venv
UV     := $(VENV)/bin/uv
UV_VERSION := 0.13.9
export UV_PROJECT_ENVIRONMENT := $(abspath $(VENV))
export MLFLOW_DISABLE_TELEMETRY := true

.PHONY: setup setup-test quickstart test lint bench clean

$(UV):
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet "uv==$(UV_VERSION)"

# --locked: fail if uv.lock is stale; --inexact: keep uv/pip themselves in the venv.
# One environment for every stage: Airflow 3, Feast and MLflow resolve together (uv.lock).
EXTRAS := --extra learn --extra store --extra serve --extra pipeline

setup: $(UV)
	$(UV) sync --locked --inexact --quiet $(EXTRAS)

setup-test: $(UV)
	$(UV) sync --locked --inexact --quiet $(EXTRAS) --extra test

quickstart: setup
	$(VENV)/bin/liftwise quickstart --out $(or $(OUT),data/quickstart)

test: lint
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

# Lint, format and types (mypy reads its settings from pyproject.toml).
lint: setup-test
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks
	$(VENV)/bin/mypy

# Printed measurements with their peers; long (the causalml forest at 1M rows takes minutes).
BENCHMARKS := bench_simulate bench_forest bench_optimizer bench_hillstrom bench_ground_truth bench_experiment bench_feature_store bench_serve bench_rollout bench_rollout_gates
bench: setup-test
	@for b in $(BENCHMARKS); do echo "== $$b"; $(VENV)/bin/python benchmarks/$$b.py || exit 1; done

clean:
	rm -rf $(VENV) data .pytest_cache .ruff_cache
