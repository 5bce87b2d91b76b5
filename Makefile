# `make run` and `make test` each set up .venv when it is missing (or pyproject.toml changed).
VENV ?= .venv
PYTHON ?= python3
BIN := $(CURDIR)/$(VENV)/bin
# the virtualenv's bin/ first: dvc stages call `rnnpipe`, `mlflow models serve` calls `uvicorn`
export PATH := $(BIN):$(PATH)
export TF_CPP_MIN_LOG_LEVEL ?= 2
PORT ?= 5001

.PHONY: setup run test test-fast lint serve-imdb serve-charlm tracking-server clean clean-tracking

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

setup: $(VENV)/.installed

run: $(VENV)/.installed
	dvc repro

# the whole suite on 2 workers, in the order tests/conftest.py gives (one worker runs the shared
# tiny pipeline while the other starts on the tests that need nothing), with coverage of
# src/rnnpipe, stage subprocesses included; the floor is in pyproject.toml
test: $(VENV)/.installed
	python -m pytest -n 2 --dist loadgroup --no-loadscope-reorder --cov \
		--cov-report=term:skip-covered

# the unit tests alone, for the edit loop
test-fast: $(VENV)/.installed
	python -m pytest -m "not slow" -n 2

lint: $(VENV)/.installed
	ruff check src tests benchmarks

# the champion of the model name in params.yaml (<project>.promote.model_name)
serve-imdb: $(VENV)/.installed
	rnnpipe imdb serve --port $(PORT)

serve-charlm: $(VENV)/.installed
	rnnpipe charlm serve --port $(PORT)

# an MLflow tracking server for the team (README: Team set-up): runs and registry in PostgreSQL,
# artifacts in S3 behind the server. Its environment holds MLFLOW_BACKEND_STORE_URI,
# MLFLOW_ARTIFACTS_DESTINATION and the S3 keys; it checks both stores before it starts
TRACKING_HOST ?= 127.0.0.1
TRACKING_PORT ?= 5000

tracking-server: $(VENV)/.installed
	python -m rnnpipe.core.tracking_server --host $(TRACKING_HOST) --port $(TRACKING_PORT)

# the pipeline's outputs in the workspace (the DVC cache keeps them: `dvc checkout` restores)
clean:
	@echo "removing data/raw data/interim data/processed models .checkpoints .tuner"
	@echo "and the untracked report folders reports/quality/gx reports/quality/docs"
	rm -rf data/raw data/interim data/processed models .checkpoints .tuner \
		reports/quality/gx reports/quality/docs

# also every MLflow run, model and registry entry: start from nothing
clean-tracking: clean
	@echo "removing the MLflow store mlflow.db and its artifacts mlartifacts/ mlruns/"
	rm -rf mlflow.db mlartifacts mlruns
