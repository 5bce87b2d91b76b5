# `make run` and `make test` each set up .venv when it is missing (or pyproject.toml changed).
VENV ?= .venv
PYTHON ?= python3
BIN := $(CURDIR)/$(VENV)/bin
# the virtualenv's bin/ first: dvc stages call `rnnpipe`, `mlflow models serve` calls `uvicorn`
export PATH := $(BIN):$(PATH)
export TF_CPP_MIN_LOG_LEVEL ?= 2
PORT ?= 5001

.PHONY: setup run test lint serve-imdb serve-charlm clean

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

setup: $(VENV)/.installed

run: $(VENV)/.installed
	dvc repro

test: $(VENV)/.installed
	python -m pytest

lint: $(VENV)/.installed
	ruff check src tests benchmarks

serve-imdb: $(VENV)/.installed
	mlflow models serve -m "models:/imdb-sentiment@champion" --env-manager local -h 127.0.0.1 -p $(PORT)

serve-charlm: $(VENV)/.installed
	mlflow models serve -m "models:/mysterious-island-charlm@champion" --env-manager local -h 127.0.0.1 -p $(PORT)

clean:
	rm -rf data/raw data/interim data/processed models reports .checkpoints .tuner
