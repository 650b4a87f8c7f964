# Every target creates or refreshes .venv itself, so a fresh clone needs nothing but Python 3.11+ and make.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch is installed first and explicitly: on machines with a local CPU build this avoids a multi-GB CUDA download.
# Override on a GPU box, e.g. `make run TORCH_SPEC=torch`.
TORCH_SPEC ?= torch==2.13.0
CONFIG ?=

.PHONY: run test bench train lint venv venv-dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet "$(TORCH_SPEC)" || $(BIN)/pip install --quiet torch
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

venv: $(VENV)/.installed
venv-dev: $(VENV)/.installed-dev

run: venv
	$(BIN)/enhancerd run $(if $(CONFIG),--config $(CONFIG),)

test: venv-dev
	$(BIN)/python -m pytest

# Benchmarks run with the thread-pool settings the CLI sets (core/runtime.py explains why).
BENCH_ENV := OMP_WAIT_POLICY=PASSIVE OPENBLAS_NUM_THREADS=1
bench: venv-dev
	$(BENCH_ENV) $(BIN)/python -m bench.analysis
	$(BENCH_ENV) $(BIN)/python -m bench.quality --ensemble 8
	$(BENCH_ENV) $(BIN)/python -m bench.speed
	$(BENCH_ENV) $(BIN)/python -m bench.daemon
	$(BENCH_ENV) $(BIN)/python -m bench.api

# Training owns the machine, so its OpenMP workers spin between parallel regions (ACTIVE): on 2 cores that ran the
# 128 px, batch-8 steps 1.5x faster than PASSIVE (536 vs ~360 steps/min). Anything else busy on the box suffers.
TRAIN_ARGS ?= --run runs/main --resume --minutes 60
train: venv-dev
	OMP_WAIT_POLICY=ACTIVE $(BIN)/python -m core.train $(TRAIN_ARGS)

lint: venv-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
