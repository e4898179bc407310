# prefexp: `make help` lists the targets. Every target sets up .venv first (idempotent).
.PHONY: help setup run test test-unit test-gpu test-all bench clean
PY := .venv/bin/python

help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup:  ## create .venv and install prefexp with every extra (CPU torch pinned)
	@bash scripts/setup.sh

run: setup  ## the main job: MixDPO (tau=0.5) on the built-in sandbox
	$(PY) -m prefexp.train loss=mixdpo tau=0.5

# Two workers (pytest-xdist), one test file each at a time (--dist loadfile keeps a file's
# module-scoped runs in one process): most tests wait on a training subprocess, so two at once
# use both cores. `pytest -q` alone runs them one by one.
XDIST := -n 2 --dist loadfile

test: setup  ## the default test suite (< 10 min on 2 CPU cores)
	$(PY) -m pytest -q $(XDIST)

test-unit: setup  ## the tests that start no process (< 2 min): losses, config, plans, parsers
	PREFEXP_UNIT_TESTS=1 $(PY) -m pytest -q $(XDIST) -m "not slow and not gpu and not spawns"

test-gpu: setup  ## the CUDA tests (skipped without a GPU; scripts/gpu_check.sh runs them with figures)
	$(PY) -m pytest -q -m gpu

test-all: setup  ## every test, slow ones included
	$(PY) -m pytest -q $(XDIST) -m "slow or not slow"

bench: setup  ## training throughput and memory, prefexp vs TRL
	$(PY) scripts/bench_train.py

clean:  ## remove run outputs (keeps the model cache)
	rm -rf outputs multirun
