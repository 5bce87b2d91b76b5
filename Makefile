# `make run` and `make test` each set up .venv when it is missing (or requirements.lock or
# pyproject.toml changed), with exactly the versions in requirements.lock; `make lock` refreshes
# the lock. VENV may be another folder, relative or absolute (make setup VENV=/tmp/venv).
VENV ?= .venv
PYTHON ?= python3
BIN := $(abspath $(VENV))/bin
LOCK := requirements.lock
# the virtualenv's bin/ first: dvc stages call `rnnpipe`, `mlflow models serve` calls `uvicorn`
export PATH := $(BIN):$(PATH)
export TF_CPP_MIN_LOG_LEVEL ?= 2
PORT ?= 5001

.PHONY: setup lock demo run verify test test-fast lint serve-imdb serve-charlm tracking-server clean \
	clean-tracking verify-serving docker-imdb docker-charlm format

# The locked set first (every package pinned and hash-checked, none resolved here), then the
# project itself without dependencies and without build isolation: its build backend
# (setuptools, locked too) comes from the venv, so nothing unlocked is downloaded.
$(VENV)/.installed: $(LOCK) pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11) and "$(LOCK) is \
	for CPython 3.11, $(BIN)/python is " + sys.version.split()[0] + ": make setup \
	PYTHON=python3.11 with a new VENV (or, unlocked: pip install -e .[dev])")'
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check
	touch $@

setup: $(VENV)/.installed

# Re-resolve requirements.lock: the newest versions that pyproject.toml's ranges admit (the main
# dependencies, the dev and team extras, not gpu), plus the build backend, for CPython 3.11 on
# Linux x86_64, with the SHA-256 of every file. uv does the resolving (installed into the venv
# when missing); pip installs from the lock. Then `make setup` installs the new lock.
# `make lock LOCK_FLAGS=` keeps each current pin that pyproject.toml still admits.
UV_PLATFORM ?= x86_64-manylinux_2_28
LOCK_FLAGS ?= --upgrade
lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	test -x $(BIN)/uv || $(BIN)/python -m pip install --quiet uv
	$(BIN)/python -c 'import tomllib; \
	print(*tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"], sep="\n")' \
		| $(BIN)/uv pip compile --quiet pyproject.toml - --extra dev --extra team \
		--generate-hashes --python-version 3.11 --python-platform $(UV_PLATFORM) \
		--custom-compile-command "make lock" $(LOCK_FLAGS) -o $(LOCK)

run: $(VENV)/.installed
	dvc repro

# the whole suite on 2 workers, in the order tests/conftest.py gives (one worker runs the shared
# tiny pipeline while the other starts on the tests that need nothing), with coverage of
# src/rnnpipe, stage subprocesses included; the floor is in pyproject.toml
test: $(VENV)/.installed
	python -m pytest -n 2 --dist loadgroup --no-loadscope-reorder --cov \
		--cov-report=term:skip-covered

# every stage of both projects on a slice of the real data, tiny models (params_demo.yaml), in a
# scratch copy (src/rnnpipe/demo.py); its runs go to your MLflow store as rnnpipe-<project>-demo;
# KEEP=1 keeps the scratch copy
demo: $(VENV)/.installed
	python -m rnnpipe.demo $(if $(KEEP),--keep)

# rerun the pipeline (or STAGES="imdb_vocab imdb_baseline") in a scratch copy, inputs from the
# DVC cache, and compare every output with dvc.lock and reports/ (src/rnnpipe/verify.py)
verify: $(VENV)/.installed
	python -m rnnpipe.verify $(if $(STAGES),--stages $(STAGES))

# the unit tests alone, for the edit loop
test-fast: $(VENV)/.installed
	python -m pytest -m "not slow" -n 2

lint: $(VENV)/.installed
	ruff check src tests benchmarks
	ruff format --check src tests benchmarks

# rewrite the code in ruff's format (what `make lint` and CI check)
format: $(VENV)/.installed
	ruff format src tests benchmarks
	ruff check --fix src tests benchmarks

# the champion of the model name in params.yaml (<project>.promote.model_name)
serve-imdb: $(VENV)/.installed
	rnnpipe imdb serve --port $(PORT)

serve-charlm: $(VENV)/.installed
	rnnpipe charlm serve --port $(PORT)

# serve the IMDb champion (or MODEL_URI) on a free port, send it the test split's raw reviews and
# check that its labels give exactly the test accuracy of reports/imdb/metrics.json
# (src/rnnpipe/verify_serving.py); LIMIT=1000 sends only the first 1000
verify-serving: $(VENV)/.installed
	python -m rnnpipe.verify_serving $(if $(MODEL_URI),--model-uri $(MODEL_URI)) \
		$(if $(LIMIT),--limit $(LIMIT))

# a Docker image rnnpipe-<project> that serves models/<project>/pyfunc on port 8080; the python
# slim image of the model's Python, its requirements installed there (--env-manager local)
docker-imdb docker-charlm: docker-%: $(VENV)/.installed
	@command -v docker >/dev/null || { echo "$@: docker is not on PATH; install Docker, or \
	write the image's build context without it (mlflow models generate-dockerfile -m \
	models/$*/pyfunc --env-manager local -d DIR) and build DIR where Docker or Podman is \
	(docker build -t rnnpipe-$* DIR)" >&2; exit 1; }
	@test -f models/$*/pyfunc/MLmodel || { echo "$@: no models/$*/pyfunc/MLmodel: dvc repro \
	$*_evaluate (or dvc pull) writes it" >&2; exit 1; }
	mlflow models build-docker -m models/$*/pyfunc -n rnnpipe-$* --env-manager local

# an MLflow tracking server for the team (docs/team.md): runs and registry in PostgreSQL,
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
